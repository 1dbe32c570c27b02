"""The Hydra layer: compose conf/ against the schemas (each with its stage's code), turn the result into typed objects
once,
and reword every composition error as one line. `hydra_entry` is the decorator of the Hydra entry points
(pipelines/train.py, analyze.py, generate.py, geometry.py): nothing is created before the whole config is checked."""

from __future__ import annotations

import functools
import importlib
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gradlab.core.conf import CONF_DIR
from gradlab.core.errors import ConfigError, DataError, disk_error

COMPOSITION_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException,
                      OmegaConfBaseException)


# Each entry point's schemas live with its stage's code; cli imports only the one a command composes, so that the
# geometry stage, say, does not load every cell and task. Each module's hydra_schemas(): (group, name) -> schema.
SCHEMA_MODULES = {"config": "gradlab.training.config", "generate": "gradlab.data.config",
                  "geometry": "gradlab.theory.geometry_config", "memory": "gradlab.theory.memory_config"}
Config = Any  # an entry point's whole config: TrainConfig, GenerateConfig, GeometryConfig or MemoryConfig


def register_schemas(config_name: str) -> None:
    """Put config_name's schemas in Hydra's ConfigStore, where conf/ files name them in their defaults lists (again
    on every call: a cell or task registered since, e.g. a test's toy one, gets its schema)."""
    cs = ConfigStore.instance()
    for (group, name), schema in importlib.import_module(SCHEMA_MODULES[config_name]).hydra_schemas().items():
        cs.store(group=group, name=name, node=schema)


# conf/hydra/launcher/slurm.yaml's GPU request: none on a CPU-only partition unless the run asks for a GPU
OmegaConf.register_new_resolver("gradlab_slurm_gpus", lambda accelerator, devices, partition: __import__(
    "gradlab.launch.slurm", fromlist=["gpus_per_node"]).gpus_per_node(getattr(accelerator, "value", str(accelerator)),
                                                              int(devices), partition),
    replace=True)


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a config from conf/ in-process, as `pipelines/<entry>.py <overrides>` would."""
    register_schemas(config_name)
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name=config_name, overrides=overrides)


def typed(cfg: DictConfig, config_name: str = "config") -> Config:
    """The composed config as its dataclass (checked by each dataclass's __post_init__); ConfigError in one line."""
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(one_line(err, config_name)) from err


def load(config_name: str, overrides: list[str]) -> Config:
    """compose + typed: the checked config object of an entry point's command line."""
    try:
        cfg = compose(config_name, overrides)
    except COMPOSITION_ERRORS as err:
        raise ConfigError(one_line(err, config_name, overrides)) from err
    return typed(cfg, config_name)


def one_line(err: Exception, config_name: str = "config", overrides: list[str] = ()) -> str:
    """Hydra/OmegaConf errors, reworded as one line that names the value and the choices."""
    if isinstance(err, MissingConfigException):
        m = re.search(r"Could not find '([^'/]+)/([^']+)'", str(err))
        if m:
            group, value = m.groups()
            options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
            return f"{group}={value!r} is not a valid choice; choose one of: {', '.join(options)}"
    cause = err.__cause__ if isinstance(err, ConfigCompositionException) and err.__cause__ else err
    if not isinstance(cause, OmegaConfBaseException):
        lines = str(err).strip().splitlines()
        return " ".join(line.strip() for line in lines[:2]) if lines else repr(err)
    key = getattr(cause, "full_key", None) or ""
    msg = str(cause).splitlines()[0]
    if choice := re.fullmatch(r"Invalid value '(.*)', expected one of \[(.*)\]", msg):  # an Enum field
        return f"{key}={choice[1]!r} is not a valid choice; choose one of: {choice[2]}"
    if "not in struct" in str(cause) or "Key '" in msg and "not" in msg:
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        base = _base_config(config_name)
        node = OmegaConf.select(base, parent) if parent else base
        if parent == "model":  # each model has its own keys: the chosen model's, and which models take this one
            model = _override(overrides, "model") or base.model.name
            node = _model_schemas().get(model, node)
            if takers := [name for name, schema in _model_schemas().items() if key[len("model."):] in schema]:
                return f"{key}={_override(overrides, key)} applies only to model={'|'.join(takers)}, not {model}"
        valid = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "?"
        where = f"under {parent}" if parent else "at the top level"
        return f"unknown config key {key!r}; valid keys {where}: {valid}"
    return f"{key}: {msg}" if key else msg


def _override(overrides: list[str], key: str) -> str | None:
    """The value a command line gives `key` (key=value, +key=value, ++key=value), as written."""
    for item in overrides:
        name, _, value = item.partition("=")
        if name.lstrip("+") == key:
            return value
    return None


def _model_schemas() -> dict[str, DictConfig]:
    """The model group's schemas in Hydra's ConfigStore (register_schemas put them there): model name -> its keys."""
    group = ConfigStore.instance().repo.get("model", {})
    return {name.removesuffix("_schema.yaml"): entry.node for name, entry in group.items()
            if name.endswith("_schema.yaml")}


@functools.lru_cache(maxsize=4)
def _base_config(config_name: str) -> DictConfig:
    return compose(config_name, [])


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """Every job's overrides of a multirun (-m) command line, expanded as Hydra's basic sweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise ConfigError(one_line(err)) from err
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def sweep_launcher(config_name: str, overrides: list[str]) -> DictConfig:
    """hydra.launcher as the sweep will use it (composed with one job's overrides, interpolations resolved)."""
    register_schemas(config_name)
    GlobalHydra.instance().clear()
    try:
        with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra.compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except COMPOSITION_ERRORS as err:
        raise ConfigError(one_line(err, config_name)) from err
    launcher = cfg.hydra.launcher
    try:
        return OmegaConf.create(OmegaConf.to_container(launcher, resolve=True))
    except OmegaConfBaseException as err:
        raise ConfigError(one_line(err, config_name)) from err


def check_sweep(config_name: str, overrides: list[str], check: Callable[[Config], None]) -> None:
    """Every job of a sweep, loaded and checked before any is launched; no two jobs may share a run folder. Sent to
    Slurm, the jobs' machine is not this one: each job's request is checked against the partition instead
    (gradlab.launch.slurm.check_request), and each job checks its machine as it starts."""
    from gradlab.launch import slurm
    from gradlab.launch.slurm import machine_elsewhere

    jobs = sweep_jobs(overrides)
    launcher = sweep_launcher(config_name, jobs[0]) if jobs else None
    on_slurm = launcher is not None and str(launcher.get("_target_", "")).endswith("SlurmLauncher")
    folders: dict[str, int] = {}
    for i, job in enumerate(jobs):
        try:
            cfg = load(config_name, job)
            if on_slurm:
                with machine_elsewhere("slurm"):
                    check(cfg)
                if i == 0 and hasattr(cfg, "trainer"):
                    slurm.check_request(launcher, cfg.trainer.accelerator.value)
            else:
                check(cfg)
        except (ConfigError, DataError) as err:
            raise ConfigError(f"{err} (sweep job #{i}: {' '.join(job)})") from err
        if (name := getattr(cfg, "run_name", None)) is None:
            continue
        folder = str(Path(cfg.runs_dir) / name)
        if folder in folders:
            raise ConfigError(f"sweep jobs #{folders[folder]} and #{i} would both write {folder}: give run_name= "
                              f"what differs between them, e.g. run_name='${{model.name}}-lr${{optim.lr}}'")
        folders[folder] = i


def _no_check(cfg: Config) -> None:
    """An entry point whose config needs nothing beyond its schema's own checks."""


def _rerun(cfg: Config | None) -> tuple[str, str | None]:
    """After a full disk: what rerunning does, and the folder being written (for an error that names no file)."""
    return "rerun", None


def exit_on_disk_error(err: OSError, rerun: str = "rerun", where: Any = None) -> None:
    """A full, read-only or forbidden disk ends the entry point with one line and exit 1; for any other OSError this
    returns, and the caller raises it (a bug, with its traceback)."""
    if (line := disk_error(err, rerun, where)) is not None:
        # wandb keeps its debug logs on the same disk: as the process ends, their handlers fail too, and logging
        # would print each failure with its traceback after the one line
        logging.raiseExceptions = False
        sys.exit(f"error: {line}")


def hydra_entry(config_name: str, check: Callable[[Config], None] = _no_check,
                rerun: Callable[[Config], tuple[str, str | None]] = _rerun) -> Callable:
    """Decorator for the Hydra entry points: load and check the whole config first (one-line error, exit 1, nothing
    written), then run under @hydra.main with the typed config; ConfigError and DataError from the run itself end
    the same way, and so does a disk that cannot take the outputs (errors.DISK_ERRNOS: full, quota, permission,
    read-only), with the path and what to do. `check`: what the entry point needs beyond the schema (the machine, a
    resumable folder); `rerun`: what a rerun after a full disk does, and the folder it writes.

    Multirun (-m): every job is checked before any job starts (check_sweep), and again inside each job (where the
    launcher's own settings are known).
    """

    def deco(task_fn: Callable[[Config], Any]) -> Callable[[], None]:
        def job(cfg: DictConfig) -> Any:
            obj = None
            try:
                obj = typed(cfg, config_name)
                check(obj)
                return task_fn(obj)
            except (ConfigError, DataError) as err:
                sys.exit(f"error: {err}")
            except OSError as err:
                try:
                    how, where = (rerun if obj is not None else _rerun)(obj)
                except OSError:  # the folder cannot even be looked at: the error's own path says enough
                    how, where = _rerun(obj)
                exit_on_disk_error(err, how, where)
                raise

        register_schemas(config_name)
        hydra_main = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(job)

        @functools.wraps(task_fn)
        def main() -> None:
            args = sys.argv[1:]
            flags = [a for a in args if a.startswith("-")]
            if not flags or flags in (["-m"], ["--multirun"]):  # check here, before Hydra creates anything
                try:
                    if flags:
                        check_sweep(config_name, [a for a in args if not a.startswith("-")], check)
                    else:
                        check(load(config_name, args))
                except (ConfigError, DataError) as err:
                    sys.exit(f"error: {err}")
                except OSError as err:  # e.g. a run folder it may not read
                    exit_on_disk_error(err)
                    raise
                GlobalHydra.instance().clear()
            hydra_main()

        return main

    return deco


def reported(run: Callable[[], Any], where: Any = None) -> Any:
    """Run an argparse entry point's work; a ConfigError or DataError ends it with its one line and exit code 1
    (the argparse entry points read files, not configs; `hydra_entry` does the same for the Hydra ones), and so does
    a disk that cannot take its outputs (`where`: the folder it writes, for an error that names no file)."""
    try:
        return run()
    except (ConfigError, DataError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:
        exit_on_disk_error(err, where=where)
        raise
