"""Gers, Schmidhuber & Cummins 2000's continual adding stream: marked values in a stream never reset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.adding import generate_adding
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor
# Gers et al. 2000's continual embedded Reber grammar (reber_continual) registers itself in its own module


@register
@dataclass
class ContinualAddingTask(Task):
    """A continual stream (Gers, Schmidhuber & Cummins 2000): n_segments adding problems of T steps each, fed as one
    sequence with no state reset between them. Channels: value U[0,1], marker (one in each half of every segment),
    and a start flag on each segment's first step; at each segment's last step the target is the sum of that
    segment's two marked values (no target elsewhere). An LSTM can forget at the flag; an LSTM without forget gate
    cannot, and its cell state keeps growing along the stream. The test split may be a longer stream
    (test_segments)."""

    name: str = "adding_continual"
    order: ClassVar[int] = 70  # its place in TASKS (tables, error texts)
    seq_len: int = 20
    n_segments: int = 10
    # the test stream's segments (null: n_segments): a longer stream than training saw, as a continual input
    # stream has no end; the NFG's cell state keeps growing past anything it trained on
    test_segments: int | None = None
    n_marked: int = 2  # marked values per segment: 2 (an adding problem: one in each half) up to seq_len

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_segments < 1:
            raise out_of_range("task.n_segments", self.n_segments, "an integer >= 1")
        if not 1 <= self.n_marked <= self.seq_len:
            raise out_of_range("task.n_marked", self.n_marked, f"an integer in [1, task.seq_len={self.seq_len}]")
        if self.test_segments is not None and self.test_segments < 1:
            raise out_of_range("task.test_segments", self.test_segments, "an integer >= 1 or null")

    def for_split(self, split: str) -> Task:
        if split != "test" or self.test_segments is None:
            return self
        return ContinualAddingTask(seq_len=self.seq_len, n_segments=self.test_segments, n_marked=self.n_marked)

    def spec(self) -> TaskSpec:
        # predicting the mean, n_marked/2, at every segment end: MSE n_marked/12 (1/6 for an adding problem)
        return TaskSpec(self.name, self.seq_len, self.seq_len * self.n_segments, 3, 1, "regression", True, False,
                        self.n_marked / 12, None)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_adding_continual(seed, self.seq_len, n, self.n_segments, self.n_marked)


def generate_adding_continual(seed: int, seq_len: int, n: int, n_segments: int, n_marked: int = 2
                              ) -> tuple[Tensor, Tensor]:
    """The continual adding stream (ContinualAddingTask): y is NaN except at each segment's last step. Each segment
    is an adding problem (n_marked=2: one marker in each half) or has n_marked markers at distinct random steps."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x, sums = [], []
    for _ in range(n_segments):
        if n_marked == 2:
            seg_x, seg_y = generate_adding(int(torch.randint(0, 2**62, (1,), generator=g)), seq_len, n)
        else:
            values = torch.rand(n, seq_len, generator=g)
            marked = torch.rand(n, seq_len, generator=g).argsort(dim=1)[:, :n_marked]
            marker = torch.zeros(n, seq_len).scatter_(1, marked, 1.0)
            seg_x, seg_y = torch.stack([values, marker], dim=-1), (values * marker).sum(1, keepdim=True)
        flag = torch.zeros(n, seq_len, 1)
        flag[:, 0] = 1.0
        x.append(torch.cat([seg_x, flag], dim=-1))
        sums.append(seg_y)
    y = torch.full((n, seq_len * n_segments, 1), float("nan"))
    y[:, seq_len - 1::seq_len] = torch.stack(sums, dim=1)
    return torch.cat(x, dim=1), y
