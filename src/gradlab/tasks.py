"""Synthetic long-range-dependency tasks: each a config dataclass that knows its spec and generates its data.

A task is a pure function of (seed, n) -> (inputs, targets) given its fields; `spec()` says what a model needs
(input/output sizes, the sequence length fed, the loss of the best memoryless guess, docs/theory.md). The
`task` config group's files (conf/task/<name>.yaml) name these classes as their schema. The tasks that exist only
for a published setup (adding_hs97, addition_pascanu, temporal_order, adding_continual) are in gradlab.paper_tasks;
they are in TASKS, and importable from here, all the same.
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
    output_size: int  # regression: 1; classification: number of classes; multilabel: number of units
    kind: str  # "regression" | "classification" | "multilabel" (a 0/1 target per unit: BCE; gradlab.reber)
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
    # a rule on the training stream instead of validation (Hochreiter & Schmidhuber 1997's stop): (window, mean):
    # solved when each of the last `window` training sequences is correct and their mean |error| is below `mean`
    stream_rule: tuple[int, float] | None = None
    # a continual stream (gradlab.reber): the test split's sequences are streams never reset; the run writes the
    # errors, loss and ‖c_t‖ against stream position (gradlab.stream: runs/<run>/stream.csv)
    continual: bool = False

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


# a dataclass's default is its class attribute: AddingTask.name == "adding"
# (gradlab.paper_tasks adds the papers' variants after these, imported at the bottom of this module)
TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (AddingTask, CopyTask, FirstTokenTask)}


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
    if spec.kind == "multilabel":  # each unit's frequency of being on; BCE, mean over units and steps
        def freq(y: Tensor) -> Tensor:  # per unit, without a float copy of y
            y = y.reshape(-1, spec.output_size)
            return y.sum(0).double() / len(y)

        p, q = freq(y_train).clamp(1e-12, 1 - 1e-12), freq(y_eval)
        return float(-(q * p.log() + (1 - q) * (1 - p).log()).mean())
    n_classes = spec.output_size
    if spec.per_step:  # one class distribution per position
        counts = torch.stack([torch.bincount(col, minlength=n_classes) for col in y_train.T]).double() + 1e-12
        logp = (counts / counts.sum(1, keepdim=True)).log()  # (T, C)
        return float(-logp.gather(1, y_eval.T).mean())
    counts = torch.bincount(y_train, minlength=n_classes).double() + 1e-12
    logp = (counts / counts.sum()).log()
    return float(-logp[y_eval].mean())


# ------------------------------------------------------------------------------------------ the papers' variants

# gradlab.paper_tasks subclasses Task and registers its tasks in TASKS, so it imports this module: it is imported
# last, and its public names are served from here (PEP 562), which works whichever module is imported first.
_PAPER_NAMES = frozenset({"AddingHS97Task", "AdditionPascanuTask", "TemporalOrderTask", "ContinualAddingTask",
                          "generate_adding_hs97", "generate_addition_pascanu", "generate_temporal_order",
                          "generate_adding_continual"})


def __getattr__(name: str) -> Any:
    if name in _PAPER_NAMES:
        return getattr(paper_tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from gradlab import paper_tasks  # noqa: E402
