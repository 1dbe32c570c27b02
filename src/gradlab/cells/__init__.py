"""The recurrent cells: one file per model kind (its `Cell` subclass, `@register`), one conf/model/<name>.yaml each.

This package imports every module in it, so that a cell file is registered by being here; `CELLS` holds one
instance per kind in their `order`. Adding a model is its file plus its conf (docs/cells.md, "Adding a model").
"""

from __future__ import annotations

import importlib
import pkgutil

from gradlab.cells.base import CELLS, CLASSIC, elementwise, get, names, register, unregister, with_state

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CELLS", "CLASSIC", "elementwise", "get", "names", "register", "unregister", "with_state"]
