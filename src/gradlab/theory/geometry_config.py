"""The geometry stage's config (conf/geometry.yaml) and the rules of the geometry functions' arguments: plain data,
light to import (the W&B report reads the stage's defaults without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gradlab.core.choices import Distribution, choose
from gradlab.core.errors import ConfigError, out_of_range
from gradlab.tracking.config import LoggerConfig


@dataclass
class GeometryParams:
    dims: list[int] = field(default_factory=lambda: [2, 3, 10, 50, 100, 1000, 10000])
    distributions: list[Distribution] = field(default_factory=lambda: list(Distribution))
    n_pairs: int = 10_000
    n_points: int = 100  # relative contrast: distances from each query to this many points
    n_queries: int = 100
    epsilon: float = 0.01  # the shell's thickness, as a fraction of the radius
    mc_samples: int = 2_000_000  # cube points for the Monte Carlo shell fraction
    mc_max_dim: int = 10  # above this, almost no cube point falls in the ball: analytic value only
    histogram_bins: int = 90

    def __post_init__(self) -> None:
        if not self.dims:
            raise ConfigError("geometry.dims=[] is empty: give at least one dimension, e.g. [2,10,100]")
        if not self.distributions:
            raise ConfigError(f"geometry.distributions=[] is empty: choose from {', '.join(Distribution)}")
        for D in self.dims:
            check_geometry(D=D, n_pairs=self.n_pairs, epsilon=self.epsilon, prefix="geometry.")
        for key, low in (("n_points", 2), ("n_queries", 1), ("mc_samples", 1), ("histogram_bins", 2)):
            if getattr(self, key) < low:
                raise out_of_range(f"geometry.{key}", getattr(self, key), f"an integer >= {low}")



def hydra_schemas() -> dict[tuple[str | None, str], type]:
    """What conf/geometry.yaml's defaults list names (gradlab.launch.cli stores it)."""
    return {(None, "geometry_schema"): GeometryConfig}

def check_geometry(distribution: str | None = None, D: int | None = None, n_pairs: int | None = None,
                   epsilon: float | None = None, prefix: str = "") -> None:
    """The rules of the geometry functions' arguments (this module) and of the stage's config (prefix
    `geometry.`, where D is an entry of geometry.dims): ConfigError naming the value and what is allowed."""
    if distribution is not None:
        choose(Distribution, f"{prefix}distribution", distribution)
    if D is not None and (not isinstance(D, int) or D < 1):
        raise out_of_range(f"{prefix}dims" if prefix else "D", D, "an integer >= 1")
    if n_pairs is not None and (not isinstance(n_pairs, int) or n_pairs < 2):
        raise out_of_range(f"{prefix}n_pairs", n_pairs, "an integer >= 2")
    if epsilon is not None and not 0 < epsilon < 1:
        raise out_of_range(f"{prefix}epsilon", epsilon, "a number in (0, 1)")


@dataclass
class GeometryConfig:
    """The geometry stage (conf/geometry.yaml): `pipelines/geometry.py`."""

    geometry: GeometryParams = field(default_factory=GeometryParams)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    out_dir: str = "results/geometry"
