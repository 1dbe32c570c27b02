"""Interrupted runs: last.ckpt after every validation and on SIGTERM/SIGINT, and resuming from it on the next call.

A run folder holds `last.ckpt` while its run is unfinished and `model.ckpt` once it has finished. Rerunning the
same command continues from whichever is there (the finished one only trains on if trainer.max_steps grew), as
long as the saved config equals the new one in everything but the training length; otherwise it stops with the
keys that differ, before any work. `resume=false` starts afresh."""

from __future__ import annotations

import csv
import io
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.plugins import TorchCheckpointIO

from gradlab.core.conf import as_dict
from gradlab.core.errors import ConfigError
from gradlab.core.runfolder import RunFolder, atomic_write_bytes
from gradlab.training.config import TrainConfig

MAY_DIFFER = ("trainer.max_steps", "resume")  # a resumed run may train for longer; everything else must match


CSV_ROWS = "gradlab_csv_rows"


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): node}


def config_differences(saved: dict[str, Any], wanted: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """`key: saved -> wanted` for every leaf that differs (a key only one side has counts too)."""
    a, b = _flat(saved), _flat(wanted)
    return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in sorted(a.keys() | b.keys())
            if k not in ignore and a.get(k, "<absent>") != b.get(k, "<absent>")]


def read_checkpoint(path: Path, hint: str = "delete it or use resume=false to start the run afresh") -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: pickle, zip or key errors
        raise ConfigError(f"checkpoint {path} is unreadable ({type(err).__name__}); {hint}") from None


@dataclass(frozen=True)
class Resume:
    """Where an interrupted (or shorter) earlier run of this folder stands."""

    checkpoint: Path
    step: int
    csv_rows: int  # metrics.csv rows logged when the checkpoint was written


def resume_from(cfg: TrainConfig) -> Resume | None:
    """The checkpoint to resume from; None: a fresh start. ConfigError if the folder holds a run with another
    config."""
    folder = RunFolder.of(cfg.runs_dir, cfg.run_name)
    if not cfg.resume:
        return None
    for path in (folder.last_ckpt, folder.final_ckpt):
        if path.is_file():
            ckpt = read_checkpoint(path)
            saved = ckpt.get("hyper_parameters")
            if not isinstance(saved, dict) or "loops" not in ckpt:
                raise ConfigError(f"checkpoint {path} is not a gradlab training checkpoint; use resume=false "
                                  f"or another run_name=")
            diff = config_differences(saved, as_dict(cfg), MAY_DIFFER)
            if diff:
                raise ConfigError(f"{folder.path} holds a run with another config ({'; '.join(diff)}); use another "
                                  f"run_name= or resume=false to overwrite it")
            return Resume(path, int(ckpt.get("global_step", 0)), int(ckpt.get(CSV_ROWS, 0)))
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written as every other file of a run folder: a temporary name beside the file, then a rename
    (gradlab.core.runfolder.atomic_write_bytes). Lightning's own "atomic" save writes its temporary file under /tmp and
    copies it over when the run folder is on another file system: a full disk left half a model.ckpt there."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(Path(path), buf.getvalue())


def csv_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def csv_until(path: Path, n_rows: int) -> tuple[list[str], bytes] | None:
    """The metrics.csv a resumed run starts from: the header and the first n_rows rows, those logged before its
    checkpoint was written (the resumed run logs the later steps again). None when there is no file."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows, header = list(reader)[:n_rows], list(reader.fieldnames or [])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return header, out.getvalue().encode()


def continue_csv(logger: Any, path: Path, kept: tuple[list[str], bytes] | None) -> None:
    """Give a resumed run's CSVLogger the old rows: Lightning's writer deletes an existing metrics.csv when it
    starts and then knows no columns, so the kept rows are put back after it has started."""
    if kept is None:
        return
    writer = logger.experiment  # created now: this is where Lightning removes the old file
    atomic_write_bytes(path, kept[1])
    writer.metrics_keys = list(kept[0])


# The signals that stop a run with last.ckpt at the current step: SIGTERM (kill, scancel, `scontrol requeue`,
# preemption), SIGINT (Ctrl-C) and the time-limit warnings a Slurm job asks for with --signal (submitit's is USR2,
# Lightning's USR1).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


TIME_LIMIT_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class GracefulStop(pl.Callback):
    """last.ckpt at the end of every validation (trainer.val_every_n_steps), and on a stop signal: finish the
    current optimizer step, write last.ckpt, stop. Both are written at the same point, the end of a validation,
    which is where Lightning resumes exactly (the step's logs included): a signal sets `trainer.should_stop`, and
    Lightning answers a stop with one more validation (which RecurrentModule leaves empty when it is not on the
    schedule). Before any checkpoint is written the loggers are flushed, and the checkpoint records how many
    metrics.csv rows there were, so that a resumed log has each step once.

    The process then exits with 128 + the signal number (run_training's caller), without metrics.json: the run is
    not finished, and rerunning the command resumes it. A second Ctrl-C while stopping is ignored.

    This is the one handler of these signals while the run trains (it replaces Lightning's and submitit's). What
    they would have done with a time-limit signal (submitit: requeue the job, counting timeouts) is handed to them
    once last.ckpt is written and the loggers are closed (`hand_over`), so that the requeued job resumes at the
    step the signal stopped, not at the last validation.

    Under DDP the signal may reach one process only (SIGTERM to rank 0): a max all-reduce after every step makes
    all ranks stop after the same step; every rank then reaches the same validation end and calls save_checkpoint
    (rank 0 writes it); ranks > 0 then exit 0.
    """

    def __init__(self, path: Path, csv_path: Path):
        self.path, self.csv_path = path, csv_path
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._owners: dict[int, Any] = {}  # the handlers found at train start, for hand_over

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            print(f"\nreceived {signal.Signals(signum).name}: stopping after this step and writing {self.path}",
                  file=sys.stderr, flush=True)
        self.signum = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning has set its own SIGTERM handler (which would end the process with exit code 0): replace it
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)
        self._owners = dict(self._previous)

    def hand_over(self) -> None:
        """After the stop (checkpoint written, loggers closed): a time-limit signal goes to the handler it would have
        reached (submitit's requeues the job and exits, or raises when its timeouts are used up). Returns when
        there is none."""
        owner = self._owners.get(self.signum) if self.signum in TIME_LIMIT_SIGNALS else None
        if callable(owner):
            owner(self.signum, None)

    def _stop_requested(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Whether a signal arrived; under DDP a max all-reduce, so that all ranks stop after the same step."""
        signum = self.signum
        if trainer.world_size > 1:
            import torch

            flag = torch.tensor(signum or 0, device=pl_module.device)
            signum = int(trainer.strategy.reduce(flag, reduce_op="max")) or None
            self.signum = self.signum or signum
        return signum is not None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self._stop_requested(trainer, pl_module):
            trainer.should_stop = True  # Lightning validates once more, then leaves the loop: on_validation_end

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path)  # atomic (AtomicCheckpointIO), by rank 0; every rank calls it
        if self._stop_requested(trainer, pl_module):  # a signal during this validation: no further step
            trainer.should_stop = True

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:  # the CSV log reaches at least as far as any checkpoint a resume starts from
            logger.save()
        # and a resume keeps exactly these rows (rank 0 writes both the CSV and the checkpoint)
        checkpoint[CSV_ROWS] = csv_rows(self.csv_path) if trainer.is_global_zero else 0
        every = trainer.val_check_batch
        if trainer.validating and isinstance(every, int) and trainer.global_step % every:
            # A stop's validation is off the schedule, so on resume Lightning does not replay the end of that step
            # (as it does for a scheduled validation), and the step counter the loggers use would stay one behind.
            loop = checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]
            loop["_batches_that_stepped"] += 1

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
