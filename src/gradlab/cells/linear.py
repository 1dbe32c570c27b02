"""The diagonal linear recurrence h_t = λ ⊙ h_{t-1} + B x_t: the textbook object of the memory theory (docs/theory.md,
"The curse of memory"), one real λ per unit, trained as it stands (no normalisation, no reparametrisation).

Its state Jacobian is diag(λ) at every step, so ‖∂ℓ/∂h_t‖ decays like max_i |λ_i|^(T−1−t) (the theory line, exact for
a long lag) and its Lyapunov exponents are ln|λ_i| exactly. Beside the gradient it shows the curse: as |λ_i| → 1 the
state's sensitivity to λ_i grows like (1 − λ_i)^(−3/2) for white-noise inputs while the gradient through time does
not explode. No fused kernel: training runs the recurrence as a blocked scan (gradlab.cells.scan), not a step loop.
W_hh = diag(λ) is a `torch.nn.utils.parametrize` parametrization whose original is λ: the probe's W_hh and
its gradient are the matrix the step multiplies, and θ_rec of the memory measurement is λ itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gradlab.cells.base import Cell, Net, RNNWeights, State, register
from gradlab.cells.scan import linear_scan
from gradlab.core.errors import out_of_range


class Diagonal(nn.Module):
    """The parametrization W_hh = diag(λ): its original is the vector λ (torch.nn.utils.parametrize)."""

    def forward(self, lam: Tensor) -> Tensor:
        return torch.diag(lam)

    def right_inverse(self, w: Tensor) -> Tensor:
        return torch.diagonal(w).clone()


def weights_without_bias(input_size: int, hidden_size: int, num_layers: int) -> nn.Module:
    """nn.RNN's weight names without its kernel, the biases zero buffers (h_t = λ h_{t-1} + B x_t has none)."""
    rnn = RNNWeights(input_size, hidden_size, num_layers)
    for layer in range(num_layers):
        for name in (f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
            delattr(rnn, name)
            rnn.register_buffer(name, torch.zeros(hidden_size))
    return rnn


class DiagonalCell(Cell):
    """A linear diagonal recurrence: the step is h_t = v_t + u_t (u_t = W_hh h_{t-1} with W_hh block-diagonal),
    training is a scan. Subclasses give the eigenvalues and the scan's input."""

    fused_kernel = False
    inits = ("default",)  # the cell's own init (its options set the range)

    def eigenvalues(self, net: Net, layer: int) -> Tensor:
        """λ of one layer's modes, real or complex."""
        raise NotImplementedError

    def scan_layer(self, net: Net, layer: int, inp: Tensor) -> Tensor:
        """One layer's h of every step (B, T, H) from its input (B, T, D), with the training gradient."""
        raise NotImplementedError

    def step(self, net: Net, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        return (v + u,)

    def sequence(self, net: Net, inp: Tensor) -> tuple[Tensor, Tensor]:
        for layer in range(net.num_layers):
            h = self.scan_layer(net, layer, inp)
            if layer + 1 < net.num_layers:
                inp = net.next_input(layer, h, inp)
        return h, inp

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        modulus = self.eigenvalues(net, layer).detach().abs().double()
        return {"decay_rate_predicted": float(modulus.max().log()), "lambda_abs_max": float(modulus.max()),
                "lambda_abs_min": float(modulus.min())}


@register
class Linear(DiagonalCell):
    name = "linear"
    order = 80  # its place in the registry (plot colours, tables, error texts)
    about = "diagonal linear recurrence h_t = λ ⊙ h_{t-1} + B x_t, real λ trained as is; a scan"
    theory = "exact: max_i ln|λ_i| (the state Jacobian is diag(λ))"

    @dataclass
    class Options:
        lambda_min: float = 0.9  # λ_i ~ U(lambda_min, lambda_max) at init
        lambda_max: float = 0.999

        def __post_init__(self) -> None:
            if not -1.0 <= self.lambda_min <= 1.0:
                raise out_of_range("model.lambda_min", self.lambda_min, "in [-1, 1]")
            if not self.lambda_min <= self.lambda_max <= 1.0:
                raise out_of_range("model.lambda_max", self.lambda_max, f"in [model.lambda_min={self.lambda_min}, 1]")

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.Module:
        rnn = weights_without_bias(input_size, hidden_size, num_layers)
        for layer in range(num_layers):
            parametrize.register_parametrization(rnn, f"weight_hh_l{layer}", Diagonal())
        return rnn

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        opts = self.Options(**net.options)
        for layer in range(net.num_layers):
            w_ih = net.weights(layer)[0]
            nn.init.normal_(w_ih, 0.0, w_ih.shape[1] ** -0.5)  # each unit's input of unit variance for unit inputs
            self.eigenvalues(net, layer).uniform_(opts.lambda_min, opts.lambda_max)

    def eigenvalues(self, net: Net, layer: int) -> Tensor:
        return getattr(net.rnn.parametrizations, f"weight_hh_l{layer}").original

    def scan_layer(self, net: Net, layer: int, inp: Tensor) -> Tensor:
        return linear_scan(self.eigenvalues(net, layer), inp @ net.weights(layer)[0].T)
