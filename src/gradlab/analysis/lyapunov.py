"""Finite-time Lyapunov spectra of a recurrent net along its own trajectories (docs/theory.md, docs/probe.md).

The state s_t of one sequence is every layer's state: h_t, and c_t for the cells that have one (dimension
num_layers x H x the number of state parts). Driven by its inputs x_t the net is a map s_t = F(s_{t-1}, x_t), and the k
largest finite-time exponents of the product of its state Jacobians J_t = ∂s_t/∂s_{t-1} along the trajectory are
found by the QR method: Q_0 a fixed orthonormal frame (`start_frame`); J_t Q_{t-1} = Q_t R_t;
λ_i = (1/T) Σ_t ln|R_t[i, i]|. The
products J_t Q are forward-mode derivatives (torch.func.jvp, vmapped over the k columns and the batch), exact up to
rounding, never finite differences.

What they mean beside the BPTT probe: the gradient a loss at the last step sends back, ∂ℓ/∂s_t = (J_T ··· J_{t+1})^T
∂ℓ/∂s_T, shrinks or grows over n steps like exp(λ_1 n) for a generic direction, so λ_1 is the dynamical rate behind
the probe's measured `bptt_decay_rate` (ln per step; < 0: vanishing). The NFG's direct cell path has ∂c_t/∂c_{t-1}
= I, which holds its largest exponents near 0."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp, vmap

from gradlab.models.net import RecurrentNet


@dataclass(frozen=True)
class Spectrum:
    exponents: Tensor  # (k,) the mean over the batch's trajectories, largest first (ln per step)
    per_sequence: Tensor  # (B, k)
    steps: int  # steps accumulated (T minus the transient skipped)

    @property
    def largest(self) -> float:
        return float(self.exponents[0])


def state_size(net: RecurrentNet) -> int:
    return net.num_layers * net.hidden_size * len(net.cell.state)


def step_map(net: RecurrentNet):
    """F(s, x_t) for ONE sequence: s (D,) the stacked state [h^0, (c^0,) h^1, (c^1,) ...], x_t the encoded input of
    that step (input_size,). The cell's own step, as RecurrentNet.forward_unrolled runs it."""
    H, parts, cell = net.hidden_size, len(net.cell.state), net.cell
    per = parts * H
    layers = [net.weights(layer) for layer in range(net.num_layers)]

    def F(s: Tensor, x: Tensor) -> Tensor:
        out, inp = [], x
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
            state = tuple(s[layer * per:(layer + 1) * per].split(H))
            state = cell.step(net, layer, w_ih @ inp + b_ih, w_hh @ state[0] + b_hh, state)
            out += state
            if layer + 1 < len(layers):
                inp = net.next_input(layer, state[0], inp)
        return torch.cat(out)

    return F


def start_frame(D: int, k: int) -> Tensor:
    """Q_0 (D, k): the unit vectors for k = D; for k < D a fixed generic orthonormal frame (QR of a seeded Gaussian).
    The first k unit vectors would not do: a map that keeps coordinate subspaces (a diagonal recurrence: linear,
    lru) would keep the frame in them, and the method would return the first k units' exponents, not the k
    largest (tests/test_lyapunov.py::test_a_diagonal_map_gives_its_k_largest_exponents_with_k_below_d)."""
    if k == D:
        return torch.eye(D, dtype=torch.float64)
    gaussian = torch.randn(D, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.linalg.qr(gaussian).Q


@torch.no_grad()
def lyapunov_spectrum(net: RecurrentNet, x: Tensor, k: int | None = None, skip: int = 0,
                      dtype: torch.dtype | None = None) -> Spectrum:
    """The k largest finite-time Lyapunov exponents (ln per step) of `net` driven by the batch `x` ((B, T) tokens or
    (B, T, input_size)), from the zero state, each sequence's own trajectory; the first `skip` steps move the state
    and the frame but are not counted (a transient). k: default min(D, 16). dtype: e.g. torch.float64 on a copy."""
    if dtype is not None and dtype != net.head.weight.dtype:
        import copy

        net = copy.deepcopy(net).to(dtype)
    inp = net.encode(x)
    B, T, _ = inp.shape
    D = state_size(net)
    k = min(D, 16) if k is None else k
    if not 1 <= k <= D:
        raise ValueError(f"k={k}: the state has {D} dimensions; choose 1..{D}")
    if not 0 <= skip < T:
        raise ValueError(f"skip={skip}: the sequences have {T} steps; choose 0..{T - 1}")
    F = step_map(net)

    def advance(s: Tensor, xt: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        """One sequence: the next state and J_t q for every column of q (D, k)."""
        nxt = F(s, xt)
        jq = vmap(lambda v: jvp(lambda z: F(z, xt), (s,), (v,))[1], in_dims=1, out_dims=1)(q)
        return nxt, jq

    batched = vmap(advance)
    s = inp.new_zeros(B, D)
    q = start_frame(D, k).to(inp.device, inp.dtype).expand(B, D, k).contiguous()
    logs = inp.new_zeros(B, k)
    for t in range(T):
        s, jq = batched(s, inp[:, t], q)
        q, r = torch.linalg.qr(jq)
        if t >= skip:
            logs += torch.diagonal(r, dim1=-2, dim2=-1).abs().log()
    per_sequence = logs / (T - skip)
    per_sequence = per_sequence.sort(dim=1, descending=True).values  # QR's order is nearly sorted; make it so
    return Spectrum(per_sequence.mean(0), per_sequence, T - skip)
