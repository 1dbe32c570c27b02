"""The temporal-order task (Hochreiter & Schmidhuber 1997; Pascanu et al. 2013's version)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor
# Gers et al. 2000's continual embedded Reber grammar (reber_continual) registers itself in its own module


@register
@dataclass
class TemporalOrderTask(Task):
    """The temporal-order task (Hochreiter & Schmidhuber 1997; Pascanu et al. 2013's tempOrder.py): six symbols;
    A or B at a random position in [10%, 20%) of the sequence and again in [50%, 60%), distractors c-f elsewhere;
    the class is the order seen, AA, AB, BA or BB."""

    name: str = "temporal_order"
    order: ClassVar[int] = 60  # its place in TASKS (tables, error texts)
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
