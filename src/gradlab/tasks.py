"""Synthetic long-range-dependency tasks: each a config dataclass that knows its spec and generates its data.

A task is a pure function of (seed, n) -> (inputs, targets) given its fields; `spec()` says what a model needs
(input/output sizes, the sequence length fed, the loss of the best memoryless guess, docs/theory.md). The
`task` config group's files (conf/task/<name>.yaml) name these classes as their schema.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

from gradlab.errors import ConfigError, out_of_range

if TYPE_CHECKING:
    from torch import Tensor

SOLVED_FRACTION = 0.01  # "solved" by default: loss below 1% of the memoryless baseline (docs/theory.md)


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
    baseline_loss: float  # loss of the best memoryless guess (docs/theory.md)
    baseline_accuracy: float | None  # accuracy of that guess, for classification tasks
    # regression tasks judged per sequence (Hochreiter & Schmidhuber 1997, Pascanu et al. 2013): a prediction is
    # correct when |error| < tolerance, and `test_acc`/`val/acc` are the fraction correct
    tolerance: float | None = None
    # what "solved" means: accuracy >= solved_accuracy where the paper says so; None: loss below 1% of the
    # memoryless baseline (docs/theory.md)
    solved_accuracy: float | None = None

    def solved(self, loss: float, acc: float | None) -> bool:
        if self.solved_accuracy is not None:
            return acc is not None and acc >= self.solved_accuracy
        return loss < SOLVED_FRACTION * self.baseline_loss


@dataclass
class Task:
    """The `task` config group: a name, the dependency length T, and the task's own fields (subclasses)."""

    name: str = MISSING
    seq_len: int = 100

    def __post_init__(self) -> None:
        if self.seq_len < 2:
            raise out_of_range("task.seq_len", self.seq_len, "an integer >= 2")

    def spec(self) -> TaskSpec:
        raise NotImplementedError

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The task as plain data (the data set's manifest records it)."""
        return asdict(self)

    def for_split(self, split: str) -> Task:
        """The task a split's sequences come from: itself, except where a task tests on other lengths."""
        return self


@dataclass
class AddingTask(Task):
    """Adding problem (Le 2015 / Arjovsky 2016): values U[0,1] and a marker channel with one 1 in each half; the
    target is the sum of the two marked values."""

    name: str = "adding"

    def spec(self) -> TaskSpec:
        # predicting the mean, 1, has MSE Var(X1 + X2) = 2/12 = 1/6
        return TaskSpec(self.name, self.seq_len, self.seq_len, 2, 1, "regression", False, False, 1 / 6, None)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_adding(seed, self.seq_len, n)


@dataclass
class CopyTask(Task):
    """Copy / memory task (Arjovsky 2016): copy_len symbols of n_symbols, seq_len - 1 blanks, a delimiter, then
    copy_len blanks; the model must output the symbols in the last copy_len steps. Length seq_len + 2·copy_len."""

    name: str = "copy"
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


@dataclass
class FirstTokenTask(Task):
    """First-token classification: the class token (one of n_classes) at t=0, random distractor tokens after it;
    the model must name the class at the last step."""

    name: str = "first_token"
    n_classes: int = 4
    n_distractors: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_classes < 2:
            raise out_of_range("task.n_classes", self.n_classes, "an integer >= 2")
        if self.n_distractors < 1:
            raise out_of_range("task.n_distractors", self.n_distractors, "an integer >= 1")

    def spec(self) -> TaskSpec:
        K = self.n_classes
        return TaskSpec(self.name, self.seq_len, self.seq_len, K + self.n_distractors, K, "classification", False,
                        True, math.log(K), 1 / K)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_first_token(seed, self.seq_len, n, self.n_classes, self.n_distractors)


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
    solved_accuracy: float = 0.999  # their stop: the last 2000 training sequences all correct; their test: 1/2560 wrong

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 22:  # X2 among the first T/2 - 1 pairs, after X1 among the first ten
            raise out_of_range("task.seq_len", self.seq_len, "an integer >= 22 for adding_hs97")
        if not 0 < self.tolerance < 1:
            raise out_of_range("task.tolerance", self.tolerance, "a number in (0, 1)")
        if not 0 < self.solved_accuracy <= 1:
            raise out_of_range("task.solved_accuracy", self.solved_accuracy, "a number in (0, 1]")

    def spec(self) -> TaskSpec:
        # the memoryless guess is the mean, 0.5. X1 is 0 when the first pair is marked (probability 1/10), else
        # U[-1,1]: Var X1 = 0.9/3, Var X2 = 1/3, and the MSE is (0.3 + 1/3)/16. Its accuracy P(|X1 + X2| < 4·tol).
        a = 4 * self.tolerance
        return TaskSpec(self.name, self.seq_len, self.seq_len + self.seq_len // 10, 2, 1, "regression", False, False,
                        (0.9 / 3 + 1 / 3) / 16, 0.9 * (a - a * a / 4) + 0.1 * a, self.tolerance,
                        self.solved_accuracy)

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


# a dataclass's default is its class attribute: AddingTask.name == "adding"
TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (AddingTask, CopyTask, FirstTokenTask, AddingHS97Task,
                                                          AdditionPascanuTask, TemporalOrderTask, ContinualAddingTask)}


def task_from(params: dict[str, Any]) -> Task:
    """A task from plain data (a saved config, a manifest); ConfigError naming the choices for an unknown name."""
    cls = TASKS.get(params.get("name"))
    if cls is None:
        raise ConfigError(f"task.name={params.get('name')!r} is not a valid choice; choose one of: "
                          f"{', '.join(TASKS)}")
    return cls(**params)


# ------------------------------------------------------------------------------------------------ generators


def generate_adding(seed: int, seq_len: int, n: int) -> tuple[Tensor, Tensor]:
    """Adding problem: x[..., 0] ~ U[0,1], x[..., 1] marks one step in each half; y = sum of the marked values."""
    import torch

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


def generate_first_token(seed: int, seq_len: int, n: int, n_classes: int = 4, n_distractors: int = 4
                         ) -> tuple[Tensor, Tensor]:
    """First-token classification: class token at t=0 (0..K-1), distractor tokens (K..K+n_distractors-1) after."""
    import torch

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    x = torch.randint(n_classes, n_classes + n_distractors, (n, seq_len), generator=g)
    x[:, 0] = y
    return x, y


def empirical_baseline(spec: TaskSpec, y_train: Tensor, y_eval: Tensor) -> float:
    """Loss on y_eval of the best input-independent guess fitted on y_train (checks the analytic baseline)."""
    import torch

    if spec.kind == "regression":  # NaN: no target at that step (the continual stream)
        return float(((y_eval - y_train.nanmean()) ** 2).nanmean())
    n_classes = spec.output_size
    if spec.per_step:  # one class distribution per position
        counts = torch.stack([torch.bincount(col, minlength=n_classes) for col in y_train.T]).double() + 1e-12
        logp = (counts / counts.sum(1, keepdim=True)).log()  # (T, C)
        return float(-logp.gather(1, y_eval.T).mean())
    counts = torch.bincount(y_train, minlength=n_classes).double() + 1e-12
    logp = (counts / counts.sum()).log()
    return float(-logp[y_eval].mean())
