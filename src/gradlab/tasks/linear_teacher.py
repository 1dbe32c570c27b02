"""Zucchet & Orvieto 2024's teacher-student task (their Fig. 3A): a student fits a fixed linear dynamical system.

The teacher is built as their code builds it (source/dataloaders/regression.py, parametrization "dense"): a dense
real 10-unit system, A from a Ginibre matrix G ~ N(0, 1/10) whose eigenvalues λ keep their phase (scaled by
3.14/π, as their max_phase=3.14 does) and get the modulus ν₀ + (1 − ν₀)·tanh|λ| (so the moduli sit inside
(ν₀, 1), about ν₀ + [0.24, 0.75]·(1 − ν₀), not up to 1); A = Re(V diag(λ') V⁻¹); B ~ N(0, 1) (10×1),
C ~ N(0, 1/10) (1×10), D ~ N(0, 1). Input: scalar white noise x_t ~ N(0, 1); h_0 = 0, h_t = A h_{t−1} + B x_t;
target y_t = C h_t + D x_t at EVERY step (no noise).

One fixed teacher per ν₀, as theirs: the teacher is drawn from task.teacher_seed (42, their LinearSystem's
default) whatever the run's seed or the data seed; those change only the inputs (and the student's init). Ours is
torch's seed-42 draw, not jax's: the same construction, another matrix.

Loss: gradlab's per-step MSE over all T steps (theirs: 0.5·MSE, so ours = 2 × theirs). Memoryless baseline: the
exact variance of the target averaged over the steps, (1/T) Σ_t Σ_{k<t} g_k² with the impulse response g_0 = CB + D,
g_k = C A^k B (the best guess that ignores the input, 0, as every task's baseline); the best predictor from x_t
alone, (CB + D) x_t, reaches that minus g_0² (`TaskSpec` has one baseline: the variance). Solved: gradlab's
default, loss < 1% of that baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor

TEACHER_UNITS = 10  # their lsi_d_hidden
MAX_PHASE = 3.14  # their lsi_max_phase: the phases are scaled by 3.14/π


@register
@dataclass
class LinearTeacherTask(Task):
    """Zucchet & Orvieto 2024's linear teacher: y_t = C h_t + D x_t, h_t = A h_{t−1} + B x_t, x_t ~ N(0, 1), A's
    eigenvalue moduli ν₀ + (1 − ν₀)·tanh|λ_Ginibre|; a target at every step."""

    name: str = "linear_teacher"
    order: ClassVar[int] = 100  # its place in TASKS (tables, error texts)
    seq_len: int = 300  # theirs
    nu0: float = 0.99  # ν₀: the teacher's smallest possible eigenvalue modulus (their min_nu)
    teacher_seed: int = 42  # one fixed teacher per ν₀ whatever the run's seed (their LinearSystem default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.nu0, (int, float)) and 0.0 < self.nu0 < 1.0):
            raise out_of_range("task.nu0", self.nu0, "a number in (0, 1)")

    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.seq_len, self.seq_len, 1, 1, "regression", True, False,
                        teacher_baseline(self.nu0, self.teacher_seed, self.seq_len), None)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_linear_teacher(seed, self.seq_len, n, self.nu0, self.teacher_seed)


def teacher(nu0: float, teacher_seed: int = 42) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(A (10, 10), B (10, 1), C (1, 10), D (1, 1)), float64: their "dense" construction from one seed."""
    import torch

    g = torch.Generator().manual_seed(teacher_seed)
    d = TEACHER_UNITS
    G = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    B = torch.randn(d, 1, generator=g, dtype=torch.float64)  # / sqrt(d_input = 1)
    C = torch.randn(1, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    D = torch.randn(1, 1, generator=g, dtype=torch.float64)
    lam, V = torch.linalg.eig(G)
    modulus = nu0 + (1.0 - nu0) * torch.tanh(lam.abs())
    lam = torch.polar(modulus, lam.angle() * MAX_PHASE / math.pi)  # conjugate pairs stay paired: A is real
    A = (V @ torch.diag(lam) @ torch.linalg.inv(V)).real
    return A, B, C, D


def teacher_baseline(nu0: float, teacher_seed: int, seq_len: int) -> float:
    """(1/T) Σ_{t=1..T} Var(y_t) = (1/T) Σ_t Σ_{k<t} g_k², g_0 = CB + D, g_k = C A^k B: exact (h_0 = 0,
    x_t ~ N(0, 1)). D x_t and C B x_t are the same step's input: they add before squaring."""
    A, B, C, D = teacher(nu0, teacher_seed)
    v, impulse = B, []
    for k in range(seq_len):
        impulse.append(float((C @ v + (D if k == 0 else 0.0)) ** 2))
        v = A @ v
    total, running = 0.0, 0.0
    for k in range(seq_len):  # step t = k + 1 has lags 0..k
        running += impulse[k]
        total += running
    return total / seq_len


def generate_linear_teacher(seed: int, seq_len: int, n: int, nu0: float, teacher_seed: int = 42
                            ) -> tuple[Tensor, Tensor]:
    """x (n, T, 1) ~ N(0, 1) from `seed`; y (n, T, 1): the teacher's output at every step (float64 recursion, stored
    as float32)."""
    import torch

    A, B, C, D = teacher(nu0, teacher_seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, seq_len, 1, generator=g)
    u = x.double() @ B.T  # (n, T, 10): B x_t
    h = torch.zeros(n, TEACHER_UNITS, dtype=torch.float64)
    hs = torch.empty(n, seq_len, TEACHER_UNITS, dtype=torch.float64)
    for t in range(seq_len):
        h = h @ A.T + u[:, t]
        hs[:, t] = h
    y = hs @ C.T + x.double() @ D.T
    return x, y.float()
