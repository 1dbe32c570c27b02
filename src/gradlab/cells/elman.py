"""The Elman family, h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) on nn.RNN: the tanh RNN and Le et al.'s IRNN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gradlab.cells.base import ElementwiseCell, PiecewiseLinearCell

if TYPE_CHECKING:
    from gradlab.models import RecurrentNet


class TanhRNN(ElementwiseCell):
    name = "rnn"
    about = "Elman RNN, h_t = tanh(W_ih x_t + W_hh h_{t-1} + b), fused nn.RNN"

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity="tanh", batch_first=True)

    def activations(self, hidden_size: int) -> nn.Module:
        return nn.Tanh()


class IRNN(PiecewiseLinearCell):
    """Le, Jaitly & Hinton 2015: ReLU units, W_hh = I and zero biases at init, so that at init the state Jacobian
    is I wherever a unit is active: the identity carries the gradient (every Lyapunov exponent 0 while all units
    are active). model.recurrent_gain scales the identity (their "np-RNN"-style variants: gain·I). The input weights
    are N(0, 0.001²), our reading of their setup (small input weights; they do not give one value for all tasks)."""

    name = "irnn"
    about = "IRNN (Le, Jaitly & Hinton 2015): ReLU, W_hh = I and b = 0 at init, fused nn.RNN"
    inits = ("default",)  # the identity is the init

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity="relu", batch_first=True)

    def activations(self, hidden_size: int) -> nn.Module:
        return nn.ReLU()

    def kink_distance(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> Tensor:
        return (v + u).abs()

    @torch.no_grad()
    def init(self, net: RecurrentNet, recurrent_init: str, gain: float, forget_bias: float | None) -> None:
        for layer in range(net.num_layers):
            w_ih, w_hh, b_ih, b_hh = net.weights(layer)
            w_hh.copy_(gain * torch.eye(net.hidden_size, dtype=w_hh.dtype))
            w_ih.normal_(0.0, 1e-3)
            b_ih.zero_()
            b_hh.zero_()
