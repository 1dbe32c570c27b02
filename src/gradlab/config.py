"""Structured config schema for every Hydra entry point, and validation of the composed config.

Hydra checks keys and types against the dataclasses below; `validate` checks ranges, choices and cross-field
rules. Both run before any data or run folder is touched, and every error is one line that names the key, the
bad value and what is allowed.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

TASKS = ("adding", "copy", "first_token")
MODELS = ("rnn", "lstm", "nfg_lstm")
OPTIMIZERS = ("adam", "adamw", "sgd")
CLIP_MODES = ("none", "norm", "value")
RECURRENT_INITS = ("default", "orthogonal")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "64-true", "bf16-mixed")
LOGGER_MODES = ("offline", "online", "disabled")


class ConfigError(ValueError):
    """A config value that cannot work; the message is the whole story, in one line."""


@dataclass
class AddingTask:
    name: str = "adding"
    seq_len: int = 100


@dataclass
class CopyTask:
    name: str = "copy"
    seq_len: int = 100
    copy_len: int = 10
    n_symbols: int = 8


@dataclass
class FirstTokenTask:
    name: str = "first_token"
    seq_len: int = 100
    n_classes: int = 4
    n_distractors: int = 4


@dataclass
class ModelConfig:
    name: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    recurrent_init: str = "default"
    recurrent_gain: float = 1.0
    forget_bias: float | None = None


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0


@dataclass
class ClipConfig:
    mode: str = "none"
    threshold: float | None = None
    tag: str = "none"


@dataclass
class TrainerConfig:
    max_steps: int = 2000
    batch_size: int = 64
    val_every_n_steps: int = 100
    log_every_n_steps: int = 1
    accelerator: str = "auto"
    devices: int = 1  # processes per node (one per GPU, or CPU processes with accelerator=cpu)
    num_nodes: int = 1
    # auto: one process, or ddp when devices x num_nodes > 1; ddp: Lightning's DistributedDataParallel (gloo on
    # CPU, nccl on GPU). trainer.batch_size is the global batch: each of the N processes takes 1/N of it.
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    # a gradient norm (after clipping) above this is an explosion, recorded as divergence; null: only NaN/inf.
    # 1e10 is the cut Pascanu et al.'s reference code used; Adam would otherwise march on with 1e12 gradients.
    explode_threshold: float | None = 1e10


@dataclass
class ProbeConfig:
    enabled: bool = True
    every_n_steps: int = 100
    batch_size: int = 32


@dataclass
class LoggerConfig:
    mode: str = "offline"
    project: str = "gradlab"
    entity: str | None = None


@dataclass
class DataConfig:
    n_train: int = 10000
    n_val: int = 1000
    n_test: int = 1000
    seed: int = 1234


@dataclass
class TrainConfig:
    task: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
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


@dataclass
class GenerateConfig:
    task: Any = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    data_dir: str = "data"


@dataclass
class GeometryParams:
    dims: list[int] = field(default_factory=lambda: [2, 3, 10, 50, 100, 1000, 10000])
    distributions: list[str] = field(default_factory=lambda: ["cube", "gaussian", "sphere"])
    n_pairs: int = 10_000
    n_points: int = 100  # relative contrast: distances from each query to this many points
    n_queries: int = 100
    epsilon: float = 0.01  # the shell's thickness, as a fraction of the radius
    mc_samples: int = 2_000_000  # cube points for the Monte Carlo shell fraction
    mc_max_dim: int = 10  # above this, almost no cube point falls in the ball: analytic value only
    histogram_bins: int = 90


@dataclass
class GeometryConfig:
    geometry: GeometryParams = field(default_factory=GeometryParams)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    out_dir: str = "results/geometry"


def validate_geometry(cfg: DictConfig) -> None:
    """Ranges and choices of the geometry stage's config; raise ConfigError."""
    g = cfg.geometry
    if not g.dims:
        raise ConfigError("geometry.dims=[] is empty: give at least one dimension, e.g. [2,10,100]")
    for D in g.dims:
        _range("geometry.dims", D, D >= 1, "a list of integers >= 1")
    if not g.distributions:
        raise ConfigError("geometry.distributions=[] is empty: choose from cube, gaussian, sphere")
    for d in g.distributions:
        _choice("geometry.distributions", d, ("cube", "gaussian", "sphere"))
    _range("geometry.n_pairs", g.n_pairs, g.n_pairs >= 2, "an integer >= 2")
    _range("geometry.n_points", g.n_points, g.n_points >= 2, "an integer >= 2")
    _range("geometry.n_queries", g.n_queries, g.n_queries >= 1, "an integer >= 1")
    _range("geometry.epsilon", g.epsilon, 0 < g.epsilon < 1, "a number in (0, 1)")
    _range("geometry.mc_samples", g.mc_samples, g.mc_samples >= 1, "an integer >= 1")
    _range("geometry.histogram_bins", g.histogram_bins, g.histogram_bins >= 2, "an integer >= 2")
    _choice("logger.mode", cfg.logger.mode, LOGGER_MODES)


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore, where conf/ files name them in their defaults lists."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="generate_schema", node=GenerateConfig)
    cs.store(name="geometry_schema", node=GeometryConfig)
    cs.store(group="task", name="adding_schema", node=AddingTask)
    cs.store(group="task", name="copy_schema", node=CopyTask)
    cs.store(group="task", name="first_token_schema", node=FirstTokenTask)


register_schemas()


# ---------------------------------------------------------------------------------------------- validation


def _range(key: str, value: Any, ok: bool, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: must be {rule}")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not a valid choice; choose one of: {', '.join(choices)}")


def validate_task(task: DictConfig) -> None:
    """Ranges of the task group (shared by the generate and train entry points)."""
    _choice("task.name", task.name, TASKS)
    _range("task.seq_len", task.seq_len, task.seq_len >= 2, "an integer >= 2")
    if task.name == "copy":
        _range("task.copy_len", task.copy_len, task.copy_len >= 1, "an integer >= 1")
        _range("task.n_symbols", task.n_symbols, task.n_symbols >= 2, "an integer >= 2")
    if task.name == "first_token":
        _range("task.n_classes", task.n_classes, task.n_classes >= 2, "an integer >= 2")
        _range("task.n_distractors", task.n_distractors, task.n_distractors >= 1, "an integer >= 1")


def validate_data(data: DictConfig) -> None:
    for split in ("n_train", "n_val", "n_test"):
        _range(f"data.{split}", data[split], data[split] >= 1, "an integer >= 1")


def training_memory_bytes(cfg: DictConfig) -> int:
    """A rough upper estimate of one training step's device memory: weights, gradients and Adam's two moments,
    plus what the fused kernel keeps for the backward pass (gates, h and c of every step and layer) and its
    gradients. Deliberately generous (x2 on activations): it only has to catch sizes that cannot fit."""
    m, t, task = cfg.model, cfg.trainer, cfg.task
    gates = 1 if m.name == "rnn" else 4
    H, L, B = m.hidden_size, m.num_layers, t.batch_size
    T = task.seq_len + (2 * task.copy_len if task.name == "copy" else 0)
    width = 8 if t.precision == "64-true" else 4
    n_params = L * gates * H * (2 * H + 2) + gates * H * 16
    activations = B * T * L * H * (gates + 2) * width
    return 4 * n_params * width + 2 * 2 * activations


def check_gpu_memory(cfg: DictConfig, total_bytes: int) -> None:
    """ConfigError when the estimate exceeds 90% of the GPU's memory, naming the sizes that drive it."""
    need = training_memory_bytes(cfg)
    if need > 0.9 * total_bytes:
        raise ConfigError(
            f"model.hidden_size={cfg.model.hidden_size} with trainer.batch_size={cfg.trainer.batch_size} and "
            f"task.seq_len={cfg.task.seq_len} needs about {need / 2**30:.1f} GiB on the GPU, which has "
            f"{total_bytes / 2**30:.1f} GiB; lower one of them")


def _cuda_will_be_used(accelerator: str) -> bool:
    if accelerator in ("gpu", "cuda"):
        return True
    if accelerator != "auto" or not Path("/proc/driver/nvidia").exists():
        return False
    import torch

    return torch.cuda.is_available()


def _check_cpu_bf16_lstm() -> None:
    """oneDNN runs nn.LSTM in bfloat16 only on CPUs with bf16 instructions (AVX-512 BF16, AMX): try it on a tiny one."""
    import torch

    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 4, batch_first=True)(torch.zeros(1, 2, 2))
    except RuntimeError:
        raise ConfigError("trainer.precision='bf16-mixed' with an LSTM on this CPU: its oneDNN has no bfloat16 LSTM "
                          "kernel (that needs AVX-512 BF16 or AMX); use trainer.precision=32-true, or a GPU") from None


def validate(cfg: DictConfig) -> None:
    """Check ranges, choices and cross-field rules of a composed training config; raise ConfigError."""
    validate_task(cfg.task)
    validate_data(cfg.data)
    m = cfg.model
    _choice("model.name", m.name, MODELS)
    _range("model.hidden_size", m.hidden_size, m.hidden_size >= 1, "an integer >= 1")
    _range("model.num_layers", m.num_layers, m.num_layers >= 1, "an integer >= 1")
    _choice("model.recurrent_init", m.recurrent_init, RECURRENT_INITS)
    _range("model.recurrent_gain", m.recurrent_gain, m.recurrent_gain > 0, "a number > 0")
    if m.forget_bias is not None and m.name != "lstm":
        raise ConfigError(f"model.forget_bias={m.forget_bias!r} applies only to model=lstm, not {m.name}")
    o = cfg.optim
    _choice("optim.name", o.name, OPTIMIZERS)
    _range("optim.lr", o.lr, o.lr > 0, "a number > 0")
    _range("optim.weight_decay", o.weight_decay, o.weight_decay >= 0, "a number >= 0")
    _range("optim.momentum", o.momentum, 0 <= o.momentum < 1, "a number in [0, 1)")
    c = cfg.clip
    _choice("clip.mode", c.mode, CLIP_MODES)
    if c.mode == "none" and c.threshold is not None:
        raise ConfigError(f"clip.threshold={c.threshold!r} has no effect with clip=none; use clip=norm or clip=value")
    if c.mode != "none":
        _range("clip.threshold", c.threshold, c.threshold is not None and c.threshold > 0, "a number > 0")
    tag = "none" if c.mode == "none" else f"{c.mode}{c.threshold}"  # as conf/clip/<mode>.yaml interpolates it
    if c.tag != tag:  # DVC passes study.clips' tag: the folder it expects must be the folder the run writes
        raise ConfigError(f"clip.tag={c.tag!r} does not name clip={c.mode} clip.threshold={c.threshold}: "
                          f"it must be {tag!r} (the run folder's clip part)")
    t = cfg.trainer
    _range("trainer.max_steps", t.max_steps, t.max_steps >= 1, "an integer >= 1")
    _range("trainer.batch_size", t.batch_size, t.batch_size >= 1, "an integer >= 1")
    if t.batch_size > cfg.data.n_train:
        raise ConfigError(
            f"trainer.batch_size={t.batch_size} is larger than the training set (data.n_train={cfg.data.n_train})"
        )
    _range("trainer.val_every_n_steps", t.val_every_n_steps, t.val_every_n_steps >= 1, "an integer >= 1")
    _range("trainer.log_every_n_steps", t.log_every_n_steps, t.log_every_n_steps >= 1, "an integer >= 1")
    _choice("trainer.accelerator", t.accelerator, ACCELERATORS)
    if t.accelerator in ("gpu", "cuda") or (t.accelerator == "auto" and Path("/proc/driver/nvidia").exists()):
        import torch  # only where a GPU may be used: the common CPU path stays fast

        if torch.cuda.is_available():
            check_gpu_memory(cfg, torch.cuda.get_device_properties(0).total_memory)
        elif t.accelerator != "auto":
            raise ConfigError(f"trainer.accelerator={t.accelerator} but this machine has no CUDA GPU; "
                              f"use trainer.accelerator=auto (GPU when there is one) or cpu")
    _range("trainer.devices", t.devices, t.devices >= 1, "an integer >= 1")
    _range("trainer.num_nodes", t.num_nodes, t.num_nodes >= 1, "an integer >= 1")
    _choice("trainer.strategy", t.strategy, ("auto", "ddp"))
    world = t.devices * t.num_nodes
    if world > 1 and t.batch_size % world:
        raise ConfigError(f"trainer.batch_size={t.batch_size} does not split over {world} processes "
                          f"(trainer.devices={t.devices} x trainer.num_nodes={t.num_nodes}): use a multiple of {world}")
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get() if HydraConfig.initialized() else None
    if world > 1 and hc and hc.mode == RunMode.MULTIRUN and "submitit" in str(hc.launcher.get("_target_")):
        launcher = hc.launcher  # a submitit job: submitit/SLURM starts one task per process
        if (launcher.tasks_per_node, launcher.nodes) != (t.devices, t.num_nodes):
            raise ConfigError(f"trainer.devices={t.devices} x trainer.num_nodes={t.num_nodes} under the submitit "
                              f"launcher needs one task per process: hydra.launcher.tasks_per_node={t.devices} "
                              f"hydra.launcher.nodes={t.num_nodes} (have {launcher.tasks_per_node} x {launcher.nodes})")
    if t.precision == "16-mixed":
        raise ConfigError("trainer.precision='16-mixed' is refused: float16 (6e-8 to 65504) flushes to zero the "
                          "gradients this tool measures as they vanish, and its loss scaler skips the steps where "
                          "they explode; use bf16-mixed (float32's range) or 32-true")
    _choice("trainer.precision", t.precision, PRECISIONS)
    if t.precision == "bf16-mixed" and m.name != "rnn" and not _cuda_will_be_used(t.accelerator):
        _check_cpu_bf16_lstm()
    if t.explode_threshold is not None:
        _range("trainer.explode_threshold", t.explode_threshold, t.explode_threshold > 0, "a number > 0 or null")
    p = cfg.probe
    _range("probe.every_n_steps", p.every_n_steps, p.every_n_steps >= 1, "an integer >= 1")
    _range("probe.batch_size", p.batch_size, p.batch_size >= 1, "an integer >= 1")
    for split in ("val", "test"):  # training probes validation sequences, the analysis stage test sequences
        if p.batch_size > cfg.data[f"n_{split}"]:
            raise ConfigError(f"probe.batch_size={p.batch_size} is larger than the {split} split "
                              f"(data.n_{split}={cfg.data[f'n_{split}']})")
    _choice("logger.mode", cfg.logger.mode, LOGGER_MODES)
    if not re.fullmatch(r"[A-Za-z0-9._=+-]+", cfg.run_name):
        raise ConfigError(f"run_name={cfg.run_name!r} is not a folder name: use letters, digits and . _ - + =")


# ------------------------------------------------------------------------------------------ entry points


def _group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _one_line(err: Exception, config_name: str = "config") -> str:
    """Hydra/OmegaConf composition errors, reworded as one line that names the value and the choices."""
    if isinstance(err, MissingConfigException):
        m = re.search(r"Could not find '([^'/]+)/([^']+)'", str(err))
        if m:
            group, value = m.groups()
            options = [o for o in _group_options(group) if not o.endswith("_schema")]
            return f"{group}={value!r} is not a valid choice; choose one of: {', '.join(options)}"
    cause = err.__cause__ if isinstance(err, ConfigCompositionException) and err.__cause__ else err
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or ""
        msg = str(cause).splitlines()[0]
        if "not in struct" in str(cause) or "Key '" in msg and "not" in msg:
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            base = _base_config(config_name)
            node = OmegaConf.select(base, parent) if parent else base
            valid = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "?"
            where = f"under {parent}" if parent else "at the top level"
            return f"unknown config key {key!r}; valid keys {where}: {valid}"
        return f"{key}: {msg}" if key else msg
    first = str(err).strip().splitlines()
    return " ".join(line.strip() for line in first[:2]) if first else repr(err)


@functools.lru_cache(maxsize=4)
def _base_config(config_name: str = "config") -> DictConfig:
    return compose(config_name, [])


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a config from conf/ in-process (tests and the pre-flight check use this)."""
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name=config_name, overrides=overrides)


def preflight(config_name: str, overrides: list[str], check: Callable[[DictConfig], None]) -> DictConfig:
    """Compose and validate; raise ConfigError with a one-line message on any problem."""
    try:
        cfg = compose(config_name, overrides)
        OmegaConf.resolve(cfg)
    except (ConfigCompositionException, MissingConfigException, OverrideParseException,
            OmegaConfBaseException) as err:
        raise ConfigError(_one_line(err, config_name)) from err
    check(cfg)
    return cfg


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """Every job's overrides of a multirun (-m) command line, expanded as Hydra's basic sweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise ConfigError(_one_line(err)) from err
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def preflight_sweep(config_name: str, overrides: list[str], check: Callable[[DictConfig], None]) -> None:
    """`preflight` for each job of a sweep, before any is launched; and no two jobs may share a run folder."""
    folders: dict[str, int] = {}
    for i, job in enumerate(sweep_jobs(overrides)):
        try:
            cfg = preflight(config_name, job, check)
        except ConfigError as err:
            raise ConfigError(f"{err} (sweep job #{i}: {' '.join(job)})") from err
        name = OmegaConf.select(cfg, "run_name")
        if name is None:
            continue
        folder = str(Path(cfg.runs_dir) / name)
        if folder in folders:
            raise ConfigError(f"sweep jobs #{folders[folder]} and #{i} would both write {folder}: give run_name= "
                              f"what differs between them, e.g. run_name='${{model.name}}-lr${{optim.lr}}'")
        folders[folder] = i


def entry(config_name: str, check: Callable[[DictConfig], None]) -> Callable:
    """Decorator for pipelines/*.py: validate first (one-line error, exit 1, nothing written), then @hydra.main.

    Multirun (-m): every job's config is validated before any job starts (preflight_sweep), and again inside each
    job (where the launcher's own settings are known).
    """

    def deco(task_fn: Callable[[DictConfig], Any]) -> Callable[[], None]:
        def checked(cfg: DictConfig) -> Any:
            try:
                check(cfg)
            except ConfigError as err:
                sys.exit(f"error: {err}")
            return task_fn(cfg)

        hydra_main = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(checked)

        @functools.wraps(task_fn)
        def main() -> None:
            args = sys.argv[1:]
            flags = [a for a in args if a.startswith("-")]
            if not flags or flags in (["-m"], ["--multirun"]):  # check here, before Hydra creates anything
                try:
                    if flags:
                        preflight_sweep(config_name, [a for a in args if not a.startswith("-")], check)
                    else:
                        preflight(config_name, args, check)
                except ConfigError as err:
                    sys.exit(f"error: {err}")
                GlobalHydra.instance().clear()
            hydra_main()

        return main

    return deco
