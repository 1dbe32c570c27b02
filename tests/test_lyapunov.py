"""Lyapunov spectra (gradlab.analysis.lyapunov): the exact linear case, the QR method against the explicit Jacobian
product,
and the LSTM's state being (h, c)."""

from __future__ import annotations

import math

import pytest
import torch

from gradlab.analysis.lyapunov import lyapunov_spectrum, state_size, step_map
from gradlab.models.net import RecurrentNet
from gradlab.tasks import TaskSpec

U = 2.0 ** -53  # float64 unit roundoff


def raw_spec(input_size: int, T: int) -> TaskSpec:
    return TaskSpec("raw", T, T, input_size, 1, "regression", False, False, 1.0, None)


def explicit_product(net: RecurrentNet, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """J_T ··· J_1 of one sequence, each J_t the full Jacobian of forward_unrolled's one step with respect to its
    initial state (h0, c0): an implementation of the step independent of gradlab.analysis.lyapunov's; and ∏‖J_t‖₂, which
    bounds the rounding error of forming that product explicitly."""
    H, lstm = net.hidden_size, len(net.cell.state) == 2
    s = torch.zeros(state_size(net), dtype=torch.float64)
    product = torch.eye(len(s), dtype=torch.float64)
    norms = 1.0

    def one_step(state: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        h0 = state[:H].reshape(1, 1, H)
        c0 = state[H:].reshape(1, 1, H) if lstm else None
        _, traces = net.forward_unrolled(xt.reshape(1, 1, -1), h0=h0, c0=c0, record=True)
        tr = traces[0]
        return torch.cat([tr.h[-1][0], tr.c[-1][0]]) if lstm else tr.h[-1][0]

    for t in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(lambda z, xt=x[t]: one_step(z, xt), s)
        product = J @ product
        norms *= float(torch.linalg.matrix_norm(J, ord=2))
        s = one_step(s, x[t]).detach()
    return product, norms


@pytest.mark.numerics
@pytest.mark.parametrize("alpha", [0.9, 1.0, 1.1])
def test_linear_rnn_with_alpha_q_has_every_exponent_ln_alpha(alpha):
    """W_hh = αQ, identity activation: J_t = αQ whatever the input, so every exponent is ln α. In float64 each
    |R_ii| of QR(αQ·Q_{t-1}) is α up to the orthogonality of the computed Q and the QR's backward error, a few
    H·u relative per step; the mean of their logs keeps that size (~1e-14), far inside 1e-10."""
    torch.manual_seed(0)
    H, T = 12, 60
    net = RecurrentNet("rnn", raw_spec(3, T), H).double()
    q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64))
    with torch.no_grad():
        net.weights(0)[1].copy_(alpha * q)
    net.acts[0] = torch.nn.Identity()
    spectrum = lyapunov_spectrum(net, torch.randn(3, T, 3, dtype=torch.float64), k=H)
    assert torch.allclose(spectrum.exponents, torch.full((H,), math.log(alpha), dtype=torch.float64),
                          rtol=0, atol=1e-10)


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_qr_spectrum_is_the_explicit_products_and_obeys_weyl(kind):
    """With Q_0 = I the QR method factors the product itself: P = J_T···J_1 = Q_T (R_T···R_1), so T·λ are the logs of
    |diag| of P's own R, and since R_T···R_1 is triangular with P's singular values, Weyl's inequality bounds the
    spectrum: every partial sum of the largest T·λ_i is at most that of ln σ_i, equal over all of them (ln|det P|).

    The reference is the less accurate side: forming P explicitly in float64 errs by up to γ_{TD}·∏‖J_t‖ (the
    rounding of a product chain), so its i-th |R_ii| is off relatively by that over |R_ii|, a tolerance in ln that
    grows for the smallest exponents of an ill-conditioned product (seen: 1e-4 at the LSTM's last, σ ratio 1e-12);
    the QR method itself never forms P. Ten times that bound, plus 1e-12 for the step-wise logs."""
    torch.manual_seed(1)
    T, H = 6, 4
    net = RecurrentNet(kind, raw_spec(2, T), H).double()
    with torch.no_grad():  # a strong recurrence, so that the spectrum is spread
        net.weights(0)[1].mul_(3.0)
    x = torch.randn(1, T, 2, dtype=torch.float64)
    D = state_size(net)
    spectrum = lyapunov_spectrum(net, x, k=D)
    P, chain_norm = explicit_product(net, x[0])
    logs = T * spectrum.exponents
    own_r = torch.linalg.qr(P).R.diagonal().abs().sort(descending=True).values
    gamma = T * D * U / (1 - T * D * U)
    tol = 10 * gamma * chain_norm / own_r + 1e-12
    assert (logs - own_r.log()).abs().le(tol).all(), (logs, own_r.log(), tol)
    log_sv = torch.linalg.svdvals(P).log()
    assert (logs.cumsum(0) <= log_sv.cumsum(0) + tol.cumsum(0)).all()
    assert abs(logs.sum() - torch.linalg.slogdet(P).logabsdet) <= tol.sum()


def test_the_lstm_state_is_h_and_c():
    """The LSTM's map is on (h, c): 2H dimensions, and its Jacobian has the cell's block (dropping c would leave an
    H-dimensional map whose spectrum misses the cell path). The NFG's direct cell path is the identity, which holds
    its largest exponent near 0 where the LSTM's forget gate (~0.5 at init) pulls it below."""
    torch.manual_seed(3)
    T, H = 50, 8
    x = torch.randn(4, T, 2)
    spectra = {}
    for kind in ("lstm", "nfg_lstm"):
        net = RecurrentNet(kind, raw_spec(2, T), H)
        assert state_size(net) == 2 * H
        F = step_map(net)
        s = torch.randn(2 * H)
        J = torch.autograd.functional.jacobian(lambda z, F=F: F(z, x[0, 0]), s)
        assert J.shape == (2 * H, 2 * H) and J[H:, H:].abs().sum() > 0  # ∂c_t/∂c_{t-1} = diag(f_t)
        spectra[kind] = lyapunov_spectrum(net, x, k=2 * H, dtype=torch.float64)
    assert abs(spectra["nfg_lstm"].largest) < 0.05
    assert spectra["lstm"].largest < spectra["nfg_lstm"].largest - 0.1


def test_bad_k_and_skip_are_refused_with_the_valid_range():
    net = RecurrentNet("rnn", raw_spec(2, 5), 4)
    with pytest.raises(ValueError, match=r"k=9: the state has 4 dimensions; choose 1..4"):
        lyapunov_spectrum(net, torch.randn(1, 5, 2), k=9)
    with pytest.raises(ValueError, match=r"skip=5: the sequences have 5 steps; choose 0..4"):
        lyapunov_spectrum(net, torch.randn(1, 5, 2), skip=5)
