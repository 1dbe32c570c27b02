"""The memory stage's config (conf/memory.yaml) and the rules of the memory functions' arguments: plain data, light
to import (no numpy work happens before the whole config is checked)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradlab.core.errors import ConfigError, out_of_range
from gradlab.tracking.config import LoggerConfig

# λ = 0.9, 0.99, 0.999 and the points between, about log-spaced in 1 − λ (1 − λ = 10^(−1 − k/5), k = 0..10)
LAMBDAS = [0.9, 0.936904, 0.960189, 0.974881, 0.984151, 0.99, 0.99369, 0.996019, 0.997488, 0.998415, 0.999]


def check_memory(lam: float | None = None, rho: float | None = None, n: int | None = None,
                 prefix: str = "") -> None:
    """The rules of the memory functions' arguments (gradlab.theory.memory) and of the stage's config (prefix
    `memory.`, where lam and rho are entries of memory.lambdas and memory.rhos): ConfigError naming the value and
    what is allowed."""
    if lam is not None and not (isinstance(lam, int | float) and 0 < lam < 1):
        raise out_of_range(f"{prefix}lambdas" if prefix else "lam", lam, "a number in (0, 1) (the unit's decay λ)")
    if rho is not None and not (isinstance(rho, int | float) and 0 <= rho <= 1):
        raise out_of_range(f"{prefix}rhos" if prefix else "rho", rho,
                           "a number in [0, 1] (the inputs' autocorrelation ρ)")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 2):
        raise out_of_range(f"{prefix}n_sequences" if prefix else "n", n, "an integer >= 2")


@dataclass
class MemoryParams:
    lambdas: list[float] = field(default_factory=lambda: list(LAMBDAS))
    rhos: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    n_sequences: int = 20_000  # independent sequences per (λ, ρ): relative standard error √(2/n) = 1.0%

    def __post_init__(self) -> None:
        if not self.lambdas:
            raise ConfigError("memory.lambdas=[] is empty: give at least one λ in (0, 1), e.g. [0.9,0.99,0.999]")
        if not self.rhos:
            raise ConfigError("memory.rhos=[] is empty: give at least one ρ in [0, 1], e.g. [0,0.5,1]")
        for lam in self.lambdas:
            check_memory(lam=lam, prefix="memory.")
        for rho in self.rhos:
            check_memory(rho=rho, prefix="memory.")
        check_memory(n=self.n_sequences, prefix="memory.")
        if any(math.isclose(a, b) for i, a in enumerate(self.lambdas) for b in self.lambdas[i + 1:]):
            raise ConfigError(f"memory.lambdas={self.lambdas} repeats a value: give each λ once")


@dataclass
class MemoryConfig:
    """The memory stage (conf/memory.yaml): `pipelines/memory.py`."""

    memory: MemoryParams = field(default_factory=MemoryParams)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    out_dir: str = "results/memory"


def hydra_schemas() -> dict[tuple[str | None, str], type]:
    """What conf/memory.yaml's defaults list names (gradlab.launch.cli stores it)."""
    return {(None, "memory_schema"): MemoryConfig}
