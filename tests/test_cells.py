"""The cell registry (gradlab.cells) against exact answers: the IRNN's identity, expRNN's orthogonality, the gated
cells' theory line in cases where it is exact; a cell defined here, registered, run through the real pipeline; and
no model name compared outside gradlab/cells/."""

from __future__ import annotations

import ast
import math

import pandas as pd
import pytest
import torch
from conftest import ROOT, read_json, run_entry
from torch import Tensor, nn

from gradlab import cells
from gradlab.analysis.lyapunov import lyapunov_spectrum
from gradlab.cells.base import Cell, RNNWeights, State
from gradlab.models.net import RecurrentNet
from gradlab.probe.bptt import bptt_probe
from gradlab.tasks import TaskSpec
from gradlab.tasks.adding import AddingTask, generate_adding

U64 = 2.0 ** -53  # float64 unit roundoff
U32 = 2.0 ** -24  # float32 unit roundoff
THETA_18 = 3.010066362817634  # torch.matrix_exp's largest float32 norm for a degree-18 Taylor step without squaring


def raw_spec(input_size: int, T: int) -> TaskSpec:
    return TaskSpec("raw", T, T, input_size, 1, "regression", False, False, 1.0, None)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


# ------------------------------------------------------------------------------------------------------ the IRNN


@pytest.mark.parametrize("layers", [1, 2])
def test_irnn_init_is_the_identity_zero_biases_and_small_input_weights(layers):
    """Le et al.'s init: W_hh == I and b_ih == b_hh == 0 exactly (copies of exact values, so torch.equal), in every
    layer; W_ih ~ N(0, 0.001²).

    The input weights' scale is a statistical claim about n = Σ_layers rows·cols samples (4,224 for two layers of
    64 on the adding task's 2 inputs, 128 for one). With zero mean known, n·m₂/σ² (m₂ the mean square) is χ²_n:
    mean n, sd √(2n), so m₂/σ² lies within 1 ± z·√(2/n), and the sample mean within ±z·σ/√n, with z = 6 (a normal
    tail of 2e-9; χ²_n's skewness √(8/n) ≤ 0.25 shifts that tail by less than a factor 10). PyTorch's own init
    (U(±1/√H), σ = 0.072) or N(0, 1e-2²) is thousands of sds away."""
    torch.manual_seed(0)
    H, sigma, z = 64, 1e-3, 6.0
    net = RecurrentNet("irnn", AddingTask(seq_len=10).spec(), H, num_layers=layers)
    samples = []
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = (p.detach() for p in net.weights(layer))
        assert torch.equal(w_hh, torch.eye(H))
        assert torch.equal(b_ih, torch.zeros(H)) and torch.equal(b_hh, torch.zeros(H))
        samples.append(w_ih.double().flatten())
    w = torch.cat(samples)
    n = w.numel()
    assert n == H * 2 + (layers - 1) * H * H
    assert abs(float(w.square().mean()) / sigma**2 - 1) <= z * math.sqrt(2 / n)
    assert abs(float(w.mean())) <= z * sigma / math.sqrt(n)


@pytest.mark.numerics
@pytest.mark.parametrize("gain", [1.0, 0.9])
def test_irnn_with_every_unit_active_is_linear_and_its_exponents_are_ln_gain(gain):
    """While every pre-activation is > 0 the IRNN's state Jacobian is diag(relu'(a_t))·W_hh = W_hh = gain·I, so
    every Lyapunov exponent is ln(gain): 0 for Le et al.'s identity. Positive inputs and positive input weights
    (|W_ih| of the init, zero biases, h_0 = 0) make a_t = W_ih x_t + gain·h_{t-1} > 0 at every step; the test
    asserts it on the trajectory itself.

    Reference and error: with J_t = gain·I exact (relu' is exactly 1 and gain·I·q rounds once, to the float64 of
    gain·q), the QR method factors gain·Q_{t-1}; Householder QR's backward error and the orthogonality of the Q it
    returns are each ≤ γ̃ = c·D·u per step (Higham, Accuracy and Stability, Thm 19.4, c a small constant), so each
    ln|R_ii| is off from ln(gain) by at most ~2·D·u, and so is their mean over T steps (a mean does not add the
    errors up). Tolerance 10·D·k·u (c = 5 per factor, and a k for the column-wise norms) = 2.8e-13 at D = k = 16.
    gain is held in float32 by the model, so the reference is ln(float32(gain)). Measured: exactly 0 for gain = 1
    (QR of exact unit vectors is exact), 1.7e-16 off ln(0.9)."""
    torch.manual_seed(1)
    H, T, B = 16, 100, 4
    net = RecurrentNet("irnn", raw_spec(2, T), H, recurrent_gain=gain)
    with torch.no_grad():
        net.weights(0)[0].abs_()
    net = net.double()
    w_ih, w_hh = (p.detach() for p in net.weights(0)[:2])
    assert (w_ih > 0).all() and torch.equal(w_hh, torch.eye(H, dtype=torch.float64) * w_hh[0, 0])
    x = torch.rand(B, T, 2, dtype=torch.float64) + 0.1
    _, traces = net.forward_unrolled(x, record=True)
    pre = torch.stack([v + u for v, u in zip(traces[0].v, traces[0].u, strict=True)])
    assert (pre > 0).all(), float(pre.min())  # every unit active at every step: the linear regime
    spectrum = lyapunov_spectrum(net, x, k=H, dtype=torch.float64)
    expected = math.log(float(torch.tensor(gain, dtype=torch.float32)))
    tol = 10 * H * H * U64
    err = (spectrum.exponents - expected).abs().max().item()
    assert err <= tol, (err, tol)


@pytest.mark.numerics
def test_irnn_theory_line_is_its_active_blocks_spectral_radius():
    """With a fixed active set S the IRNN's state Jacobian is D_S·W_hh, so a gradient that has entered S moves by
    W_hh[S, S]ᵀ per step: the theory line is ln ρ(W_hh[S, S]). Constructed exactly: positive inputs; W_ih rows
    positive for S and negative for the rest; W_hh[S, S] = α·P (P a permutation: orthogonal and non-negative, so
    h_S ≥ 0 keeps a_S > 0), W_hh[rest, S] = 0 (the rest stays below 0). Then ‖∂ℓ/∂h_t‖ = α^(T−2−t)·‖∂ℓ/∂h_{T−2}‖ for
    t ≤ T−2 (after one step the gradient lies in S, where α·P scales every vector by exactly α), and the predicted
    rate is ln α, while the mean field (which spreads the gradient over all H units, half of them off) says
    ln α + ½ ln(|S|/H), 0.35 lower: the test asserts the two apart by more than 0.3 so it can tell them.
    Reference error: P·h and α·(P·h) round once per step (a permutation is exact; the product with α is one
    rounding), so over n = T−2 steps the ratio is off by at most γ_(2n) relative (float64) = 2.2e-14 at T=100.
    ρ comes from LAPACK's eigenvalues of α·P, a normal matrix: off by ≤ c·m·u·‖α·P‖₂ (m = 4 active units), so its
    log by ≤ c·m·u, within 1e-14 for c ≤ 10."""
    torch.manual_seed(0)
    H, T, B, alpha = 8, 100, 4, 0.97
    S = torch.arange(H) < H // 2
    net = RecurrentNet("irnn", raw_spec(2, T), H).double()
    with torch.no_grad():
        w_ih, w_hh, _, _ = net.weights(0)
        w_ih.copy_(torch.where(S[:, None], 1.0, -1.0) * (0.5 + torch.rand(H, 2, dtype=torch.float64)))
        w_hh.zero_()
        perm = torch.roll(torch.eye(H // 2, dtype=torch.float64), 1, dims=0)
        w_hh[:H // 2, :H // 2] = alpha * perm
    x = torch.rand(B, T, 2, dtype=torch.float64) + 0.1
    _, traces = net.forward_unrolled(x, record=True)
    pre = torch.stack([v + u for v, u in zip(traces[0].v, traces[0].u, strict=True)])
    assert (pre[:, :, S] > 0).all() and (pre[:, :, ~S] < 0).all()  # the active set is fixed
    y = torch.randn(B, 1, dtype=torch.float64)
    result = bptt_probe(net, x, lambda out, tr: ((out - y) ** 2).sum(1).mean())
    norms = result.layers[0]["dL_dh_norm"]
    n = T - 2
    gamma = 2 * n * U64 / (1 - 2 * n * U64)
    assert abs(float(norms[0] / norms[n]) / alpha ** n - 1) <= gamma
    predicted = result.scalars["decay_rate_predicted"]
    assert abs(predicted - math.log(alpha)) <= 10 * (H // 2) * U64 / alpha
    assert predicted - result.scalars["decay_rate_mean_field"] > 0.3


@pytest.mark.numerics
def test_exprnn_theory_line_is_its_active_blocks_spectral_radius():
    """The same theory line as the IRNN's (cells.base.PiecewiseLinearCell: modReLU's φ' is 0 or 1), constructed
    exactly for exprnn: A at its init is a sum of 2x2 rotation generators, so W_hh = exp(A − Aᵀ) is block-diagonal
    with 2x2 rotations; the modReLU bias is 0 on S (the first H/2 units, whole blocks: modReLU is then the identity
    there) and −1e3 on the rest (|a| + b < 0: off at every step). Then W_hh[S, S] is orthogonal, the prediction
    ln ρ = 0, and ‖∂ℓ/∂h_t‖ is constant for t ≤ T−2, while the mean field says ½ ln(|S|/H) = −0.35.
    Reference error: per step the norm moves by a factor within [σ_min, σ_max] of the computed W_hh[S, S]
    (δ = max|σ − 1|, matrix_exp's departure from orthogonality, measured here by svdvals, itself within 2u), and
    each entry of the 2x2 product rounds twice (≤ 2√2·u relative); over n = T−2 steps |ratio − 1| ≤ n(δ + 6u)
    to first order. ρ: eigenvalues of a near-orthogonal 4x4 block, off by ≤ c·m·u (m = 4), its log within
    10·m·u + δ."""
    torch.manual_seed(0)
    H, T, B = 8, 100, 4
    S = torch.arange(H) < H // 2
    net = RecurrentNet("exprnn", raw_spec(2, T), H).double()
    with torch.no_grad():
        net.acts[0].bias.copy_(torch.where(S, 0.0, -1e3))
    w_ss = net.weights(0)[1].detach()[S][:, S]
    assert (net.weights(0)[1].detach()[~S][:, S] == 0).all()  # block-diagonal: S does not feed the rest
    delta = (torch.linalg.svdvals(w_ss) - 1).abs().max().item() + 2 * U64
    x = torch.randn(B, T, 2, dtype=torch.float64)
    _, traces = net.forward_unrolled(x, record=True)
    pre = torch.stack([v + u for v, u in zip(traces[0].v, traces[0].u, strict=True)])
    assert (pre[:, :, S] != 0).all() and (pre[:, :, ~S].abs() < 1e3).all()  # the active set is fixed
    y = torch.randn(B, 1, dtype=torch.float64)
    result = bptt_probe(net, x, lambda out, tr: ((out - y) ** 2).sum(1).mean())
    norms = result.layers[0]["dL_dh_norm"]
    n = T - 2
    assert abs(float(norms[0] / norms[n]) - 1) <= n * (delta + 6 * U64)
    predicted = result.scalars["decay_rate_predicted"]
    assert abs(predicted) <= 10 * (H // 2) * U64 + delta
    assert abs(result.scalars["decay_rate_mean_field"] - 0.5 * math.log(0.5)) < 1e-12
    assert predicted - result.scalars["decay_rate_mean_field"] > 0.3


# ------------------------------------------------------------------------------------------------------ expRNN


def skew_of(net: RecurrentNet) -> Tensor:
    """A − Aᵀ of layer 0, A the strictly lower triangle the parametrization keeps (W_hh = exp(A − Aᵀ))."""
    a = net.rnn.parametrizations.weight_hh_l0.original.detach().double().tril(-1)
    return a - a.T


@pytest.mark.numerics
def test_exprnn_stays_orthogonal_under_training_and_is_isometric_when_linear():
    """W_hh = exp(A − Aᵀ) is orthogonal whatever A the optimizer makes: after 30 Adam steps at lr 0.05 on the
    adding task (W_hh turns by ‖ΔW_hh‖₂ > 1, a rotation by more than 60° in some plane, and ‖A − Aᵀ‖₁ doubles, so
    that matrix_exp squares), ‖W_hhᵀW_hh − I‖₂ of the float32 W_hh stays at round-off; and in float64 with
    φ = identity the state Jacobian is W_hh itself, so every Lyapunov exponent is 0.

    Error model of the float32 orthogonality (WᵀW formed in float64 from W, which is exact): torch.matrix_exp
    scales B = A − Aᵀ by 2^-s with s = ⌈log₂(‖B‖₁/θ₁₈)⌉, θ₁₈ = 3.01 in float32 (so 2^s ≤ max(1, 2‖B‖₁/θ₁₈)),
    evaluates a degree-18 Taylor polynomial with 5 matrix products (Bader, Blanes & Casas 2019) and squares s times.
    Each product of near-orthogonal matrices rounds by ≤ n·u relative (γ_n), so the polynomial's X₀ is orthogonal
    to ~5·n·u, and each squaring doubles the error it is given and adds 2·n·u: ‖WᵀW − I‖ ≲ 2^s·(5 + 2)·n·u. Measured
    (n = 16, seed 0): 1.4e-6 with ‖B‖₁ = 6.3 (2^s = 4), 0.36 of n·u·2^s; the bound is 20x that (2.8e-5). An
    unconstrained W_hh that Adam moved would be off by ~lr, 0.05.

    Float64 Lyapunov: the exponents of a product of the same W lie within [ln σ_min(W), ln σ_max(W)], and
    |ln σ| ≤ ‖WᵀW − I‖₂ (float64 W, orthogonal to ~1e-15), plus the QR method's ~2·D·u per step (see the IRNN's test);
    their sum must be below 1e-10 and the exponents within it. Measured: ‖WᵀW − I‖₂ = 6.3e-15, max |λ| = 8.0e-16."""
    torch.manual_seed(0)
    T, H = 10, 16
    net = RecurrentNet("exprnn", AddingTask(seq_len=T).spec(), H)
    w_before = net.weights(0)[1].detach().clone()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    x, y = generate_adding(1, T, 16)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        net.constrain()
    w = net.weights(0)[1].detach()
    assert torch.linalg.matrix_norm(w - w_before, ord=2) > 1  # the optimizer turned W_hh
    skew = skew_of(net)
    norm1 = torch.linalg.matrix_norm(skew, ord=1).item()
    assert norm1 > THETA_18  # scaling and squaring at work (s ≥ 1)
    assert w.dtype == torch.float32
    eye = torch.eye(H, dtype=torch.float64)
    err = torch.linalg.matrix_norm(w.double().T @ w.double() - eye, ord=2).item()
    tol = max(1.0, 2 * norm1 / THETA_18) * (5 + 2) * H * U32
    assert err <= tol, (err, tol, norm1)

    net = net.double()
    net.acts[0] = nn.Identity()
    w64 = net.weights(0)[1].detach()
    bound = torch.linalg.matrix_norm(w64.T @ w64 - eye, ord=2).item() + 10 * H * H * U64
    assert bound < 1e-10
    spectrum = lyapunov_spectrum(net, torch.randn(4, 50, 2, dtype=torch.float64), k=H)
    assert spectrum.exponents.abs().max().item() <= bound, (spectrum.exponents, bound)


# ------------------------------------------------------------------------------------ the gated cells' theory line

SLOW_RATES = [0.999, 0.9, 0.5, 0.1]  # per unit: the forget gate (LSTM) or update gate (GRU), constant over t


def fit_bias_bound(rates: list[float], T: int) -> float:
    """How far the probe's least-squares slope of ln‖g_n‖ (n = T−1−t steps back, n = 0..T−1) can lie from
    ln r₁ when g_n = w ⊙ r^n with w = 1 and r₁ the slowest rate: ln‖g_n‖ = n·ln r₁ + ρ(n) with
    ρ(n) = ½ ln(1 + Σ_{j>1} (r_j/r₁)^{2n}) ∈ [0, ½ Σ_{j>1} (r_j/r₁)^{2n}], and the slope of ρ is
    Σ(n − n̄)ρ(n) / Σ(n − n̄)², at most Σ|n − n̄|·ρ̄(n) / Σ(n − n̄)² with ρ̄ the upper bound."""
    n = torch.arange(T, dtype=torch.float64)
    ratios = torch.tensor(rates[1:], dtype=torch.float64) / rates[0]
    rho = 0.5 * (ratios[:, None] ** (2 * n)).sum(0)
    centred = n - n.mean()
    return float((centred.abs() * rho).sum() / centred.square().sum())


def constant_gate_case(kind: str, gate_rows: slice, T: int) -> tuple[RecurrentNet, Tensor]:
    """A float64 net with W_hh = 0 (no path through h) and the gate at gate_rows constant per unit: zero input
    weights, b_ih = logit(rate), b_hh = 0 on those rows."""
    torch.manual_seed(4)
    H = len(SLOW_RATES)
    net = RecurrentNet(kind, raw_spec(2, T), H).double()
    w_ih, w_hh, b_ih, b_hh = net.weights(0)
    with torch.no_grad():
        w_hh.zero_()
        w_ih[gate_rows] = 0.0
        b_ih[gate_rows] = torch.tensor([logit(p) for p in SLOW_RATES], dtype=torch.float64)
        b_hh[gate_rows] = 0.0
    return net, torch.randn(3, T, 2, dtype=torch.float64)


def assert_slowest_unit_sets_the_rate(result, measured_key: str, T: int) -> tuple[float, float]:
    predicted, measured = result.scalars["decay_rate_predicted"], result.scalars[measured_key]
    # predicted = the mean over T·B equal values of ln σ(logit p): logit(p) rounds by ~2u relative (1.5e-15 of 6.9,
    # which σ' = p(1 − p) = 1e-3 shrinks to 1e-18) and σ itself by ~2u, so σ(logit p) is p to 3u and its log ln p to
    # 3u/p; the mean adds γ_{TB}·|ln p| = 3e-16. Twice their sum:
    p = SLOW_RATES[0]
    assert predicted == pytest.approx(math.log(p), rel=0, abs=2 * (3 * U64 / p + T * 3 * U64 * abs(math.log(p))))
    # measured: the exact ‖w ⊙ r^n‖ up to one rounding per step back (the n-th off by ≤ n·u relative, which tilts the
    # fitted slope by ≤ u per step), plus the fit's bias from the faster units (fit_bias_bound)
    tol = fit_bias_bound(SLOW_RATES, T) + 10 * U64
    assert abs(measured - predicted) <= tol, (measured, predicted, tol)
    # and it is the slowest unit's rate, not the average gate's nor the average rate (both ~-0.5, 1000x the tolerance)
    for average in (math.log(sum(SLOW_RATES) / len(SLOW_RATES)), sum(map(math.log, SLOW_RATES)) / len(SLOW_RATES)):
        assert abs(measured - average) > 1000 * tol
    return measured, predicted


@pytest.mark.numerics
def test_lstm_theory_line_is_the_slowest_forget_gate_when_exact():
    """LSTM with W_hh = 0 and constant forget gates f = (0.999, 0.9, 0.5, 0.1): c_t = f ⊙ c_{t-1} + i_t ⊙ g_t with
    i_t, g_t independent of the state, and a loss w·c_{T-1} (w = 1) reads c alone, so ∂ℓ/∂c_t = w ⊙ f^(T-1-t)
    exactly. Its norm decays at the slowest unit's rate, ln 0.999 = decay_rate_predicted (max_j mean_t ln f_t[j]),
    not at ln(mean f) = −0.47 nor mean_j ln f_j = −0.78. The probe's fitted decay_rate_c lies within the fit's bias
    from the faster units (fit_bias_bound, derived there: 2.3e-5 at T = 1000, 2% of |ln 0.999|) plus rounding.
    Measured: −0.0010159 vs −0.0010005 (1.5e-5 apart, tolerance 2.3e-5)."""
    T, H = 1000, len(SLOW_RATES)
    net, x = constant_gate_case("lstm", slice(H, 2 * H), T)
    w = torch.ones(H, dtype=torch.float64)
    result = bptt_probe(net, x, lambda out, tr: (tr[0].c[-1] @ w).mean())
    f = result.layers[0]["forget_gate_mean"]  # the same B·H gate values at every t, their mean to γ_{BH}
    assert float(f.max() - f.min()) <= 2 * x.shape[0] * H * U64
    assert_slowest_unit_sets_the_rate(result, "decay_rate_c", T)


@pytest.mark.numerics
def test_gru_theory_line_is_the_slowest_update_gate_when_exact():
    """GRU with W_hh = 0: r = σ(v_r + b_hr) and n_t = tanh(v_n + r ⊙ b_hn) do not depend on h, and with the update
    rows' input weights zero z = (0.999, 0.9, 0.5, 0.1) per unit at every step, so h_t = (1 − z) ⊙ n_t + z ⊙ h_{t-1}
    has ∂h_t/∂h_{t-1} = diag(z) exactly and a loss w·h_{T-1} gives ∂ℓ/∂h_t = w ⊙ z^(T-1-t). decay_rate (the fit of
    ‖∂ℓ/∂h_t‖) is ln 0.999 = decay_rate_predicted (max_j mean_t ln z_t[j]) within the same derived bound as the
    LSTM's. Measured: −0.0010159 vs −0.0010005, as the LSTM's (the same w ⊙ r^n)."""
    T, H = 1000, len(SLOW_RATES)
    net, x = constant_gate_case("gru", slice(H, 2 * H), T)
    w = torch.ones(H, dtype=torch.float64)
    result = bptt_probe(net, x, lambda out, tr: (tr[0].h[-1] @ w).mean())
    assert_slowest_unit_sets_the_rate(result, "decay_rate", T)


# ------------------------------------------------------------------------------ a cell defined here, end to end


class LeakyCell(Cell):
    """h_t = (1 − α)·h_{t-1} + α·tanh(v_t + u_t): a leaky-integrator cell with no fused kernel, to show that a cell
    registered from outside gradlab/cells runs through training, the probe and the analysis."""

    name = "toy"
    about = "leaky tanh cell (a test's toy): h_t = (1 − α) h_{t-1} + α tanh(W_ih x_t + W_hh h_{t-1} + b)"
    theory = "mean field: ½ mean_t ln((1 − α)² + α² (‖W_hh‖_F²/H) mean tanh'(a_t)²)"
    inits = ("default",)
    fused_kernel = False
    alpha = 0.5

    def fused(self, input_size: int, hidden_size: int, num_layers: int) -> nn.Module:
        return RNNWeights(input_size, hidden_size, num_layers)

    @torch.no_grad()
    def init(self, net: RecurrentNet, recurrent_init: str, gain: float) -> None:
        bound = 1 / math.sqrt(net.hidden_size)  # nn.RNN's own init
        for layer in range(net.num_layers):
            for p in net.weights(layer):
                p.uniform_(-bound, bound)

    def step(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        return ((1 - self.alpha) * state[0] + self.alpha * torch.tanh(v + u),)

    def curves(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        d = 1 - torch.tanh(v + u).square()
        return {"tanh_deriv_mean": d.mean(dim=(1, 2)), "_tanh_deriv_sq_mean": d.square().mean(dim=(1, 2))}

    def theory_scalars(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        w_hh = net.weights(layer)[1].detach().double()
        gain = w_hh.square().sum() / w_hh.shape[1]
        chi = (1 - self.alpha) ** 2 + self.alpha**2 * gain * self.curves(net, layer, v, u)["_tanh_deriv_sq_mean"]
        return {"decay_rate_predicted": float(0.5 * chi.double().log().mean())}


@pytest.fixture
def toy_cell():
    """The toy registered for the test only: unregistered whatever happens, so no other test sees it."""
    cell = cells.register(LeakyCell())
    try:
        yield cell
    finally:
        cells.unregister(cell.name)
    assert cell.name not in cells.names()


@pytest.mark.numerics
def test_toy_cell_theory_line_is_exact_without_recurrent_weights(toy_cell):
    """With W_hh = 0 the toy's state Jacobian is (1 − α)·I, so ‖∂ℓ/∂h_t‖ = (1 − α)^(T-1-t)·‖∂ℓ/∂h_{T-1}‖ and both
    the probe's fit and the toy's mean field give ln(1 − α) = ln 0.5. In float64 each step back multiplies the
    per-sample ∂ℓ/∂h_t by 0.5 exactly and adds α·tanh'·W_hhᵀδ = 0 exactly, so each sample's norm is an exact power of
    2 times its last one; the batch mean of B norms rounds by ≤ γ_B relative at each t (twice that between two t, if
    a kernel summed them in another order). The logs then lie on the line to ~4γ_B (3e-15), so the fitted slope is
    ln 0.5 to far below 1e-12; the mean field's χ_t = (1 − α)² exactly."""
    T = 40
    net = RecurrentNet("toy", raw_spec(2, T), 8).double()
    assert net.cell is toy_cell and not hasattr(net, "acts")
    with torch.no_grad():
        net.weights(0)[1].zero_()
    result = bptt_probe(net, torch.randn(3, T, 2, dtype=torch.float64), lambda out, tr: out.square().mean())
    norms = result.layers[0]["dL_dh_norm"]
    expected = norms[-1] * 0.5 ** torch.arange(T - 1, -1, -1, dtype=torch.float64)
    torch.testing.assert_close(norms, expected, rtol=4 * 3 * U64, atol=0)
    assert result.scalars["decay_rate"] == pytest.approx(math.log(0.5), rel=0, abs=1e-12)
    assert result.scalars["decay_rate_predicted"] == pytest.approx(math.log(0.5), rel=0, abs=1e-12)


TOY_RUN = ("profile=smoke", "model=rnn", "model.name=toy", "task.seq_len=10", "trainer.max_steps=6",
           "probe.every_n_steps=3", "logger=none")


def test_a_cell_registered_in_a_test_trains_probes_and_is_analysed(toy_cell, tmp_path):
    """The registry is the only place the pipeline learns about models: a cell defined and registered here (no
    conf/model/toy.yaml: model=rnn's file with model.name=toy) trains without a fused kernel, is probed during
    training (bptt.csv with its own curve beside the gradient norms, its theory line in the metrics) and analysed
    from its checkpoint (the probe on test data and the Lyapunov spectrum at init and trained). No numbers claimed:
    what runs, and what it writes."""
    trained = run_entry("train.py", *TOY_RUN, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_dir = tmp_path / "runs" / "adding-T10-toy-none-s0"
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "completed" and metrics["steps"] == 6
    df = pd.read_csv(run_dir / "bptt.csv")
    assert sorted(df.step.unique()) == [0, 3, 6]
    assert set(df.quantity) == {"dL_dh_norm", "dW_hh_norm", "dW_ih_norm", "dh_dtheta_norm", "tanh_deriv_mean"}
    assert (df.groupby(["step", "quantity"]).t.count() == 10).all() and df.value.notna().all()

    done = run_entry("analyze.py", *TOY_RUN, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = run_dir / "analysis"
    probed = pd.read_csv(out / "bptt.csv")
    assert set(probed.step) == {6} and set(probed.t) == set(range(10)) and probed.value.notna().all()
    lyap = pd.read_csv(out / "lyapunov.csv")
    assert lyap.groupby("when").size().to_dict() == {"init": 16, "trained": 16}  # H = 16 (smoke), state (h,)
    assert lyap.exponent.map(math.isfinite).all()
    summary = read_json(out / "metrics.json")
    assert math.isfinite(summary["bptt_decay_rate_predicted"]) and math.isfinite(summary["lyapunov_max"])


# ------------------------------------------------------------------------------ nothing outside cells/ asks a name

SCANNED = ("src", "pipelines")
CELLS_DIR = ROOT / "src" / "gradlab" / "cells"
MODEL_NAME_ATTRS = ("model.name", "cell.name", "model.kind", "net.kind")  # dotted tails that hold a model's name
COMPARE_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _names_in(node: ast.AST, names: frozenset[str]) -> set[str]:
    """The registered names a string constant, or a tuple/list/set of them, spells."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & names
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_names_in(e, names) for e in node.elts)) if node.elts else set()
    return set()


def model_name_branches(source: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """(line, what) for every place `source` branches on a model's name: a comparison (==, !=, in, is) with a
    registered name or a collection of them, or of a model-name attribute (model.name, cell.name, net.kind) with any
    string; a `case "<name>":`; a dict literal keyed by registered names that is indexed (a dispatch table); the
    identifier ModelName (an enum of the models). Docstrings and comments are not code: the AST has no comparison
    in them. Data that merely names models (a paper's setup, a default) is not a branch."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, COMPARE_OPS) for op in node.ops):
            operands = [node.left, *node.comparators]
            literal = set().union(*(_names_in(o, names) for o in operands))
            attr = [_dotted(o) for o in operands if _dotted(o).endswith(MODEL_NAME_ATTRS)]
            strings = any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands)
            if literal or (attr and strings):
                hits.append((node.lineno, f"compares {sorted(literal) or attr}"))
        elif isinstance(node, ast.MatchValue) and _names_in(node.value, names):
            hits.append((node.lineno, f"case {_names_in(node.value, names)}"))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict) and any(
                k is not None and _names_in(k, names) for k in node.value.keys):
            hits.append((node.lineno, "indexes a dict keyed by model names"))
        elif (isinstance(node, ast.Name) and node.id == "ModelName") or (
                isinstance(node, ast.Attribute) and node.attr == "ModelName"):
            hits.append((node.lineno, "ModelName"))
    return hits


def test_the_name_detector_finds_each_kind_of_branch_and_not_prose():
    """The detector below has the power it claims: each way of branching on a model's name is found, once, and a
    docstring, a comment, a paper's setup table and a default naming the same models are not."""
    names = frozenset(cells.names())
    branching = [
        'if cfg.model.name == "lstm": pass',
        'if kind in ("rnn", "irnn"): pass',
        'x = "gru" != name',
        'y = net.kind == "custom"',
        'match name:\n    case "exprnn":\n        pass',
        'f = {"rnn": 1, "lstm": 2}[name]',
        'z = ModelName.lstm',
    ]
    for src in branching:
        assert len(model_name_branches(src, names)) == 1, src
    prose = '"""if model == "lstm" the forget gate ..."""\n# kind == "rnn"\nSETUP = {"model.name": "nfg_lstm"}\n' \
            'def f(name: str = "lstm"):\n    return name\n'
    assert model_name_branches(prose, names) == []


def test_no_code_outside_the_cells_package_branches_on_a_model_name():
    """gradlab.cells' contract: everything else iterates over the registry and asks the cell, so a new cell needs
    no edit elsewhere. Every .py under src/ and pipelines/ outside src/gradlab/cells/ is parsed and searched with
    model_name_branches (conf/*.yaml names models by design). The scan reads what it must: the pipeline entry
    points and the modules that build, probe and analyse a model."""
    names = frozenset(cells.names())
    scanned = sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py") if CELLS_DIR not in p.parents)
    src = ROOT / "src" / "gradlab"
    assert {ROOT / "pipelines" / "train.py", src / "models" / "net.py", src / "probe" / "bptt.py",
            src / "stages" / "analyze.py"} <= set(scanned)
    found = [f"{path.relative_to(ROOT)}:{line}: {what}"
             for path in scanned for line, what in model_name_branches(path.read_text(), names)]
    assert len(names) >= 6 and not found, "\n".join(found)

