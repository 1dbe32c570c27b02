"""The generated data sets on disk (data/<task>/T<seq_len>/ with a checked manifest) and the LightningDataModule
that serves them: training batches as a pure function of (seed, step), val/test whole.

Each split is saved with a manifest (shapes, dtypes, seed, sha256) that loading checks, so a corrupt, truncated or
mismatched file is a one-line DataError, never a silent wrong result."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

from gradlab.core.errors import DataError
from gradlab.core.runfolder import atomic_write_bytes
from gradlab.tasks import Task

SPLITS = ("train", "val", "test")


# Offsets so that the three splits of one data seed never share a random stream.
_SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_006}


def data_dir(root: str | Path, task: Task) -> Path:
    """data/<task>/T<seq_len>/ — fixed, named by what it holds."""
    return Path(root) / task.name / f"T{task.seq_len}"


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def write_dataset(root: str | Path, task: Task, sizes: dict[str, int], seed: int) -> Path:
    """Generate and save train/val/test of a task; the manifest is written last, so it marks a complete set."""
    out = data_dir(root, task)
    manifest: dict[str, Any] = {"task": task.params(), "seed": seed, "splits": {}}
    for split in SPLITS:
        x, y = task.for_split(split).generate(seed + _SPLIT_OFFSET[split], sizes[split])
        if x.dtype == torch.long:  # tokens are small: store them compactly
            x = x.to(torch.uint8)
        if y.dtype == torch.long:
            y = y.to(torch.uint8)
        buf = io.BytesIO()
        torch.save({"x": x, "y": y}, buf)
        blob = buf.getvalue()
        atomic_write_bytes(out / f"{split}.pt", blob)
        manifest["splits"][split] = {
            "file": f"{split}.pt", "n": sizes[split], "sha256": _sha256(blob),
            "x_shape": list(x.shape), "x_dtype": str(x.dtype), "y_shape": list(y.shape), "y_dtype": str(y.dtype),
        }
    atomic_write_bytes(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    return out


def read_manifest(root: str | Path, task: Task) -> dict[str, Any]:
    """The manifest of data/<task>/T<seq_len>/, checked against the task config."""
    path = data_dir(root, task) / "manifest.json"
    if not path.exists():
        raise DataError(f"no data set at {path.parent}: run `python pipelines/generate.py task={task.name} "
                        f"task.seq_len={task.seq_len}` (or `dvc repro`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete {path.parent} and regenerate it") from err
    if manifest.get("task") != task.params():
        raise DataError(f"{path} was made for task {manifest.get('task')}, not {task.params()}; "
                        f"delete {path.parent} and regenerate it")
    return manifest


def load_split(root: str | Path, task: Task, split: str) -> tuple[Tensor, Tensor]:
    """Load one split, checking checksum, shapes and dtypes against the manifest; DataError if anything is off."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    manifest = read_manifest(root, task)
    entry = manifest["splits"][split]
    path = data_dir(root, task) / entry["file"]
    if not path.exists():
        raise DataError(f"{path} is missing; delete {path.parent} and regenerate it")
    blob = path.read_bytes()
    if _sha256(blob) != entry["sha256"]:
        raise DataError(f"{path} is corrupt (sha256 does not match its manifest); delete {path.parent} "
                        "and regenerate it")
    data = torch.load(io.BytesIO(blob), weights_only=True)
    x, y = data["x"], data["y"]
    for name, t in (("x", x), ("y", y)):
        if list(t.shape) != entry[f"{name}_shape"] or str(t.dtype) != entry[f"{name}_dtype"]:
            raise DataError(f"{path}: {name} has shape {list(t.shape)} {t.dtype}, manifest says "
                            f"{entry[f'{name}_shape']} {entry[f'{name}_dtype']}")
    spec = task.for_split(split).spec()
    if x.shape[1] != spec.total_len:
        raise DataError(f"{path}: sequences have length {x.shape[1]}, task needs {spec.total_len}")
    if x.dtype == torch.uint8:
        x = x.long()
    if y.dtype == torch.uint8:
        y = y.long()
    return x, y


def ensure_dataset(root: str | Path, task: Task, sizes: dict[str, int], seed: int) -> tuple[Path, bool]:
    """Use data/<task>/T<seq_len>/ when it matches (task, sizes, seed); generate it when absent.

    Returns (folder, generated). A folder made for other sizes or another seed is an error, not overwritten.
    """
    out = data_dir(root, task)
    if not (out / "manifest.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.parent / f".{out.name}.lock", "w") as lock:  # runs side by side (seeds) generate it once
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / "manifest.json").exists():
                return write_dataset(root, task, sizes, seed), True
    manifest = read_manifest(root, task)
    have = {s: manifest["splits"][s]["n"] for s in SPLITS}
    if have != sizes or manifest["seed"] != seed:
        raise DataError(f"{out} holds sizes {have} with data seed {manifest['seed']}, but the config asks for "
                        f"{sizes} with seed {seed}; regenerate it (python pipelines/generate.py ...) or use "
                        "data_dir=<another folder>")
    return out, False


class StepBatches:
    """Index batches for optimizer steps start, start+1, ...: epoch e is a permutation seeded by (seed, e), cut
    into n // batch_size full batches. A pure function of (seed, step): resuming at step k needs no saved state.

    Under DDP with `world_size` processes, batch_size is the global batch and process `rank` takes its rank-th
    contiguous 1/world_size of every batch: together the processes see exactly the single-process batch."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.start = n, min(batch_size, n), seed, start
        self.per_epoch = n // self.batch_size
        if self.batch_size % world_size:
            raise ValueError(f"batch size {self.batch_size} does not split over {world_size} processes")
        share = self.batch_size // world_size
        self.shard = slice(rank * share, (rank + 1) * share)

    def __iter__(self):
        step = self.start
        while True:
            epoch, k = divmod(step, self.per_epoch)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for i in range(k, self.per_epoch):
                yield perm[i * self.batch_size:(i + 1) * self.batch_size][self.shard]
            step = (epoch + 1) * self.per_epoch


class SequenceData(pl.LightningDataModule):
    """Holds the three splits in memory; batches are drawn by index (one gather per batch, no per-item collate)."""

    def __init__(self, root: str | Path, task: Task, batch_size: int, seed: int, eval_batch_size: int = 1000):
        super().__init__()
        self.root, self.task, self.batch_size, self.seed = root, task, batch_size, seed
        self.eval_batch_size = eval_batch_size
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = {s: TensorDataset(*load_split(self.root, self.task, s)) for s in SPLITS}

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        ds = self.splits[split]
        batches = BatchSampler(SequentialSampler(ds), min(batch_size, len(ds)), drop_last=False)
        return DataLoader(ds, sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        """Endless batches; batch k depends only on (seed, k), so a resumed run sees the batches it would have."""
        t = self.trainer
        start, rank, world = (t.global_step, t.global_rank, t.world_size) if t is not None else (0, 0, 1)
        sampler = StepBatches(len(self.splits["train"]), self.batch_size, self.seed, start, rank, world)
        return DataLoader(self.splits["train"], sampler=sampler, batch_size=None)

    # Validation and test: every process evaluates the whole split (the trainer runs with use_distributed_sampler
    # off), so val/* and test/* are exact and the same on every rank; the splits are small.
    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)
