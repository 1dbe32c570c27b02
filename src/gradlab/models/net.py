"""The recurrent network around a cell (gradlab.cells): fused kernel for training, the unrolled twin for probing.

`RecurrentNet` trains on its cell's fused module (nn.RNN / nn.LSTM / nn.GRU: oneDNN on CPU, cuDNN on GPU; a cell
without one runs its step in a loop). `forward_unrolled` runs the same parameters as an explicit per-step loop of
the cell's step, keeping x_t, v_t = W_ih x_t + b_ih, u_t = W_hh h_{t-1} + b_hh, h_t and c_t, so that one backward
pass gives dL/dh_t, dL/dc_t and the per-step weight-gradient contributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradlab import cells
from gradlab.cells.base import ElementwiseCell
from gradlab.models.config import ModelConfig
from gradlab.tasks import TaskSpec


@dataclass
class LayerTrace:
    """Per-step tensors of one layer from the unrolled twin (lists of length T, each (B, ·))."""

    x: list[Tensor] = field(default_factory=list)  # layer input x_t
    v: list[Tensor] = field(default_factory=list)  # input pre-activation v_t = W_ih x_t + b_ih
    u: list[Tensor] = field(default_factory=list)  # recurrent pre-activation u_t = W_hh h_{t-1} + b_hh
    h: list[Tensor] = field(default_factory=list)  # h_t (h[-1] is h_{T-1})
    c: list[Tensor] = field(default_factory=list)  # c_t (cells whose state is (h, c))
    h0: Tensor | None = None  # the initial state the layer started from


class RecurrentNet(nn.Module):
    """A batch-first recurrent network of one registered cell kind with a linear head on the last or every step."""

    def __init__(self, kind: str, spec: TaskSpec, hidden_size: int, num_layers: int = 1,
                 recurrent_init: str = "default", recurrent_gain: float = 1.0, **options: Any):
        super().__init__()
        self.cell = cells.get(kind)
        self.options = {k: v for k, v in options.items() if v is not None}  # the cell's own model.* values
        self.cell.check_options(str(recurrent_init), **self.options)
        self.kind, self.spec, self.hidden_size, self.num_layers = self.cell.name, spec, hidden_size, num_layers
        self.rnn: nn.RNNBase = self.cell.fused(spec.input_size, hidden_size, num_layers, **self.options)
        if isinstance(self.cell, ElementwiseCell):  # φ per layer, a module (modReLU has a learnt bias)
            self.acts = nn.ModuleList(self.cell.activations(hidden_size) for _ in range(num_layers))
        self.head = nn.Linear(hidden_size, spec.output_size)
        sizes = [spec.input_size] + [hidden_size] * (num_layers - 1)  # each layer's input size
        blocks = [self.cell.block(size, hidden_size) for size in sizes[:-1]]
        if any(b is not None for b in blocks):  # the cell's module between layers (the LRU's GLU)
            self.blocks = nn.ModuleList(blocks)
        if self.cell.feedthrough:  # the head's D x_t (the LRU's), from the last layer's input of the same step
            self.skip = nn.Linear(sizes[-1], spec.output_size, bias=False)
        self.cell.init(self, str(recurrent_init), recurrent_gain)
        self.constrain()

    def weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(W_ih, W_hh, b_ih, b_hh) of one layer, in the fused module's gate order (a parametrized W_hh computed)."""
        r = self.rnn
        return (getattr(r, f"weight_ih_l{layer}"), getattr(r, f"weight_hh_l{layer}"),
                getattr(r, f"bias_ih_l{layer}"), getattr(r, f"bias_hh_l{layer}"))

    def constrain(self) -> None:
        """Restore what the cell holds fixed (the NFG's forget rows); RecurrentModule calls it inside every
        optimizer step (a step post-hook)."""
        self.cell.constrain(self)

    def encode(self, x: Tensor) -> Tensor:
        """Token tasks arrive as integer ids and are one-hot encoded; float inputs pass through."""
        dtype = self.head.weight.dtype
        if self.spec.tokens:
            return F.one_hot(x, self.spec.input_size).to(dtype)
        return x.to(dtype)

    def next_input(self, layer: int, h: Tensor, inp: Tensor) -> Tensor:
        """The input of layer + 1 from this layer's h_t and its own input x_t (per step, any leading shape)."""
        return self.blocks[layer](h, inp) if hasattr(self, "blocks") else h

    def readout(self, h_seq: Tensor, inp: Tensor) -> Tensor:
        """The head on every step (copy task) or on the last step only; inp: the last layer's input (a
        feedthrough's D x_t)."""
        out = self.head(h_seq if self.spec.per_step else h_seq[:, -1])
        if self.cell.feedthrough:
            out = out + self.skip(inp if self.spec.per_step else inp[:, -1])
        return out

    def forward(self, x: Tensor) -> Tensor:
        """(B, T) tokens or (B, T, input_size) floats -> predictions, on the fused kernel where the cell has one."""
        inp = self.encode(x)
        if not self.cell.fused_kernel:
            seq = self.cell.sequence(self, inp)
            return self.forward_unrolled(x)[0] if seq is None else self.readout(*seq)
        h_seq, _ = self.rnn(inp)
        return self.readout(h_seq, inp)

    def forward_unrolled(self, x: Tensor, h0: Tensor | None = None, c0: Tensor | None = None,
                         record: bool = False) -> tuple[Tensor, list[LayerTrace]]:
        """The unrolled twin: the same parameters as an explicit loop over layers and steps of the cell's step.

        With record=True the traces keep every x_t, v_t, u_t, h_t, c_t of the graph, so that one
        `torch.autograd.grad(loss, [v_t, u_t, h_t, c_t ...])` gives the total derivatives.
        h0/c0: (num_layers, B, H) initial states (default zeros).
        """
        inp = self.encode(x)
        B, T, _ = inp.shape
        zeros = inp.new_zeros(self.num_layers, B, self.hidden_size)
        start = {"h": zeros if h0 is None else h0, "c": zeros if c0 is None else c0}
        traces = []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.weights(layer)
            xv = inp @ w_ih.T + b_ih  # the input projection of every step at once
            trace = LayerTrace(h0=start["h"][layer])
            state = tuple(start[part][layer] for part in self.cell.state)
            for t in range(T):
                v = xv[:, t]
                u = state[0] @ w_hh.T + b_hh
                state = self.cell.step(self, layer, v, u, state)
                if record:
                    trace.x.append(inp[:, t])
                    trace.v.append(v)
                    trace.u.append(u)
                    if len(state) > 1:
                        trace.c.append(state[1])
                trace.h.append(state[0])
            traces.append(trace)
            h_seq = torch.stack(trace.h, dim=1)
            if layer + 1 < self.num_layers:
                inp = self.next_input(layer, h_seq, inp)
        return self.readout(h_seq, inp), traces


def build_model(model: ModelConfig, spec: TaskSpec) -> RecurrentNet:
    """A RecurrentNet from the `model` config group."""
    return RecurrentNet(model.name, spec, model.hidden_size, model.num_layers, model.recurrent_init,
                        model.recurrent_gain, **model.cell_options())
