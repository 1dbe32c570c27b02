"""The gated cells: the LSTM, the no-forget-gate LSTM (on nn.LSTM) and the GRU (on nn.GRU).

Their theory line is the direct path's: the LSTM's cell state has ∂c_t/∂c_{t-1} = diag(f_t) + (terms through h),
the GRU's state ∂h_t/∂h_{t-1} = diag(z_t) + (terms through the gates and n_t). Along the direct path unit j's
gradient shrinks by f_t[j] (z_t[j]) per step, so its rate is mean_t ln f_t[j]; a norm follows its slowest units, not
their average (‖x‖ ≥ max_j |x_j|), so the predicted rate is the largest per-unit rate, as λ_1 is the largest
exponent. The NFG's f_t == 1 makes it exactly 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gradlab.cells.base import Cell, State, slowest_unit_rate

if TYPE_CHECKING:
    from gradlab.models import RecurrentNet

NFG_FORGET_BIAS = 50.0  # sigmoid(50) rounds to exactly 1.0 in float32 and float64


class LSTM(Cell):
    name = "lstm"
    about = "LSTM with forget gate (Gers et al. 2000), fused nn.LSTM; PyTorch's gate order i, f, g, o"
    theory = "slowest cell path: max_j mean_t ln f_t[j]"
    state = ("h", "c")
    gates = 4
    options = frozenset({"forget_bias"})

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)

    @torch.no_grad()
    def init(self, net: RecurrentNet, recurrent_init: str, gain: float, forget_bias: float | None) -> None:
        super().init(net, recurrent_init, gain, forget_bias)
        H = net.hidden_size
        if forget_bias is not None:
            for layer in range(net.num_layers):
                _, _, b_ih, b_hh = net.weights(layer)
                b_ih[H:2 * H] = forget_bias
                b_hh[H:2 * H] = 0.0

    def step(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        i, f, g, o = (v + u).chunk(4, dim=-1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forget(self, net: RecurrentNet, v: Tensor, u: Tensor) -> Tensor:
        H = net.hidden_size
        return torch.sigmoid((v + u)[..., H:2 * H])

    def curves(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        return {"forget_gate_mean": self.forget(net, v, u).mean(dim=(1, 2))}

    def theory_scalars(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        return {"decay_rate_predicted": slowest_unit_rate(self.forget(net, v, u))}


class NoForgetGateLSTM(LSTM):
    """The 1997 LSTM's cell (Greff 2017's NFG): c_t = c_{t-1} + i*g. nn.LSTM with the forget gate frozen at exactly
    1: zero forget rows in W_ih/W_hh and a forget bias of +50 (sigmoid(50) == 1.0 in float32 and float64), so the
    forget rows receive exactly zero gradient; `constrain` resets them inside every optimizer step, so that weight
    decay cannot move them either."""

    name = "nfg_lstm"
    about = "LSTM without forget gate (the 1997 cell, Greff 2017's NFG): c_t = c_{t-1} + i*g, fused nn.LSTM"
    theory = "0: f_t == 1, the cell path keeps the gradient"
    options = frozenset()

    @torch.no_grad()
    def constrain(self, net: RecurrentNet) -> None:
        H = net.hidden_size
        for layer in range(net.num_layers):
            w_ih, w_hh, b_ih, b_hh = net.weights(layer)
            w_ih[H:2 * H] = 0.0
            w_hh[H:2 * H] = 0.0
            b_ih[H:2 * H] = NFG_FORGET_BIAS
            b_hh[H:2 * H] = 0.0


class GRU(Cell):
    """Cho et al. 2014, PyTorch's form: r = σ(v_r + u_r), z = σ(v_z + u_z), n = tanh(v_n + r ⊙ u_n),
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}; u_n = W_hn h_{t-1} + b_hn sits inside the reset gate's product."""

    name = "gru"
    about = "GRU (Cho et al. 2014), fused nn.GRU; PyTorch's gate order r, z, n"
    theory = "slowest direct path: max_j mean_t ln z_t[j]"
    gates = 3

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.GRU(input_size, hidden_size, num_layers, batch_first=True)

    def step(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        v_r, v_z, v_n = v.chunk(3, dim=-1)
        u_r, u_z, u_n = u.chunk(3, dim=-1)
        r, z = torch.sigmoid(v_r + u_r), torch.sigmoid(v_z + u_z)
        n = torch.tanh(v_n + r * u_n)
        return ((1 - z) * n + z * state[0],)

    def update(self, net: RecurrentNet, v: Tensor, u: Tensor) -> Tensor:
        H = net.hidden_size
        return torch.sigmoid(v[..., H:2 * H] + u[..., H:2 * H])

    def curves(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        return {"update_gate_mean": self.update(net, v, u).mean(dim=(1, 2))}

    def theory_scalars(self, net: RecurrentNet, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        return {"decay_rate_predicted": slowest_unit_rate(self.update(net, v, u))}
