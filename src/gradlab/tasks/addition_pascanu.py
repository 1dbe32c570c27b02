"""Pascanu, Mikolov & Bengio 2013's addition task, as their code generates it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.adding_hs97 import _left_padded_lengths
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor
# Gers et al. 2000's continual embedded Reber grammar (reber_continual) registers itself in its own module


@register
@dataclass
class AdditionPascanuTask(Task):
    """Pascanu, Mikolov & Bengio's addition task (2013; their code's addition.py): a marker channel and values
    U[0,1]; the first marker in the first 10% of the sequence, the second in [10%, 50%); the target is the MEAN of
    the two marked values; a sequence is wrong when its squared error exceeds 0.04 (|error| >= 0.2). Their code
    draws one length in [T, T + T//10) per batch; gradlab draws it per sequence and left-pads with zero pairs to
    T + T//10 - 1 steps."""

    name: str = "addition_pascanu"
    order: ClassVar[int] = 50  # its place in TASKS (tables, error texts)
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
