"""The data set's config (the `data` group) and the generate stage's whole config."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from gradlab.core.errors import out_of_range
from gradlab.tasks import TASKS, Task


@dataclass
class DataConfig:
    """The generated data set's split sizes and its own seed (so that `seed=` varies the model, never the data)."""

    n_train: int = 10000
    n_val: int = 1000
    n_test: int = 1000
    seed: int = 1234

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def __post_init__(self) -> None:
        for split, n in self.sizes().items():
            if n < 1:
                raise out_of_range(f"data.n_{split}", n, "an integer >= 1")


@dataclass
class GenerateConfig:
    """One data set (conf/generate.yaml): `pipelines/generate.py`."""

    task: Task = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    data_dir: str = "data"


def task_schemas() -> dict[str, type[Task]]:
    """The task group's schemas, named as conf/task/<name>.yaml's defaults lists name them."""
    return {f"{name}_schema": cls for name, cls in TASKS.items()}


def group_schemas(group: str, schemas: dict[str, type]) -> dict[tuple[str | None, str], type]:
    return {(group, name): schema for name, schema in schemas.items()}


def hydra_schemas() -> dict[tuple[str | None, str], type]:
    """What conf/generate.yaml's defaults lists name: (group, name) -> schema (gradlab.launch.cli stores them)."""
    return {(None, "generate_schema"): GenerateConfig, **group_schemas("task", task_schemas())}
