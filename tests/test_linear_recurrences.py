"""The linear recurrences (gradlab.cells.linear, gradlab.cells.lru): the scan against the step loop, their exact
theory (Lyapunov exponents ln|λ|, the decay of ‖∂ℓ/∂h_t‖), the LRU's probe against an independent complex128 BPTT,
and the LRU's init as its paper defines it."""

from __future__ import annotations

import math

import pytest
import torch

from gradlab.analysis.lyapunov import lyapunov_spectrum
from gradlab.cells.scan import linear_scan
from gradlab.core.errors import ConfigError
from gradlab.models.net import RecurrentNet
from gradlab.probe.bptt import bptt_probe, decay_rate
from gradlab.tasks import TaskSpec

U = 2.0 ** -53


def raw_spec(input_size: int, T: int) -> TaskSpec:
    return TaskSpec("raw", T, T, input_size, 1, "regression", False, False, 1.0, None)


def step_loop(lam, b, h0=None):
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    for t in range(b.shape[1]):
        h = lam * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


@pytest.mark.numerics
@pytest.mark.parametrize("T", [1, 7, 36, 101])
@pytest.mark.parametrize("kind", ["real", "complex"])
def test_the_scan_is_the_step_loop_and_so_is_its_gradient(T, kind):
    """Both sum the same terms λ^k b_s in other orders: each h_t is a sum of at most T terms of size ≤ max|b|, so
    the difference is within 2·γ_T·Σ|b| (Higham §3.1) plus as much again for the powers (products of ≤ √T+1
    factors); 1e-12 at T ≤ 101 covers it (γ_101·Σ|b| ~ 101·1e-16·300) and a wrong power (off by a factor λ) fails."""
    torch.manual_seed(T)
    H = 5
    if kind == "complex":
        modulus, phase = torch.rand(H, dtype=torch.float64) * 0.2, torch.rand(H, dtype=torch.float64) * 3
        lam = torch.exp(torch.complex(-modulus, phase))
        b = torch.randn(3, T, H, dtype=torch.complex128)
        h0 = torch.randn(3, H, dtype=torch.complex128)
    else:
        lam = torch.rand(H, dtype=torch.float64) * 2 - 1
        b, h0 = torch.randn(3, T, H, dtype=torch.float64), torch.randn(3, H, dtype=torch.float64)
    lam.requires_grad_(True)
    for start in (None, h0):
        for chunk in (None, 4):
            got, want = linear_scan(lam, b, start, chunk), step_loop(lam, b, start)
            assert (got - want).abs().max() < 1e-12
            g_got = torch.autograd.grad(got.abs().square().sum(), lam)[0]
            g_want = torch.autograd.grad(want.abs().square().sum(), lam)[0]
            assert (g_got - g_want).abs().max() < 1e-12 * (1 + g_want.abs().max())


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["linear", "lru"])
def test_training_runs_the_probes_recurrence(kind):
    """The scan (training) and the step loop (probe, Lyapunov) compute one function, with its gradient."""
    torch.manual_seed(0)
    net = RecurrentNet(kind, raw_spec(3, 40), 8, num_layers=2).double()
    x = torch.randn(4, 40, 3, dtype=torch.float64)
    fast, slow = net(x), net.forward_unrolled(x)[0]
    assert (fast - slow).abs().max() < 1e-12
    g_fast = torch.autograd.grad(fast.square().sum(), list(net.parameters()))
    g_slow = torch.autograd.grad(slow.square().sum(), list(net.parameters()))
    for a, b in zip(g_fast, g_slow, strict=True):
        assert (a - b).abs().max() < 1e-10 * (1 + b.abs().max())


@pytest.mark.numerics
@pytest.mark.parametrize("k", [12, 4])
def test_linear_lyapunov_exponents_are_ln_abs_lambda(k):
    """J_t = diag(λ) at every step: each |R_ii| is |λ_i| up to the QR's rounding (a few u a step), so the exponents
    are ln|λ_i| to ~1e-15; with k < D the k largest (the fixed generic start frame, not the first k units)."""
    torch.manual_seed(4)
    H = 12
    net = RecurrentNet("linear", raw_spec(2, 200), H, lambda_min=-0.95, lambda_max=0.99).double()
    lam = net.cell.eigenvalues(net, 0).detach()
    spectrum = lyapunov_spectrum(net, torch.randn(2, 200, 2, dtype=torch.float64), k=k)
    expected = lam.abs().log().sort(descending=True).values[:k]
    # k < D: the frame converges to the top-k subspace at rate |λ_{k+1}/λ_k|^t; the finite-time mean carries that
    # transient, so the k largest are matched to the transient's size, and the first k units are not them
    tol = 1e-10 if k == H else 0.02
    assert (spectrum.exponents - expected).abs().max() < tol


@pytest.mark.numerics
def test_lru_lyapunov_exponents_are_ln_abs_lambda_twice():
    torch.manual_seed(5)
    net = RecurrentNet("lru", raw_spec(2, 100), 8, r_min=0.5, r_max=0.99).double()
    lam = net.cell.eigenvalues(net, 0).detach().abs().log().sort(descending=True).values
    spectrum = lyapunov_spectrum(net, torch.randn(2, 100, 2, dtype=torch.float64), k=8)
    assert (spectrum.exponents - lam.repeat_interleave(2)).abs().max() < 1e-10


@pytest.mark.numerics
def test_linear_gradient_decays_at_its_theory_line():
    """All λ_i = α: ∂ℓ/∂h_t = α^(T−1−t) ∂ℓ/∂h_{T−1} exactly, so the fitted rate is ln α to rounding (T·u per step)."""
    torch.manual_seed(6)
    T, alpha = 50, 0.93
    net = RecurrentNet("linear", raw_spec(2, T), 6, lambda_min=alpha, lambda_max=alpha).double()
    x = torch.randn(3, T, 2, dtype=torch.float64)
    result = bptt_probe(net, x, lambda out, tr: out.square().mean())
    rate = math.log(float(net.cell.eigenvalues(net, 0)[0].detach()))  # α as float32 holds it (drawn in float32)
    assert rate == pytest.approx(math.log(alpha), abs=1e-7)
    assert decay_rate(result.layers[0]["dL_dh_norm"]) == pytest.approx(rate, abs=1e-12)
    assert result.scalars["decay_rate_predicted"] == pytest.approx(rate, abs=1e-15)


def complex_reference(net: RecurrentNet, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """‖∂ℓ_b/∂h_t‖ (T,) of every LRU layer, written with complex128 states from the parameters alone: h_t = λ h_{t-1} +
    γ (B x_t); between layers the next input is GLU(Re(C h_t) + c + D x_t) = a ⊙ σ(b) of (a; b) = W y_t + w;
    ŷ = Re(C h_T) + c + D x_T on the last layer, ℓ_b = (ŷ − y)². For a real ℓ of complex h, autograd's gradient is
    ∂ℓ/∂Re h + i ∂ℓ/∂Im h, so its modulus over the modes is the norm over [Re h; Im h]."""
    N = net.hidden_size // 2

    def read(weight, h):  # Re(C h) for the real map `weight` of [Re h; Im h]: C = W_re − i W_im
        return (h @ torch.complex(weight[:, :N], -weight[:, N:]).T).real

    all_hs, inp = [], x
    for layer in range(net.num_layers):
        rec, par = (getattr(net.rnn.parametrizations, f"{name}_l{layer}") for name in ("weight_hh", "weight_ih"))
        nu, theta = rec.original0.detach(), rec.original1.detach()
        lam = torch.exp(-nu.exp()) * torch.exp(1j * theta.exp())  # exp(−e^ν) · e^(i e^θ), another way to write λ
        B = torch.complex(par.original0, par.original1).detach() * par.original2.exp().detach()[:, None]
        B.requires_grad_(True)  # a leaf, so that the states are in a graph
        hs, h = [], torch.zeros(x.shape[0], N, dtype=torch.complex128)
        for t in range(x.shape[1]):
            h = lam * h + inp[:, t].to(torch.complex128) @ B.T
            h.retain_grad()
            hs.append(h)
        all_hs.append(hs)
        if layer + 1 < net.num_layers:
            block = net.blocks[layer]
            y_t = torch.stack([read(block.C.weight.detach(), h) for h in hs], dim=1) + block.C.bias.detach() \
                + inp @ block.D.weight.detach().T
            ab = y_t @ block.glu.weight.detach().T + block.glu.bias.detach()
            inp = ab[..., :net.hidden_size] * torch.sigmoid(ab[..., net.hidden_size:])
    out = read(net.head.weight.detach(), all_hs[-1][-1]) + inp[:, -1] @ net.skip.weight.detach().T \
        + net.head.bias.detach()
    ((out - y) ** 2).sum().backward()  # Σ_b ℓ_b: each sample's own gradient
    return [torch.stack([h.grad.abs().square().sum(-1).sqrt().mean() for h in hs]) for hs in all_hs]


@pytest.mark.numerics
@pytest.mark.parametrize("layers", [1, 2])
def test_lru_probe_matches_an_independent_complex_bptt(layers):
    """Both are float64 BPTT of one function through T = 30 products (and the GLU between two layers): they differ
    by rounding alone, ~T·u relative (1e-14); 1e-10 leaves room and still fails a sign slip in Im (which moves the
    norms by O(1))."""
    torch.manual_seed(7)
    net = RecurrentNet("lru", raw_spec(2, 30), 6, num_layers=layers, r_min=0.6, r_max=0.95).double()
    x, y = torch.randn(4, 30, 2, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    probe = bptt_probe(net, x, lambda out, tr: ((out - y) ** 2).sum(1).mean()).layers
    for layer, reference in enumerate(complex_reference(net, x, y)):
        torch.testing.assert_close(probe[layer]["dL_dh_norm"], reference, rtol=1e-10, atol=0)


def test_one_lru_layer_is_linear_in_its_inputs_and_two_are_not():
    """Why conf/model/lru.yaml stacks two: one layer's output is linear in x (no product of two inputs, the adding
    problem's value times marker, is within its reach); the GLU between two layers makes it nonlinear."""
    torch.manual_seed(9)
    x1, x2 = torch.randn(2, 3, 12, 2, dtype=torch.float64)
    for layers, linear in ((1, True), (2, False)):
        net = RecurrentNet("lru", raw_spec(2, 12), 6, num_layers=layers).double()
        with torch.no_grad():
            net.head.bias.zero_()
            mixed, parts = net(2 * x1 + 3 * x2), 2 * net(x1) + 3 * net(x2)
        assert ((mixed - parts).abs().max() < 1e-12) == linear, layers


def test_lru_init_is_the_papers_ring_and_normalisation():
    torch.manual_seed(8)
    net = RecurrentNet("lru", raw_spec(3, 10), 400, r_min=0.4, r_max=0.9, max_phase=0.5).double()
    lam = net.cell.eigenvalues(net, 0).detach()
    r = lam.abs()
    assert r.min() >= 0.4 - 1e-12 and r.max() <= 0.9 + 1e-12
    assert lam.angle().min() >= 0 and lam.angle().max() <= 0.5 + 1e-12
    gamma = net.rnn.parametrizations.weight_ih_l0.original2.exp()
    torch.testing.assert_close(gamma, (1 - r ** 2).sqrt(), rtol=1e-6, atol=0)  # drawn in float64, held in float32
    # uniform over the ring's area: |λ|² is uniform on [r_min², r_max²] (mean 0.485, sd 0.188/√200 over 200 modes)
    assert abs(float((r ** 2).mean()) - (0.16 + 0.81) / 2) < 4 * 0.188 / math.sqrt(200)


@pytest.mark.parametrize("kind,options,message", [
    ("lru", {"r_max": 1.0}, r"model.r_max=1.0 is out of range: must be in \[model.r_min=0.9, 1\)"),
    ("lru", {"max_phase": 0.0}, r"model.max_phase=0.0 is out of range"),
    ("linear", {"lambda_min": -1.5}, r"model.lambda_min=-1.5 is out of range: must be in \[-1, 1\]"),
])
def test_bad_options_name_the_value_and_the_range(kind, options, message):
    with pytest.raises(ConfigError, match=message):
        RecurrentNet(kind, raw_spec(2, 5), 8, **options)


def test_an_odd_lru_size_is_refused():
    with pytest.raises(ConfigError, match="model.hidden_size=7 is out of range: the lru's state is H/2 complex"):
        RecurrentNet("lru", raw_spec(2, 5), 7)


@pytest.mark.slow
@pytest.mark.ci  # ~3 s: moved out of make test for time
@pytest.mark.parametrize("kind", ["linear", "lru"])
def test_every_task_runs_through_the_scan_the_probe_and_the_spectrum(kind):
    """Every registered task's inputs (floats, tokens, streams) and outputs (last step, every step, labels) through
    the scan, the unrolled twin, the probe with its memory measurements, and the Lyapunov spectrum (the trainings of
    every cell on the adding task: tests/test_probes.py)."""
    from gradlab.analysis.lyapunov import lyapunov_spectrum
    from gradlab.probe.bptt import ProbeConfig
    from gradlab.tasks import TASKS

    for name, task_cls in TASKS.items():
        task = task_cls(seq_len=30) if "seq_len" in task_cls.__dataclass_fields__ else task_cls()
        x, _ = task.generate(0, 3)
        net = RecurrentNet(kind, task.spec(), 8).double()
        fast, (slow, _) = net(x), net.forward_unrolled(x)
        assert fast.shape == slow.shape and (fast - slow).abs().max() < 1e-10, name
        probe = bptt_probe(net, x, lambda out, tr: out.square().mean(),
                           memory=ProbeConfig(sensitivity_directions=4, hessian_iters=2))
        assert torch.isfinite(probe.layers[0]["dL_dh_norm"]).all() and probe.scalars["sensitivity"] > 0, name
        assert torch.isfinite(lyapunov_spectrum(net, x[:1], k=4).exponents).all(), name
