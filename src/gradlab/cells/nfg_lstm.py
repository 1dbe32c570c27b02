"""The LSTM without a forget gate (c_t = c_{t-1} + i·g), on the fused nn.LSTM with the forget gate frozen at 1."""

from __future__ import annotations

import torch

from gradlab.cells.base import Net, NoOptions, register
from gradlab.cells.lstm import LSTM

NFG_FORGET_BIAS = 50.0  # sigmoid(50) rounds to exactly 1.0 in float32 and float64


@register
class NoForgetGateLSTM(LSTM):
    """The 1997 LSTM's cell (Greff 2017's NFG): c_t = c_{t-1} + i*g. nn.LSTM with the forget gate frozen at exactly
    1: zero forget rows in W_ih/W_hh and a forget bias of +50 (sigmoid(50) == 1.0 in float32 and float64), so the
    forget rows receive exactly zero gradient; `constrain` resets them inside every optimizer step, so that weight
    decay cannot move them either."""

    name = "nfg_lstm"
    order = 30  # its place in the registry (plot colours, tables, error texts)
    about = "LSTM without forget gate (the 1997 cell, Greff 2017's NFG): c_t = c_{t-1} + i*g, fused nn.LSTM"
    theory = "0: f_t == 1, the cell path keeps the gradient"
    Options = NoOptions  # the forget gate is frozen: no forget_bias to set

    @torch.no_grad()
    def constrain(self, net: Net) -> None:
        H = net.hidden_size
        for layer in range(net.num_layers):
            w_ih, w_hh, b_ih, b_hh = net.weights(layer)
            w_ih[H:2 * H] = 0.0
            w_hh[H:2 * H] = 0.0
            b_ih[H:2 * H] = NFG_FORGET_BIAS
            b_hh[H:2 * H] = 0.0
