"""The registry of recurrent cells: a model kind is one `Cell` (gradlab.cells.base), registered by name.

Adding a model is its cell class (a module here, or anywhere that calls `register`) plus conf/model/<name>.yaml.
"""

from __future__ import annotations

from gradlab.cells.base import Cell, ElementwiseCell, sparse_spectral_
from gradlab.cells.elman import IRNN, TanhRNN
from gradlab.cells.exprnn import ExpRNN
from gradlab.cells.gated import GRU, LSTM, NFG_FORGET_BIAS, NoForgetGateLSTM
from gradlab.cells.lstm97 import LSTM97
from gradlab.errors import ConfigError

CELLS: dict[str, Cell] = {}

# The three models gradlab was born with, in the order the studies and the demo draw them; the remedies follow.
CLASSIC = ("rnn", "lstm", "nfg_lstm")


def register(cell: Cell) -> Cell:
    """Add a cell to the registry under cell.name (a test's toy cell, a new model); returns it."""
    CELLS[cell.name] = cell
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


for _cell in (TanhRNN(), LSTM(), NoForgetGateLSTM(), GRU(), IRNN(), ExpRNN(), LSTM97()):
    register(_cell)

__all__ = ["CELLS", "CLASSIC", "Cell", "ElementwiseCell", "NFG_FORGET_BIAS", "elementwise", "get", "names",
           "register", "sparse_spectral_", "unregister", "with_state"]
