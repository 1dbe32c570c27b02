"""The diagonal linear recurrence h_t = λ ⊙ h_{t-1} + b_t over a whole sequence, without a loop over t.

A blocked (two-level) scan: the T steps are cut into n chunks of C ≈ √T steps. First every chunk runs from a zero
start, all n chunks at once: C dependent steps, each one elementwise product over (B, n, H). Then the state each
chunk hands on is itself a diagonal linear recurrence over the chunks, with λ^C: n dependent steps over (B, H).
Last, the state entering chunk k reaches its step j as λ^(j+1) ⊙ e_k, one elementwise pass. 2√T dependent steps
instead of T (64 for T = 1000), every one of them vectorised over the batch, the units and the chunks.

Why this scan: every power λ^k it forms has 1 ≤ k ≤ C, so |λ^k| ≤ 1 where |λ| ≤ 1, and nothing overflows or
cancels (the cumulative-sum form h_t = λ^t Σ_s λ^(−s) b_s overflows as soon as |λ|^(−T) does); it touches the
(B, T, H) tensor a constant number of times, where a Hillis–Steele or Blelloch scan makes log₂ T passes over it
(slower in a scratch comparison, as was a Toeplitz matrix product per chunk, which does C times the work);
autograd differentiates it as it stands (no custom backward), so training gets the exact
gradient of the recurrence, λ included. The chunks are unbound, never indexed one by one: the backward of an
index would write a full-size zero tensor per step. `make bench` prices it against nn.RNN's fused kernel.
λ may be real (the `linear` cell) or complex (the `lru`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def linear_scan(lam: Tensor, b: Tensor, h0: Tensor | None = None, chunk: int | None = None) -> Tensor:
    """h_t = λ ⊙ h_{t-1} + b_t for t = 0..T-1 from h_{-1} = h0 (default 0): b (B, T, H), λ (H,) -> (B, T, H).
    chunk: steps per chunk (default ⌈√T⌉, which makes the two sequential parts equal)."""
    B, T, H = b.shape
    C = max(1, min(chunk or math.isqrt(T - 1) + 1, T))
    n = -(-T // C)
    if n * C > T:
        b = torch.cat([b, b.new_zeros(B, n * C - T, H)], dim=1)
    steps = b.reshape(B, n, C, H).unbind(2)
    inner = [steps[0]]
    for j in range(1, C):  # every chunk at once, from a zero start
        inner.append(lam * inner[-1] + steps[j])
    power = [lam]
    for _ in range(1, C):
        power.append(power[-1] * lam)  # λ^1 … λ^C
    state = b.new_zeros(B, H) if h0 is None else h0
    entering = [state]
    for end in inner[-1].unbind(1)[:-1]:  # the state handed from chunk to chunk
        state = power[-1] * state + end
        entering.append(state)
    h = torch.stack(inner, dim=2) + torch.stack(power)[None, None] * torch.stack(entering, dim=1)[:, :, None]
    return h.reshape(B, n * C, H)[:, :T]
