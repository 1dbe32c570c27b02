"""The LSTM with a forget gate (Gers et al. 2000), on the fused nn.LSTM (PyTorch's gate order i, f, g, o).

Its theory line is the direct path's: the cell state has ∂c_t/∂c_{t-1} = diag(f_t) + (terms through h), so along
the direct path unit j's gradient shrinks by f_t[j] per step and its rate is mean_t ln f_t[j]; a norm follows its
slowest units, not their average (‖x‖ ≥ max_j |x_j|), so the predicted rate is the largest per-unit rate, as λ_1
is the largest exponent. (The GRU's update gate z_t plays the same part; the NFG's f_t == 1 makes the rate 0.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradlab.cells.base import Cell, Net, State, register, slowest_unit_rate


@register
class LSTM(Cell):
    name = "lstm"
    order = 20  # its place in the registry (plot colours, tables, error texts)
    about = "LSTM with forget gate (Gers et al. 2000), fused nn.LSTM; PyTorch's gate order i, f, g, o"
    theory = "slowest cell path: max_j mean_t ln f_t[j]"
    state = ("h", "c")
    gates = 4

    @dataclass
    class Options:
        # the forget gate's bias at init (Jozefowicz et al. 2015: 1.0); None: PyTorch's
        forget_bias: float | None = None

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        super().init(net, recurrent_init, gain)
        forget_bias = net.options.get("forget_bias")
        H = net.hidden_size
        if forget_bias is not None:
            for layer in range(net.num_layers):
                _, _, b_ih, b_hh = net.weights(layer)
                b_ih[H:2 * H] = forget_bias
                b_hh[H:2 * H] = 0.0

    def step(self, net: Net, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        i, f, g, o = (v + u).chunk(4, dim=-1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forget(self, net: Net, v: Tensor, u: Tensor) -> Tensor:
        H = net.hidden_size
        return torch.sigmoid((v + u)[..., H:2 * H])

    def curves(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        return {"forget_gate_mean": self.forget(net, v, u).mean(dim=(1, 2))}

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        return {"decay_rate_predicted": slowest_unit_rate(self.forget(net, v, u))}
