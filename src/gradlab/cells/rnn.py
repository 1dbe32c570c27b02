"""The Elman RNN, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), on the fused nn.RNN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from gradlab.cells.base import ElementwiseCell, register

if TYPE_CHECKING:
    pass


@register
class TanhRNN(ElementwiseCell):
    name = "rnn"
    order = 10  # its place in the registry (plot colours, tables, error texts)
    about = "Elman RNN, h_t = tanh(W_ih x_t + W_hh h_{t-1} + b), fused nn.RNN"

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity="tanh", batch_first=True)

    def activations(self, hidden_size: int) -> nn.Module:
        return nn.Tanh()
