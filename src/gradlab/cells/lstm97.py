"""The LSTM of Hochreiter & Schmidhuber 1997, as their paper describes it (Sections 4 and 5; Experiment 4).

Memory blocks of `block_size` cells: the cells of a block share one input gate and one output gate; there is no
forget gate (that came with Gers et al. 2000). Each cell has its own cell input. With y_in, y_out the block's gates,

    c_t = c_{t-1} + y_in · g(net_c),    h_t = y_out · h(c_t),

and their squashing functions g(x) = 4σ(x) − 2 in [−2, 2] and h(x) = 2σ(x) − 1 in [−1, 1]. Rows of W_ih and W_hh:
[input gates (H/s), output gates (H/s), cell inputs (H)], for H cells in blocks of s. The recurrent input is the
cells' outputs h_{t-1} (theirs: cells and gates, the whole hidden layer; say so where it is compared).

Their truncated gradient (`model.truncate=true`): the error reaching a gate's or a cell input's net input changes
its incoming weights but does not flow back through h_{t-1}; only the constant error carousel c_t = c_{t-1} + …
carries error back in time. The step implements it by taking the gradient path through h_{t-1} out of u_t =
W_hh h_{t-1} + b_hh (same values; ∂u_t/∂W_hh and ∂L/∂u_t kept), so the probe's twin records the truncated gradient
the training uses. Training with truncation takes `sequence`: the states from a loop without autograd, then every
step's gates at once from the (constant) h_{t-1}, and c by a cumulative sum, which is the carousel: the same
gradient as the step loop, at the cost of a few batched operations (tests/test_lstm97.py checks both).

Init as theirs: every weight U(−0.1, 0.1), biases 0 except the input gates' (`model.input_gate_bias`, one value
per block: their negative biases against state drift)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gradlab.cells.base import Cell, Net, RNNWeights, State, register
from gradlab.core.errors import ConfigError


def _layout(hidden_size: int, options: dict[str, Any]) -> tuple[int, int]:
    """(block size s, number of blocks H/s), checked."""
    s = int(options.get("block_size") or 1)
    if s < 1 or hidden_size % s:
        raise ConfigError(f"model.block_size={s} must be an integer >= 1 that divides model.hidden_size="
                          f"{hidden_size}")
    return s, hidden_size // s


def _states_before(net: Net, vb: Tensor, w_hh: Tensor) -> Tensor:
    """h_{t-1} of every step ((B, T, H), h_{-1} = 0) from vb = W_ih x_t + b_ih + b_hh, by a loop without autograd.
    In numpy: at the 1997 sizes (4 cells, one sequence per update) a torch operation's dispatch is most of the
    cost (measured on 2 cores: 6.8 ms a sequence in torch, 1.4 ms in numpy, T=110)."""
    s, blocks = _layout(net.hidden_size, net.options)
    cell = np.concatenate([np.arange(blocks).repeat(s), blocks + np.arange(blocks).repeat(s),
                           2 * blocks + np.arange(net.hidden_size)])  # each cell's input gate, output gate, input
    a_in = vb.cpu().numpy()[:, :, cell]
    w = np.ascontiguousarray(w_hh.cpu().numpy()[cell].T)
    B, T, H = a_in.shape[0], a_in.shape[1], net.hidden_size
    h, c = np.zeros((B, H), a_in.dtype), np.zeros((B, H), a_in.dtype)
    out = np.zeros((B, T, H), a_in.dtype)
    for t in range(T - 1):
        g = 1 / (1 + np.exp(-(a_in[:, t] + h @ w)))
        c = c + g[:, :H] * (4 * g[:, 2 * H:] - 2)
        h = g[:, H:2 * H] * (2 / (1 + np.exp(-c)) - 1)
        out[:, t + 1] = h
    return torch.from_numpy(out).to(vb.device)


@register
class LSTM97(Cell):
    name = "lstm97"
    order = 70  # its place in the registry (plot colours, tables, error texts)
    about = ("the 1997 LSTM (Hochreiter & Schmidhuber): blocks of cells sharing input and output gates, no forget "
             "gate, optional truncated gradient; step loop")
    theory = "0: no forget gate, the carousel c_t = c_{t-1} + … keeps the gradient (truncated: the only path back)"
    state = ("h", "c")
    gates = 3  # at most 3H rows (block_size 1); an upper bound for the memory estimate

    @dataclass
    class Options:
        block_size: int | None = None  # cells per memory block, sharing its input and output gates (null: 1)
        truncate: bool | None = None  # their truncated gradient: error flows back only through the carousel
        input_gate_bias: list[float] | None = None  # the input gates' initial biases, one per block (null: 0)
    inits = ("default",)
    fused_kernel = False

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.Module:
        s, blocks = _layout(hidden_size, options)
        biases = options.get("input_gate_bias")
        if biases is not None and len(biases) != blocks:
            raise ConfigError(f"model.input_gate_bias={list(biases)} needs one value per memory block: "
                              f"{blocks} (model.hidden_size={hidden_size} / model.block_size={s})")
        return RNNWeights(input_size, hidden_size, num_layers, rows=2 * blocks + hidden_size)

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        _, blocks = _layout(net.hidden_size, net.options)
        biases = net.options.get("input_gate_bias")
        for layer in range(net.num_layers):
            w_ih, w_hh, b_ih, b_hh = net.weights(layer)
            for w in (w_ih, w_hh):
                w.uniform_(-0.1, 0.1)
            b_ih.zero_()
            b_hh.zero_()
            if biases is not None:
                b_ih[:blocks] = torch.tensor([float(b) for b in biases])

    @staticmethod
    def _cell(net: Net, a: Tensor, c_prev: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(y_in · g, y_out, and c when c_prev is given) from the pre-activations a (..., 2·H/s + H)."""
        s, blocks = _layout(net.hidden_size, net.options)
        gates = torch.sigmoid(a)
        y_in = gates[..., :blocks].repeat_interleave(s, dim=-1)
        y_out = gates[..., blocks:2 * blocks].repeat_interleave(s, dim=-1)
        ig = y_in * (4 * gates[..., 2 * blocks:] - 2)
        return ig, y_out, (c_prev + ig if c_prev is not None else ig)

    def step(self, net: Net, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        h_prev, c_prev = state
        if net.options.get("truncate") and h_prev.requires_grad:
            w_hh = net.weights(layer)[1]
            u = u - (h_prev - h_prev.detach()) @ w_hh.T  # same value; no gradient reaches h_{t-1} through u
        _, y_out, c = self._cell(net, v + u, c_prev)
        return y_out * (2 * torch.sigmoid(c) - 1), c

    def sequence(self, net: Net, inp: Tensor) -> tuple[Tensor, Tensor] | None:
        """The truncated gradient, batched over steps (module docstring); None without truncation."""
        if not net.options.get("truncate"):
            return None
        for layer in range(net.num_layers):
            w_ih, w_hh, b_ih, b_hh = net.weights(layer)
            v = inp @ w_ih.T + b_ih
            before = _states_before(net, (v + b_hh).detach(), w_hh.detach())
            a = v + before @ w_hh.T + b_hh  # h_{t-1} a constant: the truncation
            ig, y_out, _ = self._cell(net, a, None)
            h = y_out * (2 * torch.sigmoid(ig.cumsum(dim=1)) - 1)  # c_t = Σ_{τ≤t} y_in g: the carousel
            if layer + 1 < net.num_layers:
                inp = net.next_input(layer, h, inp)
        return h, inp

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        return {"decay_rate_predicted": 0.0}
