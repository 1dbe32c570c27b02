"""What the curse of memory is about, beside the gradient through time (docs/theory.md, "The curse of memory").

Zucchet & Orvieto 2024: as a recurrence's memory grows, the hidden state becomes ever more sensitive to the recurrent
parameters, even where ‖∂h_T/∂h_t‖ neither vanishes nor explodes, and the loss landscape sharpens with it. Two
measurements, for every cell, on the probe's batch and in the probe's dtype:

- `state_sensitivity`: S_t = √(mean_b ‖∂h_t/∂θ_rec‖_F²), per layer and step, θ_rec the layer's recurrent
  parameters (its W_hh, or the originals a parametrized W_hh is computed from: λ for `linear`, ν and θ for `lru`,
  A for `exprnn`). Forward mode: `torch.func.jvp` of the unrolled twin along directions v of θ_rec, vmapped over
  the directions: ‖J v‖² summed over the P unit vectors is ‖J‖_F² exactly, so where P ≤ `directions` the basis is
  used and the value is exact; otherwise `directions` Gaussian v (Hutchinson: E‖J v‖² = ‖J‖_F², unbiased), whose
  relative standard error over the batch's samples is returned with it. Forward mode because the quantity is a
  Jacobian of every h_t with respect to few directions: one pass gives all T steps, where backward mode would
  need one pass per (t, unit).
- `hessian_top`: the dominant eigenvalue of the loss's Hessian with respect to every layer's θ_rec (the
  landscape's sharpness), by power iteration on Hessian-vector products (double backward through the unrolled
  twin); the Rayleigh quotient of the last iterate, with its sign.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vmap
from torch.nn.utils import parametrize

from gradlab.models.net import RecurrentNet


def recurrent_parameters(net: RecurrentNet, layer: int) -> dict[str, Tensor]:
    """θ_rec of one layer by its name in `net`: the parameters W_hh is computed from (itself, if not parametrized)."""
    name = f"weight_hh_l{layer}"
    if parametrize.is_parametrized(net.rnn, name):
        inner = getattr(net.rnn.parametrizations, name)
        return {f"rnn.parametrizations.{name}.{k}": p for k, p in inner.named_parameters()}
    return {f"rnn.{name}": getattr(net.rnn, name)}


class _States(nn.Module):
    """The unrolled twin's h of every step of one layer, as a module (so that functional_call can swap θ_rec)."""

    def __init__(self, net: RecurrentNet, layer: int):
        super().__init__()
        self.net, self.layer = net, layer

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack(self.net.forward_unrolled(x)[1][self.layer].h)  # (T, B, H)


def state_sensitivity(net: RecurrentNet, x: Tensor, layer: int, directions: int = 16,
                      seed: int = 0) -> tuple[Tensor, float]:
    """(S_t (T,) float64 CPU, its relative standard error: 0 where exact). See the module's doc."""
    theta = recurrent_parameters(net, layer)
    sizes = [p.numel() for p in theta.values()]
    P = sum(sizes)
    first = next(iter(theta.values()))
    if P <= directions:
        tangents = torch.eye(P, dtype=first.dtype, device=first.device)
    else:
        g = torch.Generator().manual_seed(seed)
        tangents = torch.randn(directions, P, generator=g, dtype=torch.float64).to(first.device, first.dtype)
    module = _States(net, layer)
    names = [f"net.{k}" for k in theta]
    primals = tuple(p.detach() for p in theta.values())

    def states(*values: Tensor) -> Tensor:
        return functional_call(module, dict(zip(names, values, strict=True)), (x,), strict=False)

    def along(v: Tensor) -> Tensor:
        parts = tuple(t.view_as(p) for t, p in zip(v.split(sizes), primals, strict=True))
        return jvp(states, primals, parts)[1]  # (T, B, H): J_t v per sample

    with torch.no_grad():
        jv = vmap(along)(tangents)  # (K, T, B, H)
    sq = jv.double().square().sum(-1)  # (K, T, B): ‖J_t v‖² per direction and sample
    if P <= directions:
        per_sample = sq.sum(0)  # ‖J_t‖_F² exactly
        rel_se = 0.0
    else:
        per_sample = sq.mean(0)
        last = sq[:, -1].flatten()  # K·B independent estimates of the last step's mean square
        rel_se = float(last.std() / last.mean() / math.sqrt(last.numel())) if last.mean() > 0 else math.nan
    return per_sample.mean(-1).sqrt().cpu(), rel_se


def hessian_top(net: RecurrentNet, x: Tensor, loss_fn: Callable, iters: int = 20, rtol: float = 1e-3,
                seed: int = 0) -> tuple[float, int]:
    """(the dominant eigenvalue of ∂²L/∂θ_rec², the iterations it took) by power iteration from a seeded start;
    it stops when the Rayleigh quotient moves by less than rtol of itself."""
    theta = [p for layer in range(net.num_layers) for p in recurrent_parameters(net, layer).values()]
    with torch.enable_grad():
        if parametrize.is_parametrized(net.rnn):
            with parametrize.cached():
                out, traces = net.forward_unrolled(x)
        else:
            out, traces = net.forward_unrolled(x)
        grads = torch.autograd.grad(loss_fn(out, traces), theta, create_graph=True)
        g = torch.Generator().manual_seed(seed)
        v = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.device, p.dtype) for p in theta]
        estimate, done = math.nan, 0
        for step in range(1, iters + 1):
            done = step
            norm = torch.sqrt(sum(t.square().sum() for t in v))
            v = [t / norm for t in v]
            hv = torch.autograd.grad(grads, theta, grad_outputs=v, retain_graph=True, allow_unused=True)
            hv = [torch.zeros_like(t) if h is None else h for h, t in zip(hv, v, strict=True)]
            previous, estimate = estimate, float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
            v = [h.detach() for h in hv]
            if not all(torch.isfinite(t).all() for t in v) or float(torch.sqrt(sum(t.square().sum() for t in v))) == 0:
                break
            if abs(estimate - previous) <= rtol * abs(estimate):
                break
    return estimate, done
