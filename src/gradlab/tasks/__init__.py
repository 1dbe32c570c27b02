"""The tasks: one file per task (its config dataclass, its generator, `@register`), one conf/task/<name>.yaml each.

This package imports every module in it, so that a task file is registered by being here; `TASKS` holds them in
their `order`. Adding a task is its file plus its conf (docs/cells.md, "Adding a task")."""

from __future__ import annotations

import importlib
import pkgutil

from gradlab.tasks.base import TASKS, Task, TaskSpec, register, task_from

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "Task", "TaskSpec", "register", "task_from"]
