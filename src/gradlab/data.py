"""LightningDataModule over the generated data files of one (task, seq_len)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from gradlab.tasks import SPLITS, load_split


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

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        ds = self.splits[split]
        if shuffle:
            sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(self.seed))
        else:
            sampler = SequentialSampler(ds)
        batches = BatchSampler(sampler, min(batch_size, len(ds)), drop_last=shuffle)
        return DataLoader(ds, sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)
