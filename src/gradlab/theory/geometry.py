"""High-dimensional geometry (docs/geometry.md): random vectors against exact theory, and pairs of any set of vectors
(gradlab.analysis.angles applies them to a network's own vectors).

Sampling and statistics are chunked: memory stays bounded (a few chunks of `CHUNK_ELEMENTS` floats) for any n
and D, and no n x n x D tensor is ever formed. Distributions: `cube` (uniform in [-1, 1]^D, as in the article),
`gaussian` (N(0, I)), `sphere` (uniform on the unit sphere). Distances of `cube` vectors are reported in unit-cube
units (halved), the scale of the classical results (E‖x-y‖² = D/6); angles and contrasts do not depend on scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradlab.core.choices import Distribution
from gradlab.core.errors import ConfigError
from gradlab.theory.geometry_config import check_geometry

CHUNK_ELEMENTS = 1 << 22  # floats per sampled chunk (16 MB in float32)


UNIT_CUBE_SCALE = {Distribution.cube: 0.5, Distribution.gaussian: 1.0, Distribution.sphere: 1.0}


def sample(distribution: str, n: int, D: int, generator: torch.Generator, dtype=torch.float32) -> Tensor:
    """n vectors of dimension D from one of the Distributions."""
    check_geometry(distribution, D)
    if distribution == Distribution.cube:
        return torch.empty(n, D, dtype=dtype).uniform_(-1, 1, generator=generator)  # one pass over memory
    x = torch.randn(n, D, generator=generator, dtype=dtype)
    if distribution == "sphere":
        x.div_(torch.linalg.vector_norm(x, dim=1, keepdim=True))
    return x


def _rows_per_chunk(D: int, vectors_per_row: int = 1) -> int:
    return max(1, CHUNK_ELEMENTS // (D * vectors_per_row))


@dataclass
class PairSample:
    """cos θ and ‖x − y‖ of independent pairs (float64, CPU)."""

    cos: Tensor
    dist: Tensor

    @property
    def angle_deg(self) -> Tensor:
        return torch.rad2deg(torch.arccos(self.cos.clamp(-1, 1)))


def random_pairs(distribution: str, D: int, n_pairs: int, generator: torch.Generator) -> PairSample:
    """cos and distance of n_pairs independent pairs, drawn chunk by chunk (2·n_pairs·D numbers in all)."""
    check_geometry(distribution, D, n_pairs)
    cos, dist = [], []
    rows = _rows_per_chunk(D, 2)
    for start in range(0, n_pairs, rows):
        m = min(rows, n_pairs - start)
        xy = sample(distribution, 2 * m, D, generator)
        c, d = _cos_dist(xy[:m], xy[m:])
        cos.append(c)
        dist.append(d)
    return PairSample(torch.cat(cos), torch.cat(dist) * UNIT_CUBE_SCALE[distribution])


def _cos_dist(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Three fused reductions over the pair (no x − y temporary): ‖x−y‖² = ‖x‖² + ‖y‖² − 2x·y. The cancellation
    of that formula matters only for pairs much closer than their norms, i.e. in low dimension: there (D < 64)
    the difference is taken directly."""
    dot = torch.linalg.vecdot(x, y).double()
    nx2 = torch.linalg.vecdot(x, x).double()
    ny2 = torch.linalg.vecdot(y, y).double()
    if x.shape[1] < 64:
        dist = torch.linalg.vector_norm(x - y, dim=1).double()
    else:
        dist = (nx2 + ny2 - 2 * dot).clamp(min=0).sqrt()
    return dot / (nx2 * ny2).sqrt(), dist


def pairs_of(vectors: Tensor, max_pairs: int | None = None, generator: torch.Generator | None = None) -> PairSample:
    """cos and distance over the distinct pairs of a set of vectors (n, D): all of them, or max_pairs random ones."""
    n = vectors.shape[0]
    if n < 2:
        raise ConfigError(f"a set of {n} vector(s) has no pairs: need at least 2")
    i, j = torch.triu_indices(n, n, offset=1)
    if max_pairs is not None and len(i) > max_pairs:
        keep = torch.randperm(len(i), generator=generator)[:max_pairs]
        i, j = i[keep], j[keep]
    cos, dist = [], []
    rows = _rows_per_chunk(vectors.shape[1], 2)
    v = vectors.detach().double()
    for start in range(0, len(i), rows):
        c, d = _cos_dist(v[i[start:start + rows]], v[j[start:start + rows]])
        cos.append(c)
        dist.append(d)
    return PairSample(torch.cat(cos), torch.cat(dist))


def summary(pairs: PairSample, D: int) -> dict[str, float]:
    """The scalar statistics of a pair sample (angles in degrees)."""
    a, c, d = pairs.angle_deg, pairs.cos, pairs.dist
    q = torch.quantile(a, torch.tensor([0.01, 0.5, 0.99], dtype=a.dtype))
    return {
        "angle_mean_deg": float(a.mean()), "angle_sd_deg": float(a.std()),
        "angle_q01_deg": float(q[0]), "angle_median_deg": float(q[1]), "angle_q99_deg": float(q[2]),
        "cos_mean": float(c.mean()), "cos_var_times_D": float(c.var() * D),
        "dist_mean": float(d.mean()), "dist_sd": float(d.std()),
        "dist_sq_mean_over_D": float((d * d).mean() / D),
    }


@dataclass
class QueryDistances:
    """Per query: min, max, mean and sd of its distances to every point of the set."""

    dmin: Tensor
    dmax: Tensor
    mean: Tensor
    sd: Tensor

    @property
    def relative_contrast(self) -> Tensor:
        """(Dmax − Dmin) / Dmin per query (Aggarwal et al. 2001)."""
        return (self.dmax - self.dmin) / self.dmin


def query_distances(queries: Tensor, point_chunks, n_points: int | None = None) -> QueryDistances:
    """Distances from each query to every point, streamed over chunks of points (an iterable of (m, D) tensors):
    only running min/max/sum/sum of squares per query are kept, so memory is one chunk x queries."""
    q = queries.double()
    dmin = torch.full((len(q),), math.inf, dtype=torch.float64)
    dmax = torch.zeros(len(q), dtype=torch.float64)
    s1 = torch.zeros(len(q), dtype=torch.float64)
    s2 = torch.zeros(len(q), dtype=torch.float64)
    count = 0
    q2 = (q * q).sum(1, keepdim=True)
    for chunk in point_chunks:
        c = chunk.double()
        if c.shape[1] < 64:  # low D: points can be close relative to their norms; take exact differences
            d2 = torch.cdist(q, c, compute_mode="donot_use_mm_for_euclid_dist").square()
        else:  # ‖q−x‖² = ‖q‖² + ‖x‖² − 2q·x as one float64 matmul (~5x faster than differences)
            d2 = torch.addmm(q2 + (c * c).sum(1), q, c.T, alpha=-2).clamp_(min=0)
        d = d2.sqrt()
        dmin = torch.minimum(dmin, d.min(1).values)
        dmax = torch.maximum(dmax, d.max(1).values)
        s1 += d.sum(1)
        s2 += d2.sum(1)
        count += c.shape[0]
    if n_points is not None and count != n_points:
        raise ValueError(f"expected {n_points} points, got {count}")
    mean = s1 / count
    return QueryDistances(dmin, dmax, mean, (s2 / count - mean * mean).clamp(min=0).sqrt())


def random_point_chunks(distribution: str, n: int, D: int, generator: torch.Generator, rows: int | None = None):
    """n random points in chunks of `rows` (default: CHUNK_ELEMENTS / D), generated as they are consumed."""
    rows = rows or _rows_per_chunk(D)
    for start in range(0, n, rows):
        yield sample(distribution, min(rows, n - start), D, generator)


def relative_contrast(distribution: str, D: int, n_points: int, n_queries: int,
                      generator: torch.Generator) -> tuple[float, float]:
    """Mean and standard error over queries of (Dmax − Dmin)/Dmin to n_points random points."""
    queries = sample(distribution, n_queries, D, generator)
    rc = query_distances(queries, random_point_chunks(distribution, n_points, D, generator)).relative_contrast
    return float(rc.mean()), float(rc.std() / math.sqrt(len(rc))) if len(rc) > 1 else math.nan


def _log_angle_norm(D: int) -> float:
    """log ∫_0^π sin^(D−2) θ dθ = log(√π Γ((D−1)/2) / Γ(D/2))."""
    return 0.5 * math.log(math.pi) + math.lgamma((D - 1) / 2) - math.lgamma(D / 2)


def angle_density(theta: Tensor | np.ndarray, D: int) -> Tensor:
    """Exact density of the angle between two independent gaussian/sphere vectors: sin^(D−2)θ / norm (D >= 2)."""
    check_geometry(D=D)
    if D < 2:
        raise ConfigError(f"D={D} has no angles between vectors: need D >= 2")
    t = torch.as_tensor(theta, dtype=torch.float64)
    with torch.no_grad():
        return torch.exp((D - 2) * torch.log(torch.sin(t).clamp(min=1e-300)) - _log_angle_norm(D))


def angle_sd_deg(D: int, grid: int = 400_001) -> float:
    """Exact sd of the angle (degrees) for gaussian/sphere vectors, by integrating the density (mean is 90°)."""
    half_width = min(math.pi / 2, 40 / math.sqrt(max(D - 1, 1)))  # the density is negligible beyond this
    t = torch.linspace(math.pi / 2 - half_width, math.pi / 2 + half_width, grid, dtype=torch.float64)
    p = angle_density(t, D)
    var = torch.trapezoid(p * (t - math.pi / 2) ** 2, t) / torch.trapezoid(p, t)
    return math.degrees(math.sqrt(float(var)))


def dist_sq_mean_over_D(distribution: str, D: int) -> float:
    """E‖x−y‖²/D: unit cube 1/6 (the [−1, 1] samples are reported halved), gaussian 2, sphere 2/D."""
    return {Distribution.cube: 1 / 6, Distribution.gaussian: 2.0, Distribution.sphere: 2.0 / D}[distribution]


def log_ball_volume(D: int, r: float = 1.0) -> float:
    """log V_D(r) = (D/2) log π + D log r − log Γ(D/2 + 1)."""
    return 0.5 * D * math.log(math.pi) + D * math.log(r) - math.lgamma(D / 2 + 1)


def ball_volume(D: int, r: float = 1.0) -> float:
    return math.exp(log_ball_volume(D, r))


def log10_ball_cube_ratio(D: int) -> float:
    """log10 of vol(unit ball) / vol([−1, 1]^D): finite even where the ratio itself underflows (D ≳ 600)."""
    return (log_ball_volume(D) - D * math.log(2)) / math.log(10)


def ball_cube_ratio(D: int) -> float:
    """vol(unit ball) / vol([−1, 1]^D) ("spiky cubes"): 0.7854 (D=2), 0.5236 (D=3), 2.49e−3 (D=10)."""
    return 10 ** log10_ball_cube_ratio(D)


def shell_fraction(epsilon: float, D: int) -> float:
    """Fraction of a ball's volume in its outer ε-shell, 1 − (1 − ε)^D ("empty M&M's"), without cancellation."""
    check_geometry(D=D, epsilon=epsilon)
    return -math.expm1(D * math.log1p(-epsilon))


def shell_fraction_mc(epsilon: float, D: int, n: int, generator: torch.Generator) -> tuple[float, float, int]:
    """Monte Carlo as in the curse-of-dimensionality article: uniform points in [−1, 1]^D, those inside the unit
    ball, the fraction of them in the outer shell. Returns (fraction, standard error, points inside the ball);
    practical for small D only."""
    check_geometry(D=D, epsilon=epsilon)
    inside = in_shell = 0
    for chunk in random_point_chunks(Distribution.cube, n, D, generator):
        r = torch.linalg.vector_norm(chunk.double(), dim=1)
        ball = r <= 1
        inside += int(ball.sum())
        in_shell += int((ball & (r > 1 - epsilon)).sum())
    if inside == 0:
        return math.nan, math.nan, 0
    p = in_shell / inside
    return p, math.sqrt(p * (1 - p) / inside), inside


def spiky_cube(D: int) -> dict[str, float]:
    """Half-diagonal of [−1, 1]^D (√D: corners are far out), and the diameter √D − 1 of the ball that touches all
    2^D unit balls inscribed in the stacked unit cubes (larger than the stack, 2, once D > 9)."""
    return {"spiky_cube_diagonal": math.sqrt(D), "central_ball_diameter": math.sqrt(D) - 1}
