"""Where a run's files live, how they are named and written.

A run folder is `runs/<task>-T<seq_len>-<model>-<clip>-s<seed>/` (`run_name`; the Hydra default of `run_name=` and
dvc.yaml's outs spell the same rule, and a test checks they agree). Every file is written atomically (a temporary
name in the same folder, then a rename), so a killed writer never leaves half a file."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gradlab.core.errors import DataError, RunFolderBusy

_UMASK = os.umask(0)


os.umask(_UMASK)


def atomic_write_bytes(path: Path, blob: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a killed writer never leaves a partial file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # named by the file it was for, not by a folder or temporary name
        raise OSError(err.errno, err.strerror, str(path)) from err
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:  # a full disk: the write names no file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic JSON (sorted keys, so that reruns compare byte for byte); JSON has no NaN/inf: they are written null."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in data.items()}
    atomic_write_bytes(path, (json.dumps(clean, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON record; None when the file is not there (a run not made yet), DataError when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is corrupt ({type(err).__name__}: {err}); rerun the stage that writes it") from None


def run_name(task: str, seq_len: int, model: str, clip_tag: str, seed: int) -> str:
    """The folder name of a run: what makes it different from the other runs of a study."""
    return f"{task}-T{seq_len}-{model}-{clip_tag}-s{seed}"


@dataclass(frozen=True)
class Probed:
    """What a BPTT probe writes into a folder (the run folder during training, analysis/ after it)."""

    path: Path

    metrics = property(lambda self: self.path / "metrics.json")
    bptt = property(lambda self: self.path / "bptt.csv")
    figures = property(lambda self: self.path / "figures")
    wandb = property(lambda self: self.path / "wandb")
    lyapunov = property(lambda self: self.path / "lyapunov.csv")  # the analysis stage's spectra (init, trained)
    geometry = property(lambda self: self.path / "geometry.csv")  # the analysis stage's vectors against random ones


@dataclass(frozen=True)
class RunFolder(Probed):
    """runs/<run_name>/ of one training run. While the run is unfinished it holds last.ckpt (what a rerun resumes
    from); once finished, model.ckpt and metrics.json. run_info.json is kept apart from metrics.json so that
    reruns compare byte for byte."""

    @classmethod
    def of(cls, runs_dir: str | Path, name: str) -> RunFolder:
        return cls(Path(runs_dir) / name)

    name = property(lambda self: self.path.name)
    config = property(lambda self: self.path / "config.yaml")
    metrics_csv = property(lambda self: self.path / "metrics.csv")
    run_info = property(lambda self: self.path / "run_info.json")
    stream = property(lambda self: self.path / "stream.csv")  # a continual task's test streams (gradlab.probe.stream)
    last_ckpt = property(lambda self: self.path / "last.ckpt")
    final_ckpt = property(lambda self: self.path / "model.ckpt")
    analysis = property(lambda self: Probed(self.path / "analysis"))

    # the files a fresh start removes (the wandb runs stay: they are history)
    OUTPUTS = ("last.ckpt", "model.ckpt", "metrics.json", "metrics.csv", "bptt.csv", "run_info.json", "hparams.yaml",
               "stream.csv")
    DVC_OUTS = ("model.ckpt", "config.yaml", "wandb", "bptt.csv", "figures", "metrics.json", "metrics.csv")

    def status(self) -> str:
        """missing (never started), interrupted (a checkpoint to resume from), or the finished run's status."""
        record = read_json(self.metrics)
        if record is not None:
            return str(record.get("status"))
        return "interrupted" if self.last_ckpt.is_file() else "missing"

    def hold(self) -> IO[str]:
        """Claim the folder for this process: an exclusive lock on its .lock file, held until the returned file is
        closed or the process ends (a killed run leaves no stale lock). Two processes writing one folder, e.g. jobs
        of a parallel sweep that differ only in a key the run name does not show, would mix their files: the
        second stops with one line instead."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a")  # noqa: SIM115 -- held open for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RunFolderBusy(f"{self.path} is being written by another running process (e.g. another job of the "
                                f"same sweep with the same run name): give each run its own run_name=") from None
        return handle

    def clear(self) -> None:
        """A fresh start in a used folder: drop the old run's files."""
        for name in self.OUTPUTS:
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.figures, ignore_errors=True)
