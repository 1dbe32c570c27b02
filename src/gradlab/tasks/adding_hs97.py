"""Hochreiter & Schmidhuber 1997's adding problem (Experiment 4), as their paper describes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor
# Gers et al. 2000's continual embedded Reber grammar (reber_continual) registers itself in its own module


@register
@dataclass
class AddingHS97Task(Task):
    """Hochreiter & Schmidhuber's adding problem (1997, Experiment 4), as their paper describes it: values U[-1,1]
    and a marker channel; lengths drawn in [T, T + T/10]; one of the first ten pairs marked (X1; set to 0 when it is
    the very first pair), then one of the first T/2 - 1 still unmarked pairs (X2); marker -1 on the first and last
    pair otherwise. Target 0.5 + (X1 + X2)/4; a sequence is correct when |error| < 0.04.

    gradlab batches equal lengths: each sequence is left-padded with zero pairs to T + T//10 steps (the -1 marker
    says where it begins). The paper fed each sequence alone, online."""

    name: str = "adding_hs97"
    order: ClassVar[int] = 40  # its place in TASKS (tables, error texts)
    tolerance: float = 0.04
    solved_accuracy: float = 0.999  # on the test split (their test: 1 of 2560 sequences wrong at T=100)
    # their stop, on the training stream: the last stop_window sequences all correct and their average error below
    # stop_mean_error (we read "average training error" as the mean |error| of those sequences: the squared error
    # is below 0.04² = 0.0016 whenever all are correct, so only the absolute error makes the 0.01 bind)
    stop_window: int = 2000
    stop_mean_error: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 22:  # X2 among the first T/2 - 1 pairs, after X1 among the first ten
            raise out_of_range("task.seq_len", self.seq_len, "an integer >= 22 for adding_hs97")
        if not 0 < self.tolerance < 1:
            raise out_of_range("task.tolerance", self.tolerance, "a number in (0, 1)")
        if not 0 < self.solved_accuracy <= 1:
            raise out_of_range("task.solved_accuracy", self.solved_accuracy, "a number in (0, 1]")
        if self.stop_window < 1:
            raise out_of_range("task.stop_window", self.stop_window, "an integer >= 1")
        if not 0 < self.stop_mean_error:
            raise out_of_range("task.stop_mean_error", self.stop_mean_error, "a number > 0")

    def spec(self) -> TaskSpec:
        # the memoryless guess is the mean, 0.5. X1 is 0 when the first pair is marked (probability 1/10), else
        # U[-1,1]: Var X1 = 0.9/3, Var X2 = 1/3, and the MSE is (0.3 + 1/3)/16. Its accuracy P(|X1 + X2| < 4·tol).
        a = 4 * self.tolerance
        return TaskSpec(self.name, self.seq_len, self.seq_len + self.seq_len // 10, 2, 1, "regression", False, False,
                        (0.9 / 3 + 1 / 3) / 16, 0.9 * (a - a * a / 4) + 0.1 * a, self.tolerance,
                        self.solved_accuracy, (self.stop_window, self.stop_mean_error))

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_adding_hs97(seed, self.seq_len, n)


def _left_padded_lengths(g, seq_len: int, n: int, spread: int):
    """Per-sequence lengths in [seq_len, seq_len + spread] and each one's first step in a batch of seq_len + spread
    steps (left-padded: every sequence ends at the last step)."""
    import torch

    lengths = torch.randint(seq_len, seq_len + spread + 1, (n,), generator=g)
    return lengths, seq_len + spread - lengths


def generate_adding_hs97(seed: int, seq_len: int, n: int) -> tuple[Tensor, Tensor]:
    """Hochreiter & Schmidhuber 1997's adding problem (AddingHS97Task), left-padded to seq_len + seq_len // 10."""
    import torch

    g = torch.Generator().manual_seed(seed)
    total = seq_len + seq_len // 10
    lengths, start = _left_padded_lengths(g, seq_len, n, seq_len // 10)
    values = torch.rand(n, total, generator=g) * 2 - 1
    steps = torch.arange(total)
    values = values * (steps >= start[:, None])  # padding: zero pairs
    first = torch.randint(0, 10, (n,), generator=g)
    r = torch.randint(0, seq_len // 2 - 1, (n,), generator=g)  # one of the first T/2 - 1 pairs still unmarked
    second = r + (r >= first).long()
    rows = torch.arange(n)
    marker = torch.zeros(n, total)
    marker[rows, start] = -1.0
    marker[rows, total - 1] = -1.0
    marker[rows, start + first] = 1.0
    marker[rows, start + second] = 1.0
    values[rows, start] = torch.where(first == 0, 0.0, values[rows, start])  # the first pair marked: X1 = 0
    x1, x2 = values[rows, start + first], values[rows, start + second]
    return torch.stack([values, marker], dim=-1), (0.5 + (x1 + x2) / 4).unsqueeze(-1)
