"""Synthetic long-range-dependency tasks: pure generators, their memoryless baselines, and validated storage.

Every generator is a pure function of (seed, seq_len, n) -> (inputs, targets); `save_split`/`load_split` keep the
tensors under data/<task>/T<seq_len>/ with a manifest (shapes, dtypes, seed, sha256) that loading checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SPLITS = ("train", "val", "test")
# Offsets so that the three splits of one data seed never share a random stream.
_SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_006}
_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(RuntimeError):
    """A data file that is missing, corrupt, or does not match the config; the message says which and why."""


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about a task: input encoding, output head and loss."""

    name: str
    seq_len: int  # T, the dependency length the config names
    total_len: int  # length of the input sequence actually fed to the model
    input_size: int  # features per step (tokens are one-hot encoded to this many)
    output_size: int  # regression: 1; classification: number of classes
    kind: str  # "regression" | "classification"
    per_step: bool  # copy: a prediction at every step; otherwise only at the last step
    tokens: bool  # inputs are integer tokens (one-hot encoded by the model) rather than floats
    baseline_loss: float  # loss of the best memoryless guess (science.md section 3)
    baseline_accuracy: float | None  # accuracy of that guess, for classification tasks


def task_spec(task: Any) -> TaskSpec:
    """The TaskSpec of a task config (a DictConfig or anything with the same attributes)."""
    T = int(task.seq_len)
    if task.name == "adding":
        # Predicting the mean, 1, has MSE Var(X1 + X2) = 2/12 = 1/6.
        return TaskSpec("adding", T, T, 2, 1, "regression", False, False, 1 / 6, None)
    if task.name == "copy":
        n_sym, k = int(task.n_symbols), int(task.copy_len)
        # Memoryless: predict blank for the first T+k steps (free), uniform over symbols for the last k.
        total = T + 2 * k
        return TaskSpec("copy", T, total, n_sym + 2, n_sym + 1, "classification", True, True,
                        k * math.log(n_sym) / total, (T + k + k / n_sym) / total)
    if task.name == "first_token":
        K = int(task.n_classes)
        return TaskSpec("first_token", T, T, K + int(task.n_distractors), K, "classification", False, True,
                        math.log(K), 1 / K)
    raise ValueError(f"task.name={task.name!r} is not one of adding, copy, first_token")


def generate_adding(seed: int, seq_len: int, n: int) -> tuple[Tensor, Tensor]:
    """Adding problem: x[..., 0] ~ U[0,1], x[..., 1] marks one step in each half; y = sum of the marked values."""
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, seq_len, generator=g)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, seq_len, (n,), generator=g)
    marker = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = torch.stack([values, marker], dim=-1)
    y = values[rows, first] + values[rows, second]
    return x, y.unsqueeze(-1)


def generate_copy(seed: int, seq_len: int, n: int, copy_len: int = 10, n_symbols: int = 8) -> tuple[Tensor, Tensor]:
    """Copy task: symbols 1..n_symbols, blank 0, delimiter n_symbols+1; the target repeats the symbols at the end."""
    g = torch.Generator().manual_seed(seed)
    total = seq_len + 2 * copy_len
    symbols = torch.randint(1, n_symbols + 1, (n, copy_len), generator=g)
    x = torch.zeros(n, total, dtype=torch.long)
    x[:, :copy_len] = symbols
    x[:, seq_len + copy_len - 1] = n_symbols + 1  # the delimiter: "now write them out"
    y = torch.zeros(n, total, dtype=torch.long)
    y[:, -copy_len:] = symbols
    return x, y


def generate_first_token(seed: int, seq_len: int, n: int, n_classes: int = 4, n_distractors: int = 4
                         ) -> tuple[Tensor, Tensor]:
    """First-token classification: class token at t=0 (0..K-1), distractor tokens (K..K+n_distractors-1) after."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    x = torch.randint(n_classes, n_classes + n_distractors, (n, seq_len), generator=g)
    x[:, 0] = y
    return x, y


def generate(task: Any, seed: int, n: int) -> tuple[Tensor, Tensor]:
    """Dispatch on the task config."""
    if task.name == "adding":
        return generate_adding(seed, task.seq_len, n)
    if task.name == "copy":
        return generate_copy(seed, task.seq_len, n, task.copy_len, task.n_symbols)
    if task.name == "first_token":
        return generate_first_token(seed, task.seq_len, n, task.n_classes, task.n_distractors)
    raise ValueError(f"task.name={task.name!r} is not one of adding, copy, first_token")


def empirical_baseline(spec: TaskSpec, y_train: Tensor, y_eval: Tensor) -> float:
    """Loss on y_eval of the best input-independent guess fitted on y_train (checks the analytic baseline)."""
    if spec.kind == "regression":
        return float(((y_eval - y_train.mean()) ** 2).mean())
    n_classes = spec.output_size
    if spec.per_step:  # one class distribution per position
        counts = torch.stack([torch.bincount(col, minlength=n_classes) for col in y_train.T]).double() + 1e-12
        logp = (counts / counts.sum(1, keepdim=True)).log()  # (T, C)
        return float(-logp.gather(1, y_eval.T).mean())
    counts = torch.bincount(y_train, minlength=n_classes).double() + 1e-12
    logp = (counts / counts.sum()).log()
    return float(-logp[y_eval].mean())


# ------------------------------------------------------------------------------------------------ storage


def data_dir(root: str | Path, task: Any) -> Path:
    """data/<task>/T<seq_len>/ — fixed, named by what it holds."""
    return Path(root) / task.name / f"T{task.seq_len}"


def task_params(task: Any) -> dict[str, Any]:
    """The task config as plain data, for the manifest."""
    keys = ("name", "seq_len", "copy_len", "n_symbols", "n_classes", "n_distractors")
    return {k: task[k] for k in keys if k in task}


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def atomic_write_bytes(path: Path, blob: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a killed writer never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dataset(root: str | Path, task: Any, sizes: dict[str, int], seed: int) -> Path:
    """Generate and save train/val/test of a task; the manifest is written last, so it marks a complete set."""
    out = data_dir(root, task)
    manifest: dict[str, Any] = {"task": task_params(task), "seed": seed, "splits": {}}
    for split in SPLITS:
        x, y = generate(task, seed + _SPLIT_OFFSET[split], sizes[split])
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


def read_manifest(root: str | Path, task: Any) -> dict[str, Any]:
    """The manifest of data/<task>/T<seq_len>/, checked against the task config."""
    path = data_dir(root, task) / "manifest.json"
    if not path.exists():
        raise DataError(f"no data set at {path.parent}: run `python pipelines/generate.py task={task.name} "
                        f"task.seq_len={task.seq_len}` (or `dvc repro`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete {path.parent} and regenerate it") from err
    if manifest.get("task") != task_params(task):
        raise DataError(f"{path} was made for task {manifest.get('task')}, not {task_params(task)}; "
                        f"delete {path.parent} and regenerate it")
    return manifest


def load_split(root: str | Path, task: Any, split: str) -> tuple[Tensor, Tensor]:
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
    spec = task_spec(task)
    if x.shape[1] != spec.total_len:
        raise DataError(f"{path}: sequences have length {x.shape[1]}, task needs {spec.total_len}")
    if x.dtype == torch.uint8:
        x = x.long()
    if y.dtype == torch.uint8:
        y = y.long()
    return x, y


def ensure_dataset(root: str | Path, task: Any, sizes: dict[str, int], seed: int) -> tuple[Path, bool]:
    """Use data/<task>/T<seq_len>/ when it matches (task, sizes, seed); generate it when absent.

    Returns (folder, generated). A folder made for other sizes or another seed is an error, not overwritten.
    """
    out = data_dir(root, task)
    if not (out / "manifest.json").exists():
        return write_dataset(root, task, sizes, seed), True
    manifest = read_manifest(root, task)
    have = {s: manifest["splits"][s]["n"] for s in SPLITS}
    if have != sizes or manifest["seed"] != seed:
        raise DataError(f"{out} holds sizes {have} with data seed {manifest['seed']}, but the config asks for "
                        f"{sizes} with seed {seed}; regenerate it (python pipelines/generate.py ...) or use "
                        "data_dir=<another folder>")
    return out, False
