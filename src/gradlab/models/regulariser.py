"""Pascanu, Mikolov & Bengio 2013's vanishing-gradient regulariser Ω ("On the difficulty of training recurrent neural
networks", ICML, section 3.3, eq. 9-10), computed as their reference code computes it (pascanur/trainingRNNs, RNN.py
at 3f5df3f; line numbers below):

    Ω = Σ_{(k,b) kept} ( ‖g_{k+1} J_k‖² / ‖g_{k+1}‖² − 1 )² / #kept,   J_k = ∂h_{k+1}/∂h_k,   k = 0 … T−1,

g_{k+1} = ∂E/∂h_{k+1} the total derivative of the task loss (one row per sequence b), held constant; a (k, b) is kept
where ‖g_{k+1}‖² ≥ 1e-20. The training loss is E + α·Ω. Where the code departs from the paper's text, gradlab
follows the code:
- the state is h_t = tanh(W_hh h_{t-1} + W_uh u_t + b_hh) (l. 157-159), as gradlab's rnn cell (the paper's eq. 11
  writes the pre-activation x_t as the state); g is the gradient w.r.t. h (the scan's state buffer, l. 166-186);
- the ratio is of SQUARED norms (l. 205-207: tmp_x and tmp_y are sums of squares), not the norms of eq. 9; near the
  optimum (r² − 1)² ≈ 4 (r − 1)²;
- every step counts, the first transition h_0 → h_1 included (l. 195-197: d_ht[1:] against h_1 … h_T);
- a (k, b) with ‖g‖² below 1e-20 (their `bound`, l. 67, 488-490) is left out, and Ω is the MEAN over the kept
  (k, b), not a sum over k (l. 207-209: Σ_k mean_b terms / Σ_k mean_b kept); none kept: 0 here (theirs 0/0);
- Ω's gradient reaches W_hh only (l. 210: TT.grad(tmp_reg, W_hh) with d_ht and ht free variables, replaced by the
  real g and h only after differentiating, l. 211-215): g AND the step's derivatives at the recorded point
  (tanh'(a_{k+1}) = 1 − h_{k+1}²) are constants. This is the paper's immediate derivative ∂⁺Ω/∂W_rec (eq. 10, x_k
  and ∂E/∂x_{k+1} constant) in h's terms: with the pre-activation x as state, a constant x_k freezes σ'(x_k);
- α·∂Ω/∂W_hh joins the task gradient before the norm clipping (l. 216-230, cutoff 1 by default, l. 495): here
  through the loss E + α·Ω, which Lightning backpropagates and clips as one gradient. α = 2 is their default (l. 467).

Any registered cell, through its step: W_hh enters a step only through u_k = W_hh h_k + b_hh, so
g·∂state_{k+1}/∂state_k = (g·∂step/∂u_k) W_hh + g·∂step/∂state_k (the direct path: the GRU's z ⊙ h_k, the LSTM's
c_k). Both vectors come from one backward pass through the step recomputed at the recorded (detached) point, every
step at once (a step takes any leading shape); only their product with the live W_hh carries a gradient. For the
tanh RNN that is their expression exactly, (g ⊙ (1 − h_{k+1}²)) W_hh. Where the state is (h, c), the state is the
pair: g = (∂E/∂h, ∂E/∂c), J_k the pair's Jacobian, norms over both parts (c_0 = 0, forward_unrolled's default). A
stacked net pools every layer's (k, b) into the one mean (theirs had one layer), each with its own temporal Jacobian
and total derivative. A step that takes h_k's gradient path out of u_k (lstm97's truncation) gets the Jacobian it
backpropagates, but its W_hh-gradient still follows the u path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gradlab.core.choices import RegulariserName, choose
from gradlab.core.errors import out_of_range

if TYPE_CHECKING:
    from gradlab.models.net import LayerTrace, RecurrentNet


@dataclass
class RegulariserConfig:
    """Pascanu, Mikolov & Bengio 2013's vanishing-gradient regulariser (gradlab.models.regulariser): the training loss
    is
    E + alpha·Ω, computed on the unrolled twin; train/loss stays E and train/omega records Ω."""

    name: RegulariserName = RegulariserName.none
    alpha: float = 2.0  # their RNN.py default; with name=pascanu, 0 records Ω without training on it

    def __post_init__(self) -> None:
        self.name = choose(RegulariserName, "regulariser.name", self.name)  # also when built outside Hydra
        if not 0 <= self.alpha < float("inf"):  # NaN too
            raise out_of_range("regulariser.alpha", self.alpha, "a finite number >= 0")


BOUND = 1e-20  # their `bound` on ‖g‖² (RNN.py l. 67, 490): a (k, b) below it is left out of Ω


def _parts(net: RecurrentNet, trace: LayerTrace) -> list[list[Tensor]]:
    """The state's parts at every step of one layer: [h_1 … h_T], and [c_1 … c_T] where the state is (h, c)."""
    return [trace.h, trace.c][:len(net.cell.state)]


def state_gradients(net: RecurrentNet, traces: list[LayerTrace], loss: Tensor) -> list[tuple[Tensor, ...]]:
    """g_k = ∂E/∂state_k of every layer, one (T, B, H) per part of the state, detached; the loss's graph is kept."""
    parts = [part for trace in traces for part in _parts(net, trace)]
    flat = [t for part in parts for t in part]
    grads = torch.autograd.grad(loss, flat, retain_graph=True, allow_unused=True)  # c_T reaches no loss: None
    grads = [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(flat, grads, strict=True)]
    stacked, i = [], 0
    for part in parts:
        stacked.append(torch.stack(grads[i:i + len(part)]))
        i += len(part)
    n = len(net.cell.state)
    return [tuple(stacked[layer * n:(layer + 1) * n]) for layer in range(len(traces))]


def backpropagated(net: RecurrentNet, layer: int, trace: LayerTrace, g: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """g_{k+1}·∂state_{k+1}/∂state_k for every k at once, one (T, B, H) per part; a graph to W_hh only."""
    if not trace.u:
        raise ValueError("the regulariser needs the unrolled twin's trace: forward_unrolled(x, record=True)")
    starts = [trace.h0, torch.zeros_like(trace.h0)][:len(g)]
    prev = tuple(torch.stack([s0, *part[:-1]]).detach().requires_grad_(True)
                 for s0, part in zip(starts, _parts(net, trace), strict=True))
    u = torch.stack(trace.u).detach().requires_grad_(True)
    with torch.enable_grad():
        new = net.cell.step(net, layer, torch.stack(trace.v).detach(), u, prev)
        dot = sum((gi * ni).sum() for gi, ni in zip(g, new, strict=True))
        d_u, *d_prev = torch.autograd.grad(dot, (u, *prev), allow_unused=True)
    d_prev = [torch.zeros_like(p) if d is None else d for p, d in zip(prev, d_prev, strict=True)]
    return (d_u @ net.weights(layer)[1] + d_prev[0], *d_prev[1:])


def pascanu_omega(net: RecurrentNet, traces: list[LayerTrace], loss: Tensor) -> Tensor:
    """Ω of one batch (module docstring), from the traces of `net.forward_unrolled(x, record=True)` and the task loss
    E computed from its output; differentiable w.r.t. W_hh (every layer's) only."""
    num, den = [], []
    for layer, (trace, g) in enumerate(zip(traces, state_gradients(net, traces, loss), strict=True)):
        num.append(sum(x.square().sum(-1) for x in backpropagated(net, layer, trace, g)))
        den.append(sum(x.square().sum(-1) for x in g))
    num, den = torch.cat(num), torch.cat(den)  # (layers · T, B)
    kept = den >= BOUND
    ratio = num / torch.where(kept, den, torch.ones_like(den))
    terms = torch.where(kept, (ratio - 1).square(), torch.zeros_like(ratio))
    return terms.sum() / kept.sum().clamp_min(1)
