"""First-token classification: name the class token seen at t=0 after seq_len - 1 distractors."""

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
class FirstTokenTask(Task):
    """First-token classification: the class token (one of n_classes) at t=0, random distractor tokens after it;
    the model must name the class at the last step."""

    name: str = "first_token"
    order: ClassVar[int] = 30  # its place in TASKS (tables, error texts)
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


def generate_first_token(seed: int, seq_len: int, n: int, n_classes: int = 4, n_distractors: int = 4
                         ) -> tuple[Tensor, Tensor]:
    """First-token classification: class token at t=0 (0..K-1), distractor tokens (K..K+n_distractors-1) after."""
    import torch

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    x = torch.randint(n_classes, n_classes + n_distractors, (n, seq_len), generator=g)
    x[:, 0] = y
    return x, y
