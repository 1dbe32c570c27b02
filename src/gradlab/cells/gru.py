"""The GRU (Cho et al. 2014), on the fused nn.GRU."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradlab.cells.base import Cell, Net, State, register, slowest_unit_rate


@register
class GRU(Cell):
    """Cho et al. 2014, PyTorch's form: r = σ(v_r + u_r), z = σ(v_z + u_z), n = tanh(v_n + r ⊙ u_n),
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}; u_n = W_hn h_{t-1} + b_hn sits inside the reset gate's product."""

    name = "gru"
    order = 40  # its place in the registry (plot colours, tables, error texts)
    about = "GRU (Cho et al. 2014), fused nn.GRU; PyTorch's gate order r, z, n"
    theory = "slowest direct path: max_j mean_t ln z_t[j]"
    gates = 3

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        return nn.GRU(input_size, hidden_size, num_layers, batch_first=True)

    def step(self, net: Net, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        v_r, v_z, v_n = v.chunk(3, dim=-1)
        u_r, u_z, u_n = u.chunk(3, dim=-1)
        r, z = torch.sigmoid(v_r + u_r), torch.sigmoid(v_z + u_z)
        n = torch.tanh(v_n + r * u_n)
        return ((1 - z) * n + z * state[0],)

    def update(self, net: Net, v: Tensor, u: Tensor) -> Tensor:
        H = net.hidden_size
        return torch.sigmoid(v[..., H:2 * H] + u[..., H:2 * H])

    def curves(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        return {"update_gate_mean": self.update(net, v, u).mean(dim=(1, 2))}

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        return {"decay_rate_predicted": slowest_unit_rate(self.update(net, v, u))}
