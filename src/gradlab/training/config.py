"""A training run's config: typed dataclasses, one per config group, with their checks beside the fields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf

from gradlab.core.choices import Accelerator, ClipMode, OptimizerName, Precision, Strategy
from gradlab.core.errors import ConfigError, out_of_range
from gradlab.data.config import DataConfig, group_schemas, task_schemas
from gradlab.models.config import ModelConfig, model_schema, model_schemas
from gradlab.models.regulariser import RegulariserConfig
from gradlab.probe.bptt import ProbeConfig
from gradlab.tasks import Task, task_from
from gradlab.tracking.config import LoggerConfig


@dataclass
class OptimConfig:
    name: OptimizerName = OptimizerName.adam
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd, rmsprop
    alpha: float = 0.99  # rmsprop only: the squared-gradient average's decay (torch's default; Arjovsky et al.: 0.9)

    def __post_init__(self) -> None:
        if not 0 <= self.alpha < 1:
            raise out_of_range("optim.alpha", self.alpha, "a number in [0, 1)")
        if self.lr <= 0:
            raise out_of_range("optim.lr", self.lr, "a number > 0")
        if self.weight_decay < 0:
            raise out_of_range("optim.weight_decay", self.weight_decay, "a number >= 0")
        if not 0 <= self.momentum < 1:
            raise out_of_range("optim.momentum", self.momentum, "a number in [0, 1)")


@dataclass
class ClipConfig:
    mode: ClipMode = ClipMode.none
    threshold: float | None = None
    tag: str = "none"  # the run folder's clip part: none | norm<threshold> | value<threshold>

    def __post_init__(self) -> None:
        if self.mode == ClipMode.none and self.threshold is not None:
            raise ConfigError(f"clip.threshold={self.threshold!r} has no effect with clip=none; use clip=norm or "
                              f"clip=value")
        if self.mode != ClipMode.none and (self.threshold is None or self.threshold <= 0):
            raise out_of_range("clip.threshold", self.threshold, "a number > 0")
        tag = "none" if self.mode == ClipMode.none else f"{self.mode}{self.threshold}"  # as conf/clip/*.yaml spell it
        if self.tag != tag:  # DVC passes study.clips' tag: the folder it expects must be the folder the run writes
            raise ConfigError(f"clip.tag={self.tag!r} does not name clip={self.mode} clip.threshold={self.threshold}: "
                              f"it must be {tag!r} (the run folder's clip part)")


@dataclass
class TrainerConfig:
    # An integer, or {T: steps} for each task.seq_len (a study over T: shorter sequences need fewer steps); the
    # run's resolved config (config.yaml, W&B) keeps the integer its T picked.
    max_steps: Any = 2000
    batch_size: int = 64  # the global batch: under DDP each of the N processes takes 1/N of it
    val_every_n_steps: int = 100
    log_every_n_steps: int = 1
    accelerator: Accelerator = Accelerator.auto
    devices: int = 1  # processes per node (one per GPU, or CPU processes with accelerator=cpu)
    num_nodes: int = 1
    strategy: Strategy = Strategy.auto  # ddp: Lightning's DistributedDataParallel (gloo on CPU, nccl on GPU)
    precision: str = "32-true"  # one of Precision's values
    deterministic: bool = True
    # Flush subnormal floats to zero on the CPU (gradlab.training.subnormals): a vanishing gradient passing through
    # float32's
    # subnormal range otherwise takes the slow path of CPUs that have one (`make bench` measures it). The probe's
    # default float64 (probe.dtype) reaches 2.2e-308, so flushing hides nothing that probe records.
    flush_denormal: bool = True
    # A gradient norm (after clipping) above this is an explosion, recorded as divergence; null: only NaN/inf.
    # 1e10 is the cut Pascanu et al.'s reference code used; Adam would otherwise march on with 1e12 gradients.
    explode_threshold: float | None = 1e10
    # Stop at the first validation that finds the task solved (the papers' protocol: sequences to solve).
    stop_when_solved: bool = False

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    def __post_init__(self) -> None:
        steps = self.max_steps
        for T, n in (steps.items() if isinstance(steps, dict) else [(None, steps)]):
            if T is not None and (not isinstance(T, int) or isinstance(T, bool) or T < 2):
                raise out_of_range("trainer.max_steps", steps, "an integer >= 1, or {T: steps} with integer T >= 2")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise out_of_range("trainer.max_steps", steps, "an integer >= 1, or {T: steps} with steps >= 1")
        for key in ("batch_size", "val_every_n_steps", "log_every_n_steps", "devices", "num_nodes"):
            if getattr(self, key) < 1:
                raise out_of_range(f"trainer.{key}", getattr(self, key), "an integer >= 1")
        if self.precision == "16-mixed":
            raise ConfigError("trainer.precision='16-mixed' is refused: float16 (6e-8 to 65504) flushes to zero the "
                              "gradients this tool measures as they vanish, and its loss scaler skips the steps where "
                              "they explode; use bf16-mixed (float32's range) or 32-true")
        if self.precision not in {p.value for p in Precision}:
            raise ConfigError(f"trainer.precision={self.precision!r} is not a valid choice; choose one of: "
                              f"{', '.join(p.value for p in Precision)}")
        if self.explode_threshold is not None and self.explode_threshold <= 0:
            raise out_of_range("trainer.explode_threshold", self.explode_threshold, "a number > 0 or null")
        if self.world_size > 1 and self.batch_size % self.world_size:
            raise ConfigError(f"trainer.batch_size={self.batch_size} does not split over {self.world_size} processes "
                              f"(trainer.devices={self.devices} x trainer.num_nodes={self.num_nodes}): use a multiple "
                              f"of {self.world_size}")


@dataclass
class TrainConfig:
    """One training run (conf/config.yaml): `pipelines/train.py`, `pipelines/analyze.py`."""

    task: Task = MISSING  # a Task subclass, chosen by the task group
    model: ModelConfig = MISSING  # the cell's schema, chosen by the model group (gradlab.models.config)
    optim: OptimConfig = field(default_factory=OptimConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    regulariser: RegulariserConfig = field(default_factory=RegulariserConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    resume: bool = True  # continue an interrupted run from runs/<run_name>/last.ckpt; false: start afresh
    run_name: str = MISSING
    runs_dir: str = "runs"
    data_dir: str = "data"
    profile_name: str = "default"
    paper_name: str | None = None  # the published setup (conf/paper/<name>.yaml) the run follows, if any

    def __post_init__(self) -> None:
        if isinstance(self.trainer.max_steps, dict):  # {T: steps}: this run's T picks its integer
            steps, T = self.trainer.max_steps, self.task.seq_len
            if T not in steps:
                raise ConfigError(f"trainer.max_steps={steps} has no entry for task.seq_len={T}: give steps for "
                                  f"T={T} or one integer (it has T={', '.join(map(str, steps))})")
            self.trainer.max_steps = steps[T]
        if self.trainer.batch_size > self.data.n_train:
            raise ConfigError(f"trainer.batch_size={self.trainer.batch_size} is larger than the training set "
                              f"(data.n_train={self.data.n_train})")
        for split in ("val", "test"):  # training probes validation sequences, the analysis stage test sequences
            n = getattr(self.data, f"n_{split}")
            if self.probe.batch_size > n:
                raise ConfigError(f"probe.batch_size={self.probe.batch_size} is larger than the {split} split "
                                  f"(data.n_{split}={n})")
        if not re.fullmatch(r"[A-Za-z0-9._=+-]+", self.run_name):
            raise ConfigError(f"run_name={self.run_name!r} is not a folder name: use letters, digits and . _ - + =")


def train_config_from(saved: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from plain data (a checkpoint's hyper_parameters), checked as a composed one is."""
    schema = OmegaConf.structured(TrainConfig)
    schema.task = OmegaConf.structured(task_from(saved["task"]))
    schema.model = OmegaConf.structured(model_schema(saved["model"]["name"]))
    return OmegaConf.to_object(OmegaConf.merge(schema, saved))


def hydra_schemas() -> dict[tuple[str | None, str], type]:
    """What conf/config.yaml's defaults lists name: (group, name) -> schema (gradlab.launch.cli stores them)."""
    return {(None, "train_schema"): TrainConfig, **group_schemas("task", task_schemas()),
            **group_schemas("model", model_schemas())}
