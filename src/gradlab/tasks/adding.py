"""The adding problem (Le et al. 2015, Arjovsky et al. 2016): two marked values among U[0,1] noise; the target is
their sum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor


@register
@dataclass
class AddingTask(Task):
    """Adding problem (Le 2015 / Arjovsky 2016): values U[0,1] and a marker channel with one 1 in each half; the
    target is the sum of the two marked values."""

    name: str = "adding"
    order: ClassVar[int] = 10  # its place in TASKS (tables, error texts)

    def spec(self) -> TaskSpec:
        # predicting the mean, 1, has MSE Var(X1 + X2) = 2/12 = 1/6
        return TaskSpec(self.name, self.seq_len, self.seq_len, 2, 1, "regression", False, False, 1 / 6, None)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_adding(seed, self.seq_len, n)


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
