"""The configs gradlab passes around: typed dataclasses, one per config group, with their checks beside the fields.

Hydra composes conf/ against these schemas (unknown keys and wrong types fail there; choices are Enums, so OmegaConf
names the valid values), `gradlab.cli` converts the result once with `OmegaConf.to_object`, and each dataclass's
`__post_init__` checks ranges and cross-field rules as it is built. Every error is one line naming the key, the bad
value and what is allowed. Checks that depend on the machine (a GPU, its memory) are in `gradlab.machine`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from gradlab import cells
from gradlab.choices import (
    Accelerator,
    ClipMode,
    Distribution,
    LoggerMode,
    OptimizerName,
    Precision,
    ProbeDtype,
    RecurrentInit,
    RegulariserName,
    Strategy,
    choose,
)
from gradlab.errors import ConfigError, out_of_range
from gradlab.tasks import TASKS, Task, task_from

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class ModelConfig:
    name: str = "lstm"  # a registered cell (gradlab.cells): checked against the registry, which names the choices
    hidden_size: int = 64
    num_layers: int = 1
    recurrent_init: RecurrentInit = RecurrentInit.default
    recurrent_gain: float = 1.0
    forget_bias: float | None = None  # cells that take it (lstm): the forget gate's bias at init (None: PyTorch's)
    # lstm97 (Hochreiter & Schmidhuber 1997) only: cells per memory block (they share the block's input and output
    # gates), their truncated gradient, and the input gates' initial biases (one per block); null: not set
    block_size: int | None = None
    truncate: bool | None = None
    input_gate_bias: list[float] | None = None

    def cell_options(self) -> dict[str, Any]:
        """The model.* values that only some cells take (None: not set)."""
        return {"block_size": self.block_size, "truncate": self.truncate, "input_gate_bias": self.input_gate_bias}

    def __post_init__(self) -> None:
        if self.hidden_size < 1:
            raise out_of_range("model.hidden_size", self.hidden_size, "an integer >= 1")
        if self.num_layers < 1:
            raise out_of_range("model.num_layers", self.num_layers, "an integer >= 1")
        if self.recurrent_gain <= 0:
            raise out_of_range("model.recurrent_gain", self.recurrent_gain, "a number > 0")
        cells.get(self.name).check_options(str(self.recurrent_init), self.forget_bias, **self.cell_options())


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
class RegulariserConfig:
    """Pascanu, Mikolov & Bengio 2013's vanishing-gradient regulariser (gradlab.regulariser): the training loss is
    E + alpha·Ω, computed on the unrolled twin; train/loss stays E and train/omega records Ω."""

    name: RegulariserName = RegulariserName.none
    alpha: float = 2.0  # their RNN.py default; with name=pascanu, 0 records Ω without training on it

    def __post_init__(self) -> None:
        self.name = choose(RegulariserName, "regulariser.name", self.name)  # also when built outside Hydra
        if not 0 <= self.alpha < float("inf"):  # NaN too
            raise out_of_range("regulariser.alpha", self.alpha, "a finite number >= 0")


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
    # Flush subnormal floats to zero on the CPU (gradlab.subnormals): a vanishing gradient passing through float32's
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
class ProbeConfig:
    enabled: bool = True
    every_n_steps: int = 100
    batch_size: int = 32  # the first batch_size validation sequences (test sequences in the analysis stage)
    dtype: ProbeDtype = ProbeDtype.float64  # what the probe computes in (the training itself is unchanged)
    lyapunov_k: int = 16  # the analyze stage's Lyapunov spectrum: its k largest exponents (all, for a smaller state)

    def __post_init__(self) -> None:
        if self.lyapunov_k < 1:
            raise out_of_range("probe.lyapunov_k", self.lyapunov_k, "an integer >= 1")
        if self.every_n_steps < 1:
            raise out_of_range("probe.every_n_steps", self.every_n_steps, "an integer >= 1")
        if self.batch_size < 1:
            raise out_of_range("probe.batch_size", self.batch_size, "an integer >= 1")


@dataclass
class LoggerConfig:
    mode: LoggerMode = LoggerMode.offline
    project: str = "gradlab"
    entity: str | None = None


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
class TrainConfig:
    """One training run (conf/config.yaml): `pipelines/train.py`, `pipelines/analyze.py`."""

    task: Task = MISSING  # a Task subclass, chosen by the task group
    model: ModelConfig = field(default_factory=ModelConfig)
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


@dataclass
class GenerateConfig:
    """One data set (conf/generate.yaml): `pipelines/generate.py`."""

    task: Task = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    data_dir: str = "data"


@dataclass
class GeometryParams:
    dims: list[int] = field(default_factory=lambda: [2, 3, 10, 50, 100, 1000, 10000])
    distributions: list[Distribution] = field(default_factory=lambda: list(Distribution))
    n_pairs: int = 10_000
    n_points: int = 100  # relative contrast: distances from each query to this many points
    n_queries: int = 100
    epsilon: float = 0.01  # the shell's thickness, as a fraction of the radius
    mc_samples: int = 2_000_000  # cube points for the Monte Carlo shell fraction
    mc_max_dim: int = 10  # above this, almost no cube point falls in the ball: analytic value only
    histogram_bins: int = 90

    def __post_init__(self) -> None:
        if not self.dims:
            raise ConfigError("geometry.dims=[] is empty: give at least one dimension, e.g. [2,10,100]")
        if not self.distributions:
            raise ConfigError(f"geometry.distributions=[] is empty: choose from {', '.join(Distribution)}")
        for D in self.dims:
            check_geometry(D=D, n_pairs=self.n_pairs, epsilon=self.epsilon, prefix="geometry.")
        for key, low in (("n_points", 2), ("n_queries", 1), ("mc_samples", 1), ("histogram_bins", 2)):
            if getattr(self, key) < low:
                raise out_of_range(f"geometry.{key}", getattr(self, key), f"an integer >= {low}")


def check_geometry(distribution: str | None = None, D: int | None = None, n_pairs: int | None = None,
                   epsilon: float | None = None, prefix: str = "") -> None:
    """The rules of the geometry functions' arguments (gradlab.geometry) and of the stage's config (prefix
    `geometry.`, where D is an entry of geometry.dims): ConfigError naming the value and what is allowed."""
    if distribution is not None:
        choose(Distribution, f"{prefix}distribution", distribution)
    if D is not None and (not isinstance(D, int) or D < 1):
        raise out_of_range(f"{prefix}dims" if prefix else "D", D, "an integer >= 1")
    if n_pairs is not None and (not isinstance(n_pairs, int) or n_pairs < 2):
        raise out_of_range(f"{prefix}n_pairs", n_pairs, "an integer >= 2")
    if epsilon is not None and not 0 < epsilon < 1:
        raise out_of_range(f"{prefix}epsilon", epsilon, "a number in (0, 1)")


@dataclass
class GeometryConfig:
    """The geometry stage (conf/geometry.yaml): `pipelines/geometry.py`."""

    geometry: GeometryParams = field(default_factory=GeometryParams)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    out_dir: str = "results/geometry"


SCHEMAS = {"config": TrainConfig, "generate": GenerateConfig, "geometry": GeometryConfig}
Config = TrainConfig | GenerateConfig | GeometryConfig  # an entry point's whole config


def as_dict(cfg: Config) -> dict[str, Any]:
    """A config object as plain data (Enums as their strings): what config.yaml, checkpoints and wandb keep."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)


def train_config_from(saved: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from plain data (a checkpoint's hyper_parameters), checked as a composed one is."""
    schema = OmegaConf.structured(TrainConfig)
    schema.task = OmegaConf.structured(task_from(saved["task"]))
    return OmegaConf.to_object(OmegaConf.merge(schema, saved))


def task_schemas() -> dict[str, type[Task]]:
    """The task group's schemas, named as conf/task/<name>.yaml's defaults lists name them."""
    return {f"{name}_schema": cls for name, cls in TASKS.items()}
