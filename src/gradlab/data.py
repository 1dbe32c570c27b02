"""LightningDataModule over the generated data files of one (task, seq_len)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

from gradlab.tasks import SPLITS, load_split


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

    def __init__(self, root: str | Path, task: Any, batch_size: int, seed: int, eval_batch_size: int = 1000):
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
