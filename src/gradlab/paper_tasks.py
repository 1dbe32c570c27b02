"""The papers' task variants: tasks that exist only to follow a published setup (conf/paper/<name>.yaml), as the
paper describes it. Hochreiter & Schmidhuber 1997's adding problem, Pascanu et al. 2013's addition and temporal-order
tasks, and Gers et al. 2000's continual adding stream.

Each is a Task (gradlab.tasks) and registers itself in `gradlab.tasks.TASKS`, after the general tasks. gradlab.tasks
imports this module last and serves its names, so `from gradlab.tasks import X` and the registry are the same
whichever of the two modules is imported first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gradlab.errors import out_of_range
from gradlab.tasks import TASKS, Task, TaskSpec, generate_adding

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class AddingHS97Task(Task):
    """Hochreiter & Schmidhuber's adding problem (1997, Experiment 4), as their paper describes it: values U[-1,1]
    and a marker channel; lengths drawn in [T, T + T/10]; one of the first ten pairs marked (X1; set to 0 when it is
    the very first pair), then one of the first T/2 - 1 still unmarked pairs (X2); marker -1 on the first and last
    pair otherwise. Target 0.5 + (X1 + X2)/4; a sequence is correct when |error| < 0.04.

    gradlab batches equal lengths: each sequence is left-padded with zero pairs to T + T//10 steps (the -1 marker
    says where it begins). The paper fed each sequence alone, online."""

    name: str = "adding_hs97"
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


@dataclass
class AdditionPascanuTask(Task):
    """Pascanu, Mikolov & Bengio's addition task (2013; their code's addition.py): a marker channel and values
    U[0,1]; the first marker in the first 10% of the sequence, the second in [10%, 50%); the target is the MEAN of
    the two marked values; a sequence is wrong when its squared error exceeds 0.04 (|error| >= 0.2). Their code
    draws one length in [T, T + T//10) per batch; gradlab draws it per sequence and left-pads with zero pairs to
    T + T//10 - 1 steps."""

    name: str = "addition_pascanu"
    tolerance: float = 0.2  # squared error 0.04
    solved_accuracy: float = 0.99  # their code's stop: validation error below minerr = 1%

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 20:
            raise out_of_range("task.seq_len", self.seq_len, "an integer >= 20 for addition_pascanu")

    def spec(self) -> TaskSpec:
        # memoryless guess 0.5: MSE Var((X1 + X2)/2) = 1/24; accuracy P(|X1 + X2 - 1| < 2·tol), triangular
        a = 2 * self.tolerance
        return TaskSpec(self.name, self.seq_len, self.seq_len + self.seq_len // 10 - 1, 2, 1, "regression", False,
                        False, 1 / 24, 2 * a - a * a, self.tolerance, self.solved_accuracy)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_addition_pascanu(seed, self.seq_len, n)


@dataclass
class TemporalOrderTask(Task):
    """The temporal-order task (Hochreiter & Schmidhuber 1997; Pascanu et al. 2013's tempOrder.py): six symbols;
    A or B at a random position in [10%, 20%) of the sequence and again in [50%, 60%), distractors c-f elsewhere;
    the class is the order seen, AA, AB, BA or BB."""

    name: str = "temporal_order"
    solved_accuracy: float = 0.99  # Pascanu et al.'s stop: validation error below 1%

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 10:
            raise out_of_range("task.seq_len", self.seq_len, "an integer >= 10 for temporal_order")

    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.seq_len, self.seq_len, 6, 4, "classification", False, True, math.log(4),
                        1 / 4, None, self.solved_accuracy)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_temporal_order(seed, self.seq_len, n)


@dataclass
class ContinualAddingTask(Task):
    """A continual stream (Gers, Schmidhuber & Cummins 2000): n_segments adding problems of T steps each, fed as one
    sequence with no state reset between them. Channels: value U[0,1], marker (one in each half of every segment),
    and a start flag on each segment's first step; at each segment's last step the target is the sum of that
    segment's two marked values (no target elsewhere). An LSTM can forget at the flag; an LSTM without forget gate
    cannot, and its cell state keeps growing along the stream. The test split may be a longer stream
    (test_segments)."""

    name: str = "adding_continual"
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


TASKS.update({cls.name: cls for cls in (AddingHS97Task, AdditionPascanuTask, TemporalOrderTask, ContinualAddingTask)})

# Gers et al. 2000's continual embedded Reber grammar (reber_continual) registers itself in its own module
from gradlab import reber  # noqa: E402, F401

# ------------------------------------------------------------------------------------------------ generators


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


def generate_addition_pascanu(seed: int, seq_len: int, n: int) -> tuple[Tensor, Tensor]:
    """Pascanu et al. 2013's addition task (AdditionPascanuTask): markers at [0, 10%) and [10%, 50%) of each
    sequence's own length, values U[0,1], target their mean; left-padded with zero pairs to T + T//10 - 1 steps."""
    import torch

    g = torch.Generator().manual_seed(seed)
    total = seq_len + seq_len // 10 - 1
    lengths, start = _left_padded_lengths(g, seq_len, n, seq_len // 10 - 1)  # their randint(0.1 T): [T, 1.1T)
    values = torch.rand(n, total, generator=g) * (torch.arange(total) >= start[:, None])
    tenth = (lengths * 0.1).long()
    u0, u1 = torch.rand(n, generator=g), torch.rand(n, generator=g)
    first = (u0 * tenth).long()  # randint(int(0.1 l)) per sequence
    second = (u1 * (lengths * 0.4).long()).long() + tenth  # randint(int(0.4 l)) + int(0.1 l)
    rows = torch.arange(n)
    marker = torch.zeros(n, total)
    marker[rows, start + first] = 1.0
    marker[rows, start + second] = 1.0
    y = (values[rows, start + first] + values[rows, start + second]) / 2
    return torch.stack([marker, values], dim=-1), y.unsqueeze(-1)  # their channel order: marker, value


def generate_temporal_order(seed: int, seq_len: int, n: int) -> tuple[Tensor, Tensor]:
    """Temporal order (TemporalOrderTask): tokens 0 = A, 1 = B, 2..5 distractors; class v0 + 2·v1."""
    import torch

    g = torch.Generator().manual_seed(seed)
    tenth = int(seq_len * 0.1)
    x = torch.randint(2, 6, (n, seq_len), generator=g)
    p0 = torch.randint(0, tenth, (n,), generator=g) + tenth
    p1 = torch.randint(0, tenth, (n,), generator=g) + int(seq_len * 0.5)
    v0, v1 = torch.randint(0, 2, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    rows = torch.arange(n)
    x[rows, p0] = v0
    x[rows, p1] = v1
    return x, v0 + 2 * v1


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
