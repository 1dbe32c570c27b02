"""The copy / memory task (Arjovsky et al. 2016): recall copy_len symbols after seq_len blanks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor


@register
@dataclass
class CopyTask(Task):
    """Copy / memory task (Arjovsky 2016): copy_len symbols of n_symbols, seq_len - 1 blanks, a delimiter, then
    copy_len blanks; the model must output the symbols in the last copy_len steps. Length seq_len + 2·copy_len."""

    name: str = "copy"
    order: ClassVar[int] = 20  # its place in TASKS (tables, error texts)
    copy_len: int = 10
    n_symbols: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.copy_len < 1:
            raise out_of_range("task.copy_len", self.copy_len, "an integer >= 1")
        if self.n_symbols < 2:
            raise out_of_range("task.n_symbols", self.n_symbols, "an integer >= 2")

    def spec(self) -> TaskSpec:
        # memoryless: blank for the first T + k steps (free), uniform over the symbols for the last k
        T, k, n = self.seq_len, self.copy_len, self.n_symbols
        total = T + 2 * k
        return TaskSpec(self.name, T, total, n + 2, n + 1, "classification", True, True, k * math.log(n) / total,
                        (T + k + k / n) / total)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_copy(seed, self.seq_len, n, self.copy_len, self.n_symbols)


def generate_copy(seed: int, seq_len: int, n: int, copy_len: int = 10, n_symbols: int = 8) -> tuple[Tensor, Tensor]:
    """Copy task: symbols 1..n_symbols, blank 0, delimiter n_symbols+1; the target repeats the symbols at the end."""
    import torch

    g = torch.Generator().manual_seed(seed)
    total = seq_len + 2 * copy_len
    symbols = torch.randint(1, n_symbols + 1, (n, copy_len), generator=g)
    x = torch.zeros(n, total, dtype=torch.long)
    x[:, :copy_len] = symbols
    x[:, seq_len + copy_len - 1] = n_symbols + 1  # the delimiter: "now write them out"
    y = torch.zeros(n, total, dtype=torch.long)
    y[:, -copy_len:] = symbols
    return x, y
