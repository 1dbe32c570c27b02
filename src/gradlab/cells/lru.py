"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long sequences").

N = H/2 complex modes, h_t = λ ⊙ h_{t-1} + γ ⊙ (B x_t) with λ_j = exp(−exp(ν_j) + i·exp(θ_j)), the input scaled by
γ_j (a parameter, initialised at √(1 − |λ_j|²) so that white-noise inputs give E|h_j|² independent of |λ_j|: the
normalisation), |λ_j| drawn uniformly over the ring r_min ≤ |λ| ≤ r_max of the complex plane and the phase
uniformly in [0, max_phase], as the paper's init. The head reads Re(C h_t) + D x_t.

In gradlab the state is real: h = [Re h; Im h] (H numbers, so model.hidden_size must be even), and the step is
linear, h_t = v_t + u_t with W_ih = [γ ⊙ B_re; γ ⊙ B_im] and W_hh = [[diag a, −diag b], [diag b, diag a]]
(λ = a + ib), both `torch.nn.utils.parametrize` parametrizations of the paper's parameters (ν, θ; B, γ): the
probe's ‖∂ℓ/∂h_t‖ is over the real and imaginary parts, and Re(C h) is the linear head on [Re h; Im h].
Training runs the complex recurrence as a blocked scan (gradlab.cells.scan).

Between two layers stands the paper's block: the next layer reads GLU(Re(C h_t) + D x_t) (`Block`), the only
nonlinearity of the net. One layer alone is a linear filter of its inputs followed by a linear head, so it cannot
form a product of two inputs (the adding problem's value times marker) at any T; conf/model/lru.yaml therefore
stacks two layers. Left out: the paper's residual connections, layer norm and dropout (docs/cells.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gradlab.cells.base import Net, register
from gradlab.cells.linear import DiagonalCell, weights_without_bias
from gradlab.cells.scan import linear_scan
from gradlab.core.errors import ConfigError, out_of_range


class Recurrence(nn.Module):
    """W_hh = [[diag a, −diag b], [diag b, diag a]] with a + ib = λ = exp(−exp(ν) + i·exp(θ)); originals (ν, θ)."""

    def forward(self, nu: Tensor, theta: Tensor) -> Tensor:
        lam = eigenvalues(nu, theta)
        a, b = torch.diag(lam.real), torch.diag(lam.imag)
        return torch.cat([torch.cat([a, -b], dim=1), torch.cat([b, a], dim=1)])

    def right_inverse(self, w: Tensor) -> tuple[Tensor, Tensor]:
        N = w.shape[0] // 2
        lam = torch.complex(torch.diagonal(w)[:N], torch.diagonal(w[N:, :N]))
        return (-lam.abs().log()).log(), lam.angle().log()


class Input(nn.Module):
    """W_ih = [γ ⊙ B_re; γ ⊙ B_im]; originals (B_re, B_im, log γ)."""

    def forward(self, b_re: Tensor, b_im: Tensor, gamma_log: Tensor) -> Tensor:
        gamma = gamma_log.exp()[:, None]
        return torch.cat([gamma * b_re, gamma * b_im])

    def right_inverse(self, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        N = w.shape[0] // 2
        return w[:N].clone(), w[N:].clone(), w.new_zeros(N)


class Block(nn.Module):
    """The LRU block's output as the next layer's input: y_t = Re(C h_t) + D x_t (C a real map of [Re h; Im h],
    with a bias), then the paper's GLU, (W y_t) ⊙ σ(V y_t)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.C = nn.Linear(hidden_size, hidden_size)
        self.D = nn.Linear(input_size, hidden_size, bias=False)
        self.glu = nn.Linear(hidden_size, 2 * hidden_size)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        a, b = self.glu(self.C(h) + self.D(x)).chunk(2, dim=-1)
        return a * torch.sigmoid(b)  # F.glu's arithmetic; F.glu itself has no vmap rule for the forward-mode probe


def eigenvalues(nu: Tensor, theta: Tensor) -> Tensor:
    return torch.exp(torch.complex(-nu.exp(), theta.exp()))


@register
class LRU(DiagonalCell):
    name = "lru"
    order = 90  # its place in the registry (plot colours, tables, error texts)
    about = "LRU (Orvieto et al. 2023): complex diagonal λ = exp(−e^ν + i e^θ), γ-normalised input; a scan"
    theory = "exact: max_j ln|λ_j| (the state Jacobian is a rotation-scaling per mode)"
    feedthrough = True  # the head adds D x_t

    @dataclass
    class Options:
        r_min: float = 0.9  # |λ| uniform over the ring r_min <= |λ| <= r_max at init
        r_max: float = 0.999
        max_phase: float = 2 * math.pi  # arg λ ~ U(0, max_phase) at init

        def __post_init__(self) -> None:
            if not 0.0 <= self.r_min < 1.0:
                raise out_of_range("model.r_min", self.r_min, "in [0, 1)")
            if not self.r_min <= self.r_max < 1.0:
                raise out_of_range("model.r_max", self.r_max, f"in [model.r_min={self.r_min}, 1)")
            if not 0.0 < self.max_phase <= 2 * math.pi:
                raise out_of_range("model.max_phase", self.max_phase, "in (0, 2π]")

    def block(self, input_size: int, hidden_size: int) -> nn.Module:
        return Block(input_size, hidden_size)

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.Module:
        if hidden_size % 2:
            raise ConfigError(f"model.hidden_size={hidden_size} is out of range: the lru's state is H/2 complex "
                              "modes as [Re h; Im h], so it must be even")
        rnn = weights_without_bias(input_size, hidden_size, num_layers)
        N = hidden_size // 2
        start = torch.diag(torch.full((hidden_size,), 0.5))  # λ = 0.5 + 0.5i until init draws the ring
        start[N:, :N] = start[:N, :N]
        for layer in range(num_layers):
            with torch.no_grad():
                getattr(rnn, f"weight_hh_l{layer}").copy_(start)
            parametrize.register_parametrization(rnn, f"weight_hh_l{layer}", Recurrence())
            parametrize.register_parametrization(rnn, f"weight_ih_l{layer}", Input())
        return rnn

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        opts = self.Options(**net.options)
        N = net.hidden_size // 2
        for layer in range(net.num_layers):
            rec, inp = self._originals(net, layer)
            u1, u2 = torch.rand(N, dtype=torch.float64), torch.rand(N, dtype=torch.float64)
            modulus_sq = (u1 * (opts.r_max ** 2 - opts.r_min ** 2) + opts.r_min ** 2).clamp_min(1e-300)  # in area
            rec.original0.copy_((-0.5 * modulus_sq.log()).log())  # ν: |λ| = exp(−exp(ν))
            rec.original1.copy_((opts.max_phase * u2).clamp_min(1e-12).log())  # θ: arg λ = exp(θ)
            inp.original2.copy_(0.5 * (-torch.expm1(modulus_sq.log())).log())  # log γ, γ = √(1 − |λ|²)
            fan_in = inp.original0.shape[1]
            for b in (inp.original0, inp.original1):
                b.normal_(0.0, (2 * fan_in) ** -0.5)  # B ~ CN(0, 1/D): E|B x|² = |x|² per mode
        nn.init.normal_(net.skip.weight, 0.0, 1.0)  # D ~ N(0, 1), the paper's

    @staticmethod
    def _originals(net: Net, layer: int) -> tuple[nn.Module, nn.Module]:
        """The parametrizations of W_hh (original0 = ν, original1 = θ) and W_ih (B_re, B_im, log γ)."""
        p = net.rnn.parametrizations
        return getattr(p, f"weight_hh_l{layer}"), getattr(p, f"weight_ih_l{layer}")

    def eigenvalues(self, net: Net, layer: int) -> Tensor:
        rec = self._originals(net, layer)[0]
        return eigenvalues(rec.original0, rec.original1)

    def scan_layer(self, net: Net, layer: int, inp: Tensor) -> Tensor:
        b_re, b_im = net.weights(layer)[0].chunk(2)  # γ ⊙ B
        h = linear_scan(self.eigenvalues(net, layer), torch.complex(inp @ b_re.T, inp @ b_im.T))
        return torch.cat([h.real, h.imag], dim=-1)
