"""One record, two sinks: Lightning's CSVLogger (the local source of truth) and WandbLogger (the viewer).

Every `self.log` in the LightningModule, and its per-step train/* and grad/* row, reach both. wandb's mode is settled
here, before `wandb.init`: offline unless the user asked for online, and never blocking on the network."""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities import rank_zero_only

from gradlab.core.runfolder import atomic_write_bytes
from gradlab.tracking.config import LoggerConfig

# Lightning's banner lines (GPU available, tips) and known-harmless warnings would bury the lines that matter.
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


logging.getLogger("lightning_fabric").setLevel(logging.WARNING)


# (srun: Lightning's hint for multi-process jobs, printed on any machine with Slurm installed; gradlab's own runs are
# single processes or started by Lightning, submitit or srun, see docs/cluster.md)
for _pattern in (".*Experiment logs directory.*", ".*isinstance\\(treespec, LeafSpec\\).*",
                 ".*The `srun` command is available on your system but is not used.*"):
    warnings.filterwarnings("ignore", message=_pattern)


def wandb_mode(configured: str) -> str:
    """WANDB_MODE in the environment wins (the user's explicit choice), else the config's logger.mode."""
    mode = os.environ.get("WANDB_MODE") or configured  # set but empty counts as unset
    return {"dryrun": "offline", "run": "online"}.get(mode, mode)


def wandb_reachable(timeout: float = 2.0) -> str | None:
    """None if the server wandb would use (WANDB_BASE_URL, its settings, its default) accepts a TCP connection."""
    from gradlab.tracking.wandb_online import server_reachable, wandb_base_url

    return server_reachable(wandb_base_url(), timeout)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class ToleratingWandbLogger(WandbLogger):
    """Lightning's WandbLogger, for a run that outlives wandb's service process. A SIGTERM to a whole Slurm job
    (`scontrol requeue`, preemption, scancel) stops that process along with the run, and the run's next log call
    would raise ConnectionResetError in the middle of the training step that is about to write last.ckpt. From the
    first such error on, this logger drops what it is given (one warning); the run goes on with metrics.csv, and its
    wandb files keep what was logged until then."""

    lost: str | None = None

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.lost is not None:
            return
        try:
            super().log_metrics(metrics, step)
        except OSError as err:  # ConnectionResetError, BrokenPipeError: the service is gone
            self.lost = f"{type(err).__name__}: {str(err).strip()[:80]}"
            _warn(f"wandb's service stopped ({self.lost}); the run goes on, its log in metrics.csv")


class _AtomicWriter(ExperimentWriter):
    """Lightning's CSV writer, writing the whole file to a temporary name and renaming it (as every gradlab file is
    written): Lightning's appends a row, or rewrites the file from its first line when a new column comes, in
    place, and a full disk left it cut short. The bytes are the ones Lightning's writer would leave."""

    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        path = Path(self.metrics_file_path)
        old = path.read_bytes() if path.is_file() else None
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.metrics_keys)
        if old is None or new_keys:  # a fresh file, or a new column: the header and every row again
            writer.writeheader()
            if old is not None:
                writer.writerows(csv.DictReader(io.StringIO(old.decode(), newline="")))
            old = b""
        writer.writerows(self.metrics)
        atomic_write_bytes(path, old + out.getvalue().encode())
        self.metrics = []

    def log_hparams(self, params: dict[str, Any]) -> None:
        from pytorch_lightning.core.saving import save_hparams_to_yaml

        self.hparams.update(params)
        path = Path(self.log_dir) / self.NAME_HPARAMS_FILE
        try:
            with tempfile.TemporaryDirectory(dir=self.log_dir, prefix=".hparams.") as tmp:
                save_hparams_to_yaml(Path(tmp) / path.name, self.hparams)
                atomic_write_bytes(path, (Path(tmp) / path.name).read_bytes())
        except OSError as err:  # named by the file it was for
            raise OSError(err.errno, err.strerror, str(path)) from err


class AtomicCSVLogger(CSVLogger):
    """Lightning's CSVLogger with _AtomicWriter: metrics.csv and hparams.yaml are never left half-written."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _AtomicWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AtomicWriter(log_dir=self.log_dir)
        return self._experiment


def _abandon_wandb(logger: WandbLogger, why: str) -> None:
    """Leave a wandb run whose service is gone as its offline files have it, and drop wandb's own exit hook (it would
    only fail the same way, with a traceback, as the process exits)."""
    import wandb

    try:
        wandb.teardown()
    except Exception:  # noqa: S110 -- the service is gone: there is nothing left to close
        pass
    _warn(f"the wandb run was left as its files have it ({why}): what was logged before the signal")


def _start_wandb(logger: LoggerConfig, name: str, save_dir: Path, config: dict[str, Any], mode: str) -> WandbLogger:
    import wandb

    os.environ["WANDB_MODE"] = mode  # the mode settled here; wandb would also read an inherited (even empty) one
    run = ToleratingWandbLogger(project=logger.project, entity=logger.entity, name=name, save_dir=str(save_dir),
                                mode=mode, config=config, settings=wandb.Settings(init_timeout=30, console="off"))
    # Lightning 2.6 always passes anonymous=None, which wandb >= 0.2x answers with a deprecation warning
    run._wandb_init.pop("anonymous", None)
    run.experiment  # noqa: B018 -- start the run now, where a failure can still be handled
    return run


def make_loggers(logger: LoggerConfig, name: str, save_dir: Path, config: dict[str, Any],
                 csv: bool = True) -> list[Logger]:
    """CSV into save_dir (metrics.csv), and a wandb run named `name` (offline by default) with the config.

    Never blocks on a network that is not there: online mode first checks that the server answers (2 s) and
    logs offline instead if not; a wandb that fails to start at all leaves the run with its local files.
    """
    loggers: list[Logger] = [AtomicCSVLogger(save_dir=str(save_dir), name=None, version="")] if csv else []
    mode = wandb_mode(logger.mode)
    if mode == "disabled":
        return loggers
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    if mode == "online" and (why := wandb_reachable()):
        _warn(f"wandb {why}: logging offline instead; `wandb sync` uploads the run later")
        mode = "offline"
    for attempt in (mode, "offline") if mode == "online" else (mode,):
        try:
            loggers.append(_start_wandb(logger, name, save_dir, config, attempt))
            return loggers
        except Exception as err:  # wandb's service crashed, no API key, a broken install: keep the local files
            _warn(f"wandb ({attempt}) failed to start ({type(err).__name__}: {str(err).strip()[:120]})")
    _warn("continuing without wandb; " + ("metrics.csv and metrics.json hold the records" if csv else
                                          "the local files hold the records"))
    return loggers


def log_once(logger: LoggerConfig, name: str, save_dir: Path, config: dict[str, Any],
             payload: Callable[[Any], dict[str, Any]]) -> str | None:
    """A wandb run that logs one payload and ends (the geometry and summary stages): `payload(wandb)` builds it.
    Returns the run's folder, or None when wandb is disabled or did not start."""
    runs = make_loggers(logger, name, save_dir, config, csv=False)
    if not runs:
        return None
    import wandb

    runs[0].experiment.log(payload(wandb))
    where = wandb_run_dir(runs)
    finish_loggers(runs)
    return where


def wandb_run_dir(loggers: list[Logger]) -> str | None:
    """Where the wandb run's files are (its offline-run-* folder), for the user to `wandb sync`."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            return str(Path(logger.experiment.dir).parent)
    return None


def finish_loggers(loggers: list[Logger], abandon_wandb: bool = False) -> None:
    """Flush the CSV and close the wandb run (its offline files are complete once this returns).

    abandon_wandb: a run stopped by a signal may find wandb's service process stopped by the same signal (Slurm
    signals every process of a job); closing it then fails, and the run is left as its offline files have it (what
    reached the service before the signal) instead of failing the stop."""
    for logger in loggers:
        logger.save()
        if not isinstance(logger, WandbLogger):
            continue
        if lost := getattr(logger, "lost", None):
            _abandon_wandb(logger, lost)
            continue
        try:
            logger.experiment.finish()
        except Exception as err:
            if not abandon_wandb:
                raise
            _abandon_wandb(logger, f"{type(err).__name__}: {str(err).strip()[:80]}")


class PlainProgress(pl.Callback):
    """Plain progress lines when stdout is not a terminal (CI, DVC, SLURM logs), instead of a progress bar."""

    def __init__(self, every_n_steps: int):
        self.every = max(1, every_n_steps)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every == 0 or step == trainer.max_steps:
            m = getattr(pl_module, "step_metrics", None) or trainer.callback_metrics
            parts = [f"{k} {float(m[k]):.4g}" for k in ("train/loss", "grad/norm_preclip") if k in m]
            print(f"step {step}/{trainer.max_steps}  " + "  ".join(parts)
                  + f"  ({time.perf_counter() - self.start:.1f}s)", file=sys.stdout, flush=True)


def log_bptt_to_wandb(loggers: list[Logger], df: Any, figures: dict[str, Path], prefix: str = "bptt") -> None:
    """The probe's outputs in wandb: figures as images, the latest probe as line_series, the table as wandb.Table."""
    import wandb

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        run = logger.experiment
        latest = df[df.step == df.step.max()]
        payload: dict[str, Any] = {f"{prefix}/{name}": wandb.Image(str(path)) for name, path in figures.items()}
        for layer in sorted(latest.layer.unique()):
            sel = latest[latest.layer == layer]
            keys = [q for q in ("dL_dh_norm", "dL_dc_norm", "dW_hh_norm", "dW_ih_norm") if (sel.quantity == q).any()]
            ts = sorted(sel.t.unique())
            payload[f"{prefix}/latest_l{layer}"] = wandb.plot.line_series(
                xs=ts, ys=[sel[sel.quantity == q].sort_values("t").value.tolist() for q in keys], keys=keys,
                title=f"per-step gradient norms at step {int(df.step.max())}, layer {layer}", xname="t")
        payload[f"{prefix}/table"] = wandb.Table(dataframe=df)
        run.log(payload)
