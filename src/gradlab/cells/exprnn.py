"""expRNN (Lezcano-Casado & Martínez-Rubio 2019): W_hh = exp(A) with A skew-symmetric, so W_hh is orthogonal at
every step and the linear part of the state Jacobian keeps norms; h_t = modReLU(W_ih x_t + W_hh h_{t-1} + b).

W_hh is `torch.nn.utils.parametrizations.orthogonal(..., orthogonal_map="matrix_exp", use_trivialization=False)`
on a weight_hh under nn.RNN's names (`RNNWeights`): the parameter is A's strictly lower triangle and
W_hh = exp(A − Aᵀ) is recomputed at every use, so it is orthogonal to round-off in whatever dtype it is computed
(float64 in the probe). The paper's activation, modReLU(a) = sign(a) · relu(|a| + b) with a learnt bias b per unit,
has no fused kernel: training runs the cell's step in a loop (`fused_kernel = False`), which `make bench` prices.
Init as the paper's code: A from Henaff et al.'s block init (2x2 rotations by angles U(−π, π)), W_ih Kaiming
normal for ReLU, b_ih = b_hh = 0, modReLU's b ~ U(−0.01, 0.01).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal

from gradlab.cells.base import Net, PiecewiseLinearCell, RNNWeights, register


class ModReLU(nn.Module):
    """modReLU(a) = sign(a) · relu(|a| + b), b one learnt bias per unit (Arjovsky et al. 2016, real-valued)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-0.01, 0.01))

    def forward(self, a: Tensor) -> Tensor:
        return torch.sign(a) * torch.relu(a.abs() + self.bias)


@register
class ExpRNN(PiecewiseLinearCell):
    name = "exprnn"
    order = 60  # its place in the registry (plot colours, tables, error texts)
    about = "expRNN (Lezcano-Casado & Martínez-Rubio 2019): W_hh = exp(A), A skew-symmetric, modReLU; step loop"
    inits = ("default",)  # Henaff's skew init of A
    fused_kernel = False

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.Module:
        rnn = RNNWeights(input_size, hidden_size, num_layers)
        for layer in range(num_layers):
            orthogonal(rnn, f"weight_hh_l{layer}", orthogonal_map="matrix_exp", use_trivialization=False)
        return rnn

    def activations(self, hidden_size: int) -> nn.Module:
        return ModReLU(hidden_size)

    def kink_distance(self, net: Net, layer: int, v: Tensor, u: Tensor) -> Tensor:
        a = (v + u).abs()  # modReLU jumps at a = 0 and bends where |a| = −b
        return torch.minimum(a, (a + net.acts[layer].bias).abs())

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        H = net.hidden_size
        for layer in range(net.num_layers):
            w_ih, _, b_ih, b_hh = net.weights(layer)
            nn.init.kaiming_normal_(w_ih, nonlinearity="relu")
            b_ih.zero_()
            b_hh.zero_()
            a = torch.zeros(H, H)
            angles = torch.empty(H // 2).uniform_(-math.pi, math.pi)
            idx = torch.arange(0, H - 1, 2)
            a[idx + 1, idx] = angles  # the strictly lower triangle of A: exp(A − Aᵀ) rotates each pair by its angle
            getattr(net.rnn.parametrizations, f"weight_hh_l{layer}").original.copy_(a)
