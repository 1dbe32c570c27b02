"""High-dimensional geometry against the exact values of docs/geometry.md, and the geometry stage as users run it."""

import math

import pandas as pd
import pytest
import torch
from conftest import run_entry

from gradlab.core.choices import Distribution
from gradlab.core.errors import ConfigError
from gradlab.theory import geometry as g

SPHERE_ANGLE_SD = {2: 51.96, 3: 39.17, 10: 19.06, 100: 5.758, 1000: 1.8128}  # docs/geometry.md, as printed there
N = 10_000  # pairs per sample: sampled statistics are held to a few standard errors of an estimate from N pairs


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.numerics
@pytest.mark.parametrize("dist", list(Distribution))
def test_cos_variance_is_one_over_D(dist):
    for D in (2, 10, 100, 1000):
        s = g.summary(g.random_pairs(dist, D, N, gen(D)), D)
        # the relative standard error of a variance from N pairs is at most √(2/N) = 1.4% (cos² ~ χ²₁/D; less for
        # D = 2): 0.05 is 3.5 of them
        assert s["cos_var_times_D"] == pytest.approx(1, rel=0.05), (dist, D)
        # the mean angle's standard error is sd/√N; 4.5 of them
        assert s["angle_mean_deg"] == pytest.approx(90, abs=4.5 * s["angle_sd_deg"] / math.sqrt(N))


@pytest.mark.numerics
@pytest.mark.parametrize("D,sd", SPHERE_ANGLE_SD.items())
def test_sphere_angle_sd_exact_and_sampled(D, sd):
    printed = 0.5 * 10.0 ** -len(repr(sd).split(".")[1])  # the table's own error: half a unit of its last digit
    assert g.angle_sd_deg(D) == pytest.approx(sd, abs=printed)  # the exact density, integrated (error ~1e-9)
    sample = g.summary(g.random_pairs("sphere", D, N, gen(D)), D)["angle_sd_deg"]
    assert sample == pytest.approx(sd, rel=0.03)  # a sample sd's relative standard error is ≈ 1/√(2N) = 0.7%


@pytest.mark.numerics
def test_angle_density_integrates_to_one():
    t = torch.linspace(0, math.pi, 200_001, dtype=torch.float64)
    for D in (2, 3, 10, 1000):
        # trapezoid error ≈ h²/12·∫|p''| ≤ 3e-8 (h = π/2e5; p'' ~ D·p for D = 1000)
        assert float(torch.trapezoid(g.angle_density(t, D), t)) == pytest.approx(1, abs=1e-6)


@pytest.mark.numerics
def test_unit_cube_mean_squared_distance_is_D_over_6():
    # relative standard error of the mean of ‖x−y‖² over N pairs: √(7D/180)/(D/6)/√N ≤ 0.4% (D ≥ 10); 0.02 ≥ 5 of them
    for D in (10, 100, 1000):
        s = g.summary(g.random_pairs("cube", D, N, gen(D)), D)
        assert s["dist_sq_mean_over_D"] == pytest.approx(1 / 6, rel=0.02)
    assert g.summary(g.random_pairs("gaussian", 100, N, gen()), 100)["dist_sq_mean_over_D"] == \
        pytest.approx(2, rel=0.02)


@pytest.mark.numerics
def test_ball_cube_ratio_and_volumes_are_exact():
    closed = {2: math.pi / 4, 3: math.pi / 6, 4: math.pi ** 2 / 32, 5: math.pi ** 2 / 60, 6: math.pi ** 3 / 384}
    for D, value in closed.items():  # lgamma and exp are good to a few ulp: 1e-12 is 10^3 of room
        assert g.ball_cube_ratio(D) == pytest.approx(value, rel=1e-12, abs=0)
    # the printed values are good to half a unit of their last digit, which is the tolerance
    assert g.ball_volume(5) == pytest.approx(5.2638, abs=5e-5)  # the largest unit ball
    assert max(range(1, 30), key=g.ball_volume) == 5
    assert g.ball_cube_ratio(10) == pytest.approx(2.49e-3, abs=5e-6)
    assert g.ball_cube_ratio(20) == pytest.approx(2.46e-8, abs=5e-11)
    assert g.log10_ball_cube_ratio(10_000) < -5000  # finite where the ratio itself underflows


@pytest.mark.numerics
def test_shell_fraction_analytic_and_monte_carlo():
    assert g.shell_fraction(0.01, 2) == pytest.approx(0.0199, abs=1e-12)  # the seed's numbers: exact decimals
    assert g.shell_fraction(0.01, 3) == pytest.approx(0.029701, abs=1e-12)
    assert g.shell_fraction(0.01, 1000) == pytest.approx(0.99996, abs=5e-6)  # printed to 5 decimals
    for D in (2, 3, 10):  # Monte Carlo: within 3 of its own standard errors
        mc, se, inside = g.shell_fraction_mc(0.01, D, 2_000_000, gen(D))
        assert abs(mc - g.shell_fraction(0.01, D)) <= 3 * se, (D, mc, se, inside)


@pytest.mark.numerics
def test_relative_contrast_shrinks_like_one_over_sqrt_D():
    rc = {D: g.relative_contrast("cube", D, 100, 100, gen(D)) for D in (2, 10, 100, 1000, 10_000)}
    values = [mean for mean, _ in rc.values()]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), rc
    scaled = [rc[D][0] * math.sqrt(D) for D in (100, 1000, 10_000)]
    assert max(scaled) / min(scaled) < 1.3, scaled
    # docs/geometry.md's values are a simulation of the same kind (100 uniform points; not the paper's numbers), so each
    # side has about the same standard error se: the difference is held to 4 standard errors of a difference, 4√2·se
    for D, published in ((10, 1.69), (100, 0.322), (1000, 0.091)):
        mean, se = rc[D]
        assert abs(mean - published) <= 4 * math.sqrt(2) * se, (D, mean, se)


@pytest.mark.numerics
def test_chunked_equals_direct():
    # float64 throughout, the reference taking exact differences: min/max are the same numbers; mean and sd differ
    # by summation order and, for sd = √(E d² − mean²), its cancellation: ≤ 50·u·E d²/sd² ≈ 1e-13; tolerance 1e-12
    x = torch.randn(50, 7, generator=gen(), dtype=torch.float64)
    q = torch.randn(3, 7, generator=gen(1), dtype=torch.float64)
    direct = torch.cdist(q, x, compute_mode="donot_use_mm_for_euclid_dist")
    streamed = g.query_distances(q, (x[i:i + 8] for i in range(0, 50, 8)), n_points=50)
    torch.testing.assert_close(streamed.dmin, direct.min(1).values, rtol=1e-12, atol=0)
    torch.testing.assert_close(streamed.dmax, direct.max(1).values, rtol=1e-12, atol=0)
    torch.testing.assert_close(streamed.mean, direct.mean(1), rtol=1e-12, atol=0)
    torch.testing.assert_close(streamed.sd, direct.std(1, unbiased=False), rtol=1e-12, atol=0)
    pairs = g.pairs_of(x)
    i, j = torch.triu_indices(50, 50, offset=1)
    torch.testing.assert_close(pairs.dist, (x[i] - x[j]).norm(dim=1), rtol=1e-12, atol=0)
    old = g.CHUNK_ELEMENTS
    try:  # many small chunks
        g.CHUNK_ELEMENTS = 64
        small = g.random_pairs("gaussian", 16, 100, gen(3))
    finally:
        g.CHUNK_ELEMENTS = old
    assert small.cos.shape == (100,) and torch.isfinite(small.cos).all()
    # high D: the matmul form of the distances against exact differences; its cancellation error is
    # ≤ γ_D·(‖q‖² + ‖x‖²)/d² ≈ 200·1.1e-16·4 = 9e-14 relative here (uniform [0,1]^200: ‖x‖² ≈ 67, d² ≈ 33)
    x = torch.rand(300, 200, generator=gen(4), dtype=torch.float64)
    q = torch.rand(5, 200, generator=gen(5), dtype=torch.float64)
    exact = torch.cdist(q, x, compute_mode="donot_use_mm_for_euclid_dist")
    fast = g.query_distances(q, (x[i:i + 64] for i in range(0, 300, 64)))
    torch.testing.assert_close(fast.dmin, exact.min(1).values, rtol=1e-12, atol=0)
    torch.testing.assert_close(fast.mean, exact.mean(1), rtol=1e-12, atol=0)
    pairs = g.pairs_of(x[:40])
    i, j = torch.triu_indices(40, 40, offset=1)
    torch.testing.assert_close(pairs.dist, (x[i] - x[j]).norm(dim=1), rtol=1e-12, atol=0)


def test_bad_values_raise_clear_errors():
    with pytest.raises(ConfigError, match="distribution='cone' is not a valid choice; choose one of: cube"):
        g.sample("cone", 2, 3, gen())
    with pytest.raises(ConfigError, match="D=0 is out of range"):
        g.random_pairs("cube", 0, 10, gen())
    with pytest.raises(ConfigError, match="n_pairs=1 is out of range"):
        g.random_pairs("cube", 3, 1, gen())
    with pytest.raises(ConfigError, match="epsilon=1.5 is out of range"):
        g.shell_fraction(1.5, 3)


def test_geometry_stage_writes_the_reference_table_and_figures(tmp_path):
    done = run_entry("geometry.py", "geometry.dims=[2,3,10,100]", "geometry.n_pairs=2000",
                   "geometry.distributions=[cube,sphere]", "geometry.mc_samples=200000", "seed=0",
                   "logger.mode=offline", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "results" / "geometry"
    df = pd.read_csv(out / "reference.csv")
    assert list(df.columns) == ["distribution", "D", "statistic", "value", "theory"]
    shell = df[df.statistic == "shell_fraction"].set_index("D").value
    assert shell[2] == pytest.approx(0.0199) and shell[3] == pytest.approx(0.0297, abs=1e-4)
    for stat in ("angle_mean_deg", "angle_sd_deg", "cos_var_times_D", "dist_sq_mean_over_D", "relative_contrast",
                 "shell_fraction_mc", "ball_cube_ratio"):
        assert (df.statistic == stat).any(), stat
    assert len({p.name for p in (out / "figures").glob("*.png")}) == 6
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))


@pytest.mark.parametrize("args,message", [
    (["geometry.dims=[0]"], "geometry.dims=0 is out of range: must be an integer >= 1"),
    (["geometry.n_pairs=1"], "geometry.n_pairs=1 is out of range: must be an integer >= 2"),
    (["geometry.epsilon=1.5"], "geometry.epsilon=1.5 is out of range: must be a number in (0, 1)"),
    (["geometry.distributions=[cone]"], "geometry.distributions[0]='cone' is not a valid choice; choose one of: cube, "
                                        "gaussian, sphere"),
    (["geometry.n_pair=5"], "unknown config key 'geometry.n_pair'; valid keys under geometry: dims, distributions, "
                            "epsilon, histogram_bins, mc_max_dim, mc_samples, n_pairs, n_points, n_queries"),
])
def test_geometry_bad_input(tmp_path, args, message):
    done = run_entry("geometry.py", *args, cwd=tmp_path)
    assert done.returncode != 0 and done.stderr.strip() == f"error: {message}"
    assert list(tmp_path.iterdir()) == []
