"""The `model` config group's schema: the keys every model takes, and per cell the keys only it takes.

conf/model/<name>.yaml names `<name>_schema` in its defaults list: ModelConfig's fields plus the fields of the cell's
own `Options` dataclass (gradlab.cells), with `name` defaulting to the cell's. So a key one cell takes and another
does not is an unknown key for the other, and Hydra refuses it before any work (gradlab.launch.cli words it).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

from gradlab import cells
from gradlab.core.choices import RecurrentInit
from gradlab.core.errors import out_of_range


@dataclass
class ModelConfig:
    name: str = "lstm"  # a registered cell (gradlab.cells): checked against the registry, which names the choices
    hidden_size: int = 64
    num_layers: int = 1
    recurrent_init: RecurrentInit = RecurrentInit.default
    recurrent_gain: float = 1.0

    def cell_options(self) -> dict[str, Any]:
        """The values of the cell's own model.* keys (None: not set)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in _COMMON}

    def __post_init__(self) -> None:
        if self.hidden_size < 1:
            raise out_of_range("model.hidden_size", self.hidden_size, "an integer >= 1")
        if self.num_layers < 1:
            raise out_of_range("model.num_layers", self.num_layers, "an integer >= 1")
        if self.recurrent_gain <= 0:
            raise out_of_range("model.recurrent_gain", self.recurrent_gain, "a number > 0")
        cells.get(self.name).check_options(str(self.recurrent_init), **self.cell_options())


_COMMON = frozenset(f.name for f in dataclasses.fields(ModelConfig))


@functools.cache
def model_schema(name: str) -> type[ModelConfig]:
    """ModelConfig with the fields of cell `name`'s Options (their types resolved) and `name` defaulting to it; a
    class of this module (its qualified name resolves, so it pickles)."""
    cell = cells.get(name)
    hints = typing.get_type_hints(cell.Options)
    own = [(f.name, hints[f.name], dataclasses.field(default=f.default)) for f in dataclasses.fields(cell.Options)]
    cls_name = f"{type(cell).__name__}ModelConfig"
    schema = dataclasses.make_dataclass(cls_name, [("name", str, dataclasses.field(default=cell.name)), *own],
                                        bases=(ModelConfig,), namespace={"__module__": __name__})
    globals()[cls_name] = schema
    return schema


def model_schemas() -> dict[str, type[ModelConfig]]:
    """The model group's schemas, named as conf/model/<name>.yaml's defaults lists name them."""
    return {f"{name}_schema": model_schema(name) for name in cells.names()}


def __getattr__(name: str) -> type[ModelConfig]:
    """A schema by its class name, built on first use: what unpickling a config in a fresh process (a Slurm job,
    a DDP worker) asks this module for before any model_schema() call has made it."""
    for cell in cells.names():
        if f"{type(cells.get(cell)).__name__}ModelConfig" == name:
            return model_schema(cell)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
