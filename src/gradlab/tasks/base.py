"""What a task is to gradlab: a config dataclass that knows its spec and generates its data, and the registry.

A task is a pure function of (seed, n) -> (inputs, targets) given its fields; `spec()` says what a model needs
(input/output sizes, the sequence length fed, the loss of the best memoryless guess, docs/theory.md). Each task is
one module of gradlab.tasks (its dataclass with `@register`, its generator) and one conf/task/<name>.yaml, whose
defaults list names the dataclass as its schema (`<name>_schema`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import MISSING

from gradlab.core.errors import ConfigError, out_of_range

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
    kind: str  # "regression" | "classification" | "multilabel" (a 0/1 target per unit: BCE; gradlab.tasks.reber)
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
    # a continual stream (gradlab.tasks.reber): the test split's sequences are streams never reset; the run writes the
    # errors, loss and ‖c_t‖ against stream position (gradlab.probe.stream: runs/<run>/stream.csv)
    continual: bool = False

    def solved(self, loss: float, acc: float | None) -> bool:
        if self.solved_accuracy is not None:
            return acc is not None and acc >= self.solved_accuracy
        return loss < SOLVED_FRACTION * self.baseline_loss


@dataclass
class Task:
    """The `task` config group: a name, the dependency length T, and the task's own fields (subclasses)."""

    name: str = MISSING
    order: ClassVar[int] = 1000  # its place in TASKS: a class attribute, not a config key
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


# a dataclass's default is its class attribute: AddingTask.name == "adding"
TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator of a task's own file: TASKS[cls.name] = cls, TASKS kept in the tasks' `order` (tables, error
    texts). gradlab.tasks imports every module of its package, so a task file there is registered by being there;
    a task anywhere else is registered once its module is imported."""
    TASKS[cls.name] = cls
    ordered = sorted(TASKS.values(), key=lambda c: c.order)
    TASKS.clear()
    TASKS.update({c.name: c for c in ordered})
    return cls


def task_from(params: dict[str, Any]) -> Task:
    """A task from plain data (a saved config, a manifest); ConfigError naming the choices for an unknown name."""
    cls = TASKS.get(params.get("name"))
    if cls is None:
        raise ConfigError(f"task.name={params.get('name')!r} is not a valid choice; choose one of: "
                          f"{', '.join(TASKS)}")
    return cls(**params)


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
