"""The memory measurements of the probe (gradlab.probe.memory): the state's sensitivity to the recurrent parameters
against reverse-mode autograd and a closed form, its estimator against its stated error, and the Hessian's top
eigenvalue against the explicit Hessian."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from gradlab import cells
from gradlab.models.net import RecurrentNet
from gradlab.probe.memory import hessian_top, recurrent_parameters, state_sensitivity
from gradlab.tasks import TaskSpec

MODELS = cells.names()


def raw_spec(input_size: int, T: int) -> TaskSpec:
    return TaskSpec("raw", T, T, input_size, 1, "regression", False, False, 1.0, None)


def reverse_mode_sensitivity(net, x, layer=0):
    """√(mean_b ‖∂h_t/∂θ_rec‖_F²) by one backward pass per (t, b, unit): an independent route to the same number."""
    theta = list(recurrent_parameters(net, layer).values())
    h = torch.stack(net.forward_unrolled(x)[1][layer].h)  # (T, B, H)
    T, B, H = h.shape
    out = torch.zeros(T, dtype=torch.float64)
    for t in range(T):
        total = 0.0
        for b in range(B):
            for i in range(H):
                grads = torch.autograd.grad(h[t, b, i], theta, retain_graph=True, allow_unused=True)
                total += sum(float(g.square().sum()) for g in grads if g is not None)
        out[t] = (total / B) ** 0.5
    return out


@pytest.mark.numerics
@pytest.mark.parametrize("kind", MODELS)
def test_forward_mode_sensitivity_is_reverse_modes(kind):
    """Exact mode (all P unit directions): both sum the same P·H squared derivatives, each from a float64 chain of
    T = 6 steps, so they differ by rounding (~1e-15 relative); 1e-12 fails a missed parameter or step."""
    torch.manual_seed(0)
    net = RecurrentNet(kind, raw_spec(2, 6), 4, num_layers=2).double()
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    for layer in (0, 1):
        got, rel_se = state_sensitivity(net, x, layer, directions=10_000)
        assert rel_se == 0.0
        torch.testing.assert_close(got, reverse_mode_sensitivity(net, x, layer), rtol=1e-12, atol=1e-300)


@pytest.mark.numerics
def test_one_linear_unit_has_the_theorys_sensitivity():
    """h_t = λ h_{t-1} + b x_t: ∂h_t/∂λ = Σ_{k≥1} k λ^(k−1) b x_{t−k}, the quantity of docs/theory.md's closed forms."""
    torch.manual_seed(1)
    T = 30
    net = RecurrentNet("linear", raw_spec(1, T), 1).double()
    lam, b = float(net.cell.eigenvalues(net, 0).detach()), float(net.weights(0)[0].detach())
    x = torch.randn(3, T, 1, dtype=torch.float64)
    exact = torch.stack([sum(k * lam ** (k - 1) * b * x[:, t - k, 0] for k in range(1, t + 1)) if t else
                         torch.zeros(3, dtype=torch.float64) for t in range(T)])
    got, _ = state_sensitivity(net, x, 0)
    torch.testing.assert_close(got, exact.square().mean(1).sqrt(), rtol=1e-12, atol=1e-300)


def test_the_estimate_lies_within_its_stated_error():
    """Gaussian directions (P = 256 > 16): E‖J v‖² = ‖J‖_F²; the returned relative standard error is of the mean
    square at the last step, so the estimate's square lies within 4 of them of the exact one (a seeded draw: the
    same on every machine), and the estimator is not exact by accident (it differs from it)."""
    torch.manual_seed(2)
    net = RecurrentNet("rnn", raw_spec(2, 10), 16).double()
    x = torch.randn(8, 10, 2, dtype=torch.float64)
    exact, _ = state_sensitivity(net, x, 0, directions=10_000)
    estimate, rel_se = state_sensitivity(net, x, 0, directions=16)
    assert 0 < rel_se < 0.2
    ratio = float(estimate[-1] ** 2 / exact[-1] ** 2)
    assert abs(ratio - 1) <= 4 * rel_se and ratio != 1.0


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["rnn", "linear", "lru", "gru"])
def test_hessian_top_is_the_explicit_hessians_dominant_eigenvalue(kind):
    """Power iteration to a Rayleigh quotient steady to 1e-12 against eigvalsh of the explicit Hessian
    (torch.autograd.functional.hessian over θ_rec): the quotient's error is of the order of that step, times
    1/(1 − (λ₂/λ₁)²) for the gap; 1e-6 relative holds for gaps down to 1e-6 and fails a wrong vector product."""
    torch.manual_seed(3)
    net = RecurrentNet(kind, raw_spec(2, 8), 4).double()
    x, y = torch.randn(3, 8, 2, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64)
    loss_fn = lambda out, tr: ((out - y) ** 2).mean()  # noqa: E731
    theta = recurrent_parameters(net, 0)
    sizes = [p.numel() for p in theta.values()]
    flat = torch.cat([p.detach().flatten() for p in theta.values()])

    def loss_of(v):
        parts = {k: t.view_as(p) for (k, p), t in zip(theta.items(), v.split(sizes), strict=True)}
        out = functional_call(net, parts, (x,), strict=False)
        return loss_fn(out, None)

    eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    dominant = float(eig[eig.abs().argmax()])
    top, iters = hessian_top(net, x, loss_fn, iters=5000, rtol=1e-12)
    assert iters < 5000
    assert top == pytest.approx(dominant, rel=1e-6)
