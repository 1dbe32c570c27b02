"""What a recurrent cell is to gradlab: one object per model kind, registered by name.

A cell knows its fused module (nn.RNN, nn.LSTM, nn.GRU: training stays on oneDNN/cuDNN kernels where PyTorch has
one), its step (the arithmetic of one time step, written once: the probe's unrolled twin, the Lyapunov spectrum
and a cell without a fused kernel all run it), its state ((h,) or (h, c)), its initialisation and any constraint,
and its theory line (the decay rate it predicts for ‖∂ℓ/∂h_t‖). Everything else in gradlab iterates over the
registry (`gradlab.cells.CELLS`) and asks the cell; nothing outside this package compares model names.

The step takes the two pre-activations separately, v_t = W_ih x_t + b_ih and u_t = W_hh h_{t-1} + b_hh, so that the
probe's per-step weight contributions (∂L/∂W_ih)^(t) = (∂L/∂v_t)ᵀ x_t and (∂L/∂W_hh)^(t) = (∂L/∂u_t)ᵀ h_{t-1} hold
for every cell, also where a gate multiplies u_t (the GRU's reset gate)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from gradlab.core.errors import ConfigError

State = tuple[Tensor, ...]


class Net(Protocol):
    """What a cell sees of the network around it (gradlab.models.net.RecurrentNet, which the cells come before):
    its sizes, the cell's own model options, its fused module and per-layer activations, and its weights."""

    hidden_size: int
    num_layers: int
    options: dict[str, Any]
    rnn: nn.Module
    acts: nn.ModuleList

    def weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]: ...

    def next_input(self, layer: int, h: Tensor, inp: Tensor) -> Tensor: ...


class Cell:
    """The base of every cell. Subclasses set the class attributes and `step`; `fused` and `init` have defaults."""

    name: ClassVar[str]
    order: ClassVar[int] = 1000  # its place in CELLS: plot colours, tables and error texts follow it
    about: ClassVar[str]  # one line: what it is, whose it is
    theory: ClassVar[str]  # one line: what decay_rate_predicted is for this cell
    state: ClassVar[tuple[str, ...]] = ("h",)  # the recurrent state; h first, a second part is the cell state c
    gates: ClassVar[int] = 1  # blocks of H rows in W_ih and W_hh
    # The model.* keys only this cell takes (e.g. forget_bias), as a dataclass: its fields join the `model` group's
    # schema for this cell (gradlab.models.config.model_schema), so conf/model/<name>.yaml is checked against them.
    Options: ClassVar[type] = None  # set below: NoOptions
    inits: ClassVar[tuple[str, ...]] = ("default", "orthogonal", "sparse")  # the model.recurrent_init it accepts
    fused_kernel: ClassVar[bool] = True  # False: training runs `step` in a loop (no fused kernel computes it)
    smooth: ClassVar[bool] = True  # False: the step has kinks (ReLU, modReLU); `kink_distance` says where
    feedthrough: ClassVar[bool] = False  # True: the head adds D x_t (net.skip, the LRU's), beside its read of h_t

    def block(self, input_size: int, hidden_size: int) -> nn.Module | None:
        """What stands between a layer and the next (net.blocks[layer]): a module mapping (h_t, the layer's input
        x_t) to the next layer's input, per step (any leading shape); None (the default): the next layer reads h_t."""
        return None

    def fused(self, input_size: int, hidden_size: int, num_layers: int, **options: Any) -> nn.RNNBase:
        """The module that holds the weights (weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>) and, when
        `fused_kernel`, computes the whole sequence in one call. `options`: the cell's own model.* values."""
        raise NotImplementedError

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls.Options))

    def check_options(self, recurrent_init: str, **options: Any) -> None:
        """ConfigError for a model.* value this cell does not take, naming the cells that do."""
        for key, value in options.items():
            if value is not None and key not in self.option_names():
                takers = [n for n, c in CELLS.items() if key in c.option_names()]
                raise ConfigError(f"model.{key}={value!r} applies only to model={'|'.join(takers)}, not {self.name}")
        self.Options(**{k: v for k, v in options.items() if v is not None})  # the cell's own checks, if any
        if recurrent_init not in self.inits:
            raise ConfigError(f"model.recurrent_init={recurrent_init!r} does not apply to model={self.name}; "
                              f"choose from {', '.join(self.inits)}")

    @torch.no_grad()
    def init(self, net: Net, recurrent_init: str, gain: float) -> None:
        """Default: PyTorch's init, optionally with every W_hh gate block gain·Q (orthogonal) or sparse."""
        H = net.hidden_size
        for layer in range(net.num_layers):
            w_hh = net.weights(layer)[1]
            for block in w_hh.split(H, dim=0):
                if recurrent_init == "orthogonal":
                    nn.init.orthogonal_(block, gain=gain)
                elif recurrent_init == "sparse":
                    sparse_spectral_(block, gain)

    def constrain(self, net: Net) -> None:
        """After init and inside every optimizer step: restore what the cell holds fixed (default: nothing)."""

    def sequence(self, net: Net, inp: Tensor) -> tuple[Tensor, Tensor] | None:
        """A faster way than the step loop to compute the last layer's h of every step ((B, T, H)) and that layer's
        input, with the training gradient, for a cell without a fused kernel; None: the step loop
        (Net.forward_unrolled)."""
        return None

    def step(self, net: Net, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        """One time step from v = W_ih x + b_ih and u = W_hh h_{t-1} + b_hh ((..., G·H), any leading shape) and the
        previous state; returns the new state, h first."""
        raise NotImplementedError

    def kink_distance(self, net: Net, layer: int, v: Tensor, u: Tensor) -> Tensor | None:
        """How far each pre-activation lies from the nearest point where the step is not smooth (ReLU's 0), None
        for a smooth cell. Rounding can move a value across a kink and flip a derivative, so an error bound for
        float32 against float64 holds only where every value lies farther than the error (tests check it)."""
        return None

    def curves(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        """Per-step diagnostics the probe records beside the gradient norms, from the stacked pre-activations
        (T, B, G·H): each (T,). Names starting with _ stay out of bptt.csv."""
        return {}

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        """decay_rate_predicted (ln per step; the dominant mode's rate) and any other theory numbers."""
        return {}


@dataclass
class NoOptions:
    """A cell with no model.* keys of its own."""


Cell.Options = NoOptions


class ElementwiseCell(Cell):
    """h_t = φ(v_t + u_t): the Elman family. Theory: the mean field of a backpropagated vector.

    ∂h_t/∂h_{t-1} = diag(φ'(a_t)) W_hh. A generic vector's squared norm grows per step by χ_t = (‖W_hh‖_F²/H) ·
    mean φ'(a_t)² (mean over units and the batch), so the predicted rate is ½ mean_t ln χ_t; it is exact for the
    linear RNN with W_hh = αQ (ln α) and 0 for any orthogonal W_hh with all units active. Beside it, Pascanu et
    al.'s bound ln σ_max(W_hh) + mean_t ln max|φ'(a_t)|: below 0 the gradient must vanish.
    """

    theory = "mean field: ½ mean_t ln((‖W_hh‖_F²/H) · mean φ'(a_t)²)"

    def activations(self, hidden_size: int) -> nn.Module:
        """φ of one layer, as a module (net.acts[layer]; the theory tests swap in nn.Identity for the linear RNN)."""
        raise NotImplementedError

    def step(self, net: Net, layer: int, v: Tensor, u: Tensor, state: State) -> State:
        return (net.acts[layer](v + u),)

    def derivative(self, net: Net, layer: int, a: Tensor) -> Tensor:
        """φ'(a) elementwise, by autograd through the layer's own activation (a swapped-in identity is honoured)."""
        with torch.enable_grad():
            a = a.detach().requires_grad_(True)
            return torch.autograd.grad(net.acts[layer](a).sum(), a)[0]

    def curves(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, Tensor]:
        d = self.derivative(net, layer, v + u)
        return {"act_deriv_mean": d.abs().mean(dim=(1, 2)), "_deriv_sq_mean": d.square().mean(dim=(1, 2)),
                "_deriv_abs_max": d.abs().amax(dim=(1, 2))}

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        c = self.curves(net, layer, v, u)
        w_hh = net.weights(layer)[1].detach().double()
        gain = w_hh.square().sum() / w_hh.shape[1]
        sq, top = c["_deriv_sq_mean"].double(), c["_deriv_abs_max"].double()
        return {"decay_rate_predicted": float(0.5 * (gain * sq).log().mean()),
                "decay_rate_bound": float(torch.linalg.matrix_norm(w_hh, ord=2).log() + top.log().mean()),
                "W_hh_spectral_norm": float(torch.linalg.matrix_norm(w_hh, ord=2)),
                "W_hh_spectral_radius": float(torch.linalg.eigvals(w_hh).abs().max())}


class PiecewiseLinearCell(ElementwiseCell):
    """An ElementwiseCell whose φ' is 0 or 1 (ReLU, modReLU): a unit is on or off, and the state Jacobian is
    D_t·W_hh with D_t the 0/1 diagonal of the units on at step t.

    Theory: the active block. Where the units' activity persists (on trained IRNNs every unit on the adding task was
    on at all steps or at none), a gradient that has entered the active set S moves by W_hh[S, S]ᵀ per step, so its
    norm grows as ρ(W_hh[S, S])^n: decay_rate_predicted = ln ρ(W_hh[S, S]), S the units on in more than half of the
    steps and sequences. The mean field spreads the gradient over every unit and predicts ½ ln(fraction on) per
    step more decay that is not there (IRNN −0.61 against a measured +0.007; exprnn −0.42 to −0.73 against −0.03
    to −0.07 on the cpu profile's checkpoints); it stays beside it as decay_rate_mean_field.
    """

    smooth = False
    theory = "active block: ln ρ(W_hh[S, S]), S the units active on most steps (mean field beside it)"

    def theory_scalars(self, net: Net, layer: int, v: Tensor, u: Tensor) -> dict[str, float]:
        scalars = super().theory_scalars(net, layer, v, u)
        active = (self.derivative(net, layer, v + u).abs() > 0.5).double().mean(dim=(0, 1)) > 0.5
        w_ss = net.weights(layer)[1].detach().double()[active][:, active]
        rho = torch.linalg.eigvals(w_ss).abs().max() if active.any() else torch.tensor(0.0, dtype=torch.float64)
        return {**scalars, "decay_rate_mean_field": scalars["decay_rate_predicted"],
                "decay_rate_predicted": float(rho.log())}


def slowest_unit_rate(gate: Tensor) -> float:
    """The largest per-unit mean of ln g over steps and sequences ((T, B, H) gate values in (0, 1]): the rate of the
    slowest direct path, which sets the decay of a norm (the norm follows its slowest units, not their average)."""
    per_unit = gate.double().clamp_min(1e-300).log().mean(dim=(0, 1))
    return float(per_unit.max()) if per_unit.numel() else math.nan


@torch.no_grad()
def sparse_spectral_(w: Tensor, radius: float, nonzero: int = 15) -> Tensor:
    """Pascanu et al. 2013's "smart" recurrent init (their code's smart_tanh): N(0, 0.01) weights, all but `nonzero`
    of each row set to 0, then the whole matrix rescaled to spectral radius `radius`."""
    w.normal_(0.0, 0.01)
    n = w.shape[1]
    if nonzero < n:
        drop = torch.rand(w.shape).argsort(dim=1)[:, nonzero:]  # a random permutation per row, as theirs
        w.scatter_(1, drop, 0.0)
    rho = torch.linalg.eigvals(w.double()).abs().max()
    return w.mul_(radius / float(rho))


class RNNWeights(nn.Module):
    """nn.RNN's parameters under nn.RNN's names, without its kernel: nn.RNN would keep the computed exp(A) in its
    flat-weights list (a non-leaf tensor, which breaks deepcopy and `.double()`)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, rows: int | None = None):
        super().__init__()
        rows = hidden_size if rows is None else rows  # lstm97: two gates a block, an input a cell
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(rows, fan_in)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(rows, hidden_size)))
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.zeros(rows)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.zeros(rows)))


# ------------------------------------------------------------------------------------------------ the registry

CELLS: dict[str, Cell] = {}

# The three models gradlab was born with, in the order the studies and the demo draw them; the remedies follow.
CLASSIC = ("rnn", "lstm", "nfg_lstm")


def register(cell: type[Cell] | Cell) -> Any:
    """Add a cell to the registry under its name, CELLS kept in the cells' `order`; returns what it was given.
    As a class decorator in the cell's own file (gradlab.cells imports every module of its package), or called with
    an instance (a test's toy cell, a model defined elsewhere)."""
    instance = cell() if isinstance(cell, type) else cell
    CELLS[instance.name] = instance
    ordered = sorted(CELLS.values(), key=lambda c: c.order)
    CELLS.clear()
    CELLS.update({c.name: c for c in ordered})
    return cell


def unregister(name: str) -> None:
    CELLS.pop(name, None)


def get(name: str) -> Cell:
    """The registered cell called `name`, or a ConfigError naming the valid choices."""
    try:
        return CELLS[str(name)]
    except KeyError:
        raise ConfigError(f"model.name={name!r} is not a model; choose from {', '.join(CELLS)}") from None


def names() -> tuple[str, ...]:
    return tuple(CELLS)


def with_state(part: str) -> tuple[str, ...]:
    """The models whose state has `part` (e.g. "c": the cell state of the LSTMs)."""
    return tuple(n for n, c in CELLS.items() if part in c.state)


def elementwise() -> tuple[str, ...]:
    """The models h_t = φ(a_t) with a plain W_hh (the RNN theory: mean field, Pascanu's bound, W_hh's spectrum)."""
    return tuple(n for n, c in CELLS.items() if isinstance(c, ElementwiseCell))
