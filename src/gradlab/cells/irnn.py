"""Le, Jaitly & Hinton 2015's IRNN: ReLU units with W_hh = I at init, on the fused nn.RNN."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradlab.cells.base import Net, PiecewiseLinearCell, register


@register
class IRNN(PiecewiseLinearCell):
    """Le, Jaitly & Hinton 2015: ReLU units, W_hh = I and zero biases at init, so that at init the state Jacobian
    is I wherever a unit is active: the identity carries the gradient (every Lyapunov exponent 0 while all units
    are active). model.recurrent_gain scales the identity (their "np-RNN"-style variants: gain·I). The input weights
    are N(0, 0.001²), our reading of their setup (small input weights; they do not give one value for all tasks)."""

    name = "irnn"
    order = 50  # its place in the registry (plot colours, tables, error texts)
    about = "IRNN (Le, Jaitly & Hinton 2015): ReLU, W_hh = I and b = 0 at init, fused nn.RNN"
    inits = ("default",)  # the identity is the init

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity="relu", batch_first=True)

    def activations(self, hidden_size: int) -> nn.Module:
        return nn.ReLU()

    def kink_distance(self, net: Net, layer: int, v: Tensor, u: Tensor) -> Tensor:
        return (v + u).abs()

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        for layer in range(net.num_layers):
            w_ih, w_hh, b_ih, b_hh = net.weights(layer)
            w_hh.copy_(gain * torch.eye(net.hidden_size, dtype=w_hh.dtype))
            w_ih.normal_(0.0, 1e-3)
            b_ih.zero_()
            b_hh.zero_()
