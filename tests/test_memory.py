"""The curse of memory (gradlab.theory.memory, stage `memory`): the closed forms at their published values and against
exact sums over lags, the Monte Carlo of the recurrences within its standard errors, the slopes against 1/(1 − λ),
the normalised unit's bounded limit, bad input, and the stage's outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import run_entry

from gradlab.core.errors import ConfigError
from gradlab.theory import memory as m

LAMS = (0.9, 0.99, 0.999)
RHOS = (0.0, 0.5, 1.0)
# the Monte Carlo grid of these tests: 1 − λ log-spaced over the stage's span, 0.1 .. 0.001, at half its points
MC_LAMS = tuple(1 - np.geomspace(0.1, 0.001, 5))
MC_N = 2000  # relative standard error √(2/n) = 3.2% a point (the stage: n = 20000, 1.0%)
ROUNDING = 1e-11  # relative: the FFT's rounding in a lag sum (seen ≤ 1e-13 at K = 60000 terms)


@pytest.fixture(scope="module")
def measured() -> dict[tuple[float, float], dict]:
    """(λ, ρ) -> the Monte Carlo's (model, quantity) -> (mean, stderr), seeded as the stage seeds it."""
    return {(lam, rho): m.monte_carlo(lam, rho, MC_N, m.rng_for(0, lam, rho)) for rho in RHOS for lam in MC_LAMS}


@pytest.mark.numerics
@pytest.mark.parametrize("lam,rho,h_sq,sens_sq", [
    (0.9, 0, "5.26316", "263.887"), (0.99, 0, "50.2513", "251263"), (0.999, 0, "500.25", "2.50125e8"),
    (0.99, 1, "1e4", "1e8")])
def test_the_closed_forms_give_the_published_values(lam, rho, h_sq, sens_sq):
    """Zucchet & Orvieto's E[h²] and E[(∂h/∂λ)²] to the digits published (6 significant: rounded, they are equal)."""
    for quantity, given in (("h_sq", h_sq), ("sens_sq", sens_sq)):
        assert float(f"{m.exact('plain', quantity, lam, rho):.6g}") == float(given), (quantity, lam, rho)
    if rho == 1:  # exactly 1/(1 − λ)² and 1/(1 − λ)⁴
        assert m.exact("plain", "h_sq", lam, 1) == pytest.approx((1 - lam) ** -2, rel=1e-12)
        assert m.exact("plain", "sens_sq", lam, 1) == pytest.approx((1 - lam) ** -4, rel=1e-12)


@pytest.mark.numerics
@pytest.mark.parametrize("model,quantity", list(m.CLOSED_FORMS))
@pytest.mark.parametrize("rho", (0.0, 0.5, 0.9, 1.0))
@pytest.mark.parametrize("lam", LAMS)
def test_closed_forms_equal_the_direct_sums_over_lags(model, quantity, rho, lam):
    """Σ_{k,l} a_k a_l ρ^|k−l| over the kernel's first K terms. Truncated at 15 memories (K = 15/(1 − λ)), the gap
    to the closed form lies within the truncation bound (2 Σ|a_k| Σ_{k≥K}|a_k|, up to 4% of the value here) plus
    rounding; the plain unit's kernel is positive, so its truncated sum is never above. At 60 memories the bound is
    below 1e-15: the two agree to rounding."""
    closed = m.exact(model, quantity, lam, rho)
    short, bound = m.direct_sum(model, quantity, lam, rho, memories=15)
    assert abs(closed - short) <= bound + ROUNDING * closed
    if model == "plain":
        assert short <= closed * (1 + ROUNDING)
    full, bound = m.direct_sum(model, quantity, lam, rho, memories=60)
    assert bound < 1e-15 * closed
    assert full == pytest.approx(closed, rel=ROUNDING)


@pytest.mark.numerics
def test_the_normalised_unit_stays_bounded_for_white_noise_and_grows_for_correlated_inputs():
    """ρ = 0: E[h²] = 1 and E[(∂h/∂ν)²] = (λ ln λ)²/(1 − λ²)² → 1/4 (docs/theory.md derives it); ρ < 1: limits
    (1 + ρ)/(1 − ρ) and (1 + ρ)/(4(1 − ρ)); ρ = 1: (1 + λ)/(1 − λ) and (λ ln λ)²/((1 − λ)³(1 + λ)), both ~1/(1 − λ)."""
    for lam in (*LAMS, 0.99999):
        assert m.exact("normalised", "h_sq", lam, 0) == pytest.approx(1, rel=1e-12)
        derived = (lam * math.log(lam)) ** 2 / (1 - lam ** 2) ** 2
        assert m.exact("normalised", "sens_sq", lam, 0) == pytest.approx(derived, rel=1e-9)
        assert m.exact("normalised", "h_sq", lam, 1) == pytest.approx((1 + lam) / (1 - lam), rel=1e-12)
        grows = (lam * math.log(lam)) ** 2 / ((1 - lam) ** 3 * (1 + lam))
        assert m.exact("normalised", "sens_sq", lam, 1) == pytest.approx(grows, rel=1e-6)
    near_one = 1 - 1e-6
    for rho, h_limit, sens_limit in ((0.0, 1.0, 0.25), (0.5, 3.0, 0.75)):
        assert m.limit("normalised", "h_sq", rho) == h_limit and m.limit("normalised", "sens_sq", rho) == sens_limit
        assert m.exact("normalised", "h_sq", near_one, rho) == pytest.approx(h_limit, rel=1e-5)
        assert m.exact("normalised", "sens_sq", near_one, rho) == pytest.approx(sens_limit, rel=1e-5)
    assert m.limit("normalised", "sens_sq", 1.0) == math.inf
    assert 2 * (1 - 0.999) * m.exact("normalised", "sens_sq", 0.999, 1) == pytest.approx(1, abs=2e-3)


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.ci  # the Monte Carlo (~3 s): moved out of make test for time (test-numerics and CI run it)
def test_the_monte_carlo_is_within_4_standard_errors_of_the_closed_form_everywhere(measured):
    """Every (λ, ρ, model, quantity): |measured − exact| < 4 se. The quantities are squares of Gaussians, so the se
    (sample sd / √n over independent sequences) is √(2/n) = 3.2% of the value at n = 2000 (held here within 25%:
    the sample sd's own error is ~4%), and 4 se ≈ 13%: a 4-sigma band, passed by chance with probability 1 − 6e-5."""
    worst = 0.0
    for (lam, rho), results in measured.items():
        for (model, quantity), (mean, stderr) in results.items():
            exact = m.exact(model, quantity, lam, rho)
            assert stderr / exact == pytest.approx(math.sqrt(2 / MC_N), rel=0.25), (lam, rho, model, quantity)
            z = (mean - exact) / stderr
            assert abs(z) < 4, (lam, rho, model, quantity, mean, exact, stderr)
            worst = max(worst, abs(z))
    assert worst > 0.5  # the measurement is a measurement (not the closed form fed back)
    lam = max(MC_LAMS)  # the normalised sensitivity at λ = 0.999 against its limit 1/4
    mean, stderr = measured[(lam, 0.0)][("normalised", "sens_sq")]
    assert abs(mean - 0.25) < 4 * stderr


@pytest.mark.numerics
def test_the_log_log_slopes_against_the_memory(measured):
    """Least squares over 1 − λ = 0.1 … 0.001: 1 and 3 for white noise, 2 and 4 for a constant input, within 0.05
    (the fit's own standard error is ~0.01 at n = 2000; the finite-λ bias of the fit, ≤ 0.01 on this span); the
    normalised unit's 0 and 0 (white noise) and 1 and 1 (a constant input)."""
    for model, rho, quantity, expected in [
            ("plain", 0.0, "h_sq", 1), ("plain", 0.0, "sens_sq", 3), ("plain", 1.0, "h_sq", 2),
            ("plain", 1.0, "sens_sq", 4), ("normalised", 0.0, "h_sq", 0), ("normalised", 0.0, "sens_sq", 0),
            ("normalised", 1.0, "h_sq", 1), ("normalised", 1.0, "sens_sq", 1)]:
        points = [measured[(lam, rho)][(model, quantity)] for lam in MC_LAMS]
        slope, se = m.fit_slope(MC_LAMS, [p[0] for p in points], [p[1] for p in points])
        assert m.asymptotic_slope(model, quantity, rho) == expected
        assert abs(slope - expected) < 0.05, (model, rho, quantity, slope, se)
        assert se < 0.015
    exact_slope, _ = m.fit_slope(MC_LAMS, [m.exact("plain", "h_sq", lam, 1) for lam in MC_LAMS])
    assert exact_slope == pytest.approx(2, abs=1e-9)


def test_the_monte_carlo_is_seeded_per_point():
    """The same (seed, λ, ρ) gives the same numbers whatever else the grid holds; another seed, others."""
    first = m.monte_carlo(0.9, 0.5, 50, m.rng_for(0, 0.9, 0.5))
    assert m.monte_carlo(0.9, 0.5, 50, m.rng_for(0, 0.9, 0.5)) == first
    assert m.monte_carlo(0.9, 0.5, 50, m.rng_for(1, 0.9, 0.5)) != first


def test_bad_values_raise_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"^lam=1\.0 is out of range: must be a number in \(0, 1\)"):
        m.monte_carlo(1.0, 0.0, 10, rng)
    with pytest.raises(ConfigError, match=r"^rho=1\.5 is out of range: must be a number in \[0, 1\]"):
        m.exact("plain", "h_sq", 0.9, 1.5)
    with pytest.raises(ConfigError, match=r"^n=1 is out of range: must be an integer >= 2"):
        m.monte_carlo(0.9, 0.0, 1, rng)
    with pytest.raises(ConfigError, match=r"^lam=0 is out of range"):
        m.direct_sum("plain", "h_sq", 0, 0.5)


@pytest.mark.parametrize("args,message", [
    (["memory.lambdas=[0.9,1.0]"], "memory.lambdas=1.0 is out of range: must be a number in (0, 1) (the unit's "
                                   "decay λ)"),
    (["memory.rhos=[-0.1]"], "memory.rhos=-0.1 is out of range: must be a number in [0, 1] (the inputs' "
                             "autocorrelation ρ)"),
    (["memory.n_sequences=1"], "memory.n_sequences=1 is out of range: must be an integer >= 2"),
    (["memory.lambdas=[]"], "memory.lambdas=[] is empty: give at least one λ in (0, 1), e.g. [0.9,0.99,0.999]"),
])
def test_memory_bad_input(tmp_path, args, message):
    done = run_entry("memory.py", *args, cwd=tmp_path)
    assert done.returncode != 0 and done.stderr.strip() == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_memory_stage_writes_the_table_the_slopes_and_the_figure(smoke_study):
    """The stage as `make repro` runs it (the smoke study's, conf/study/smoke.yaml: 3 λ, 3 ρ, n = 1000)."""
    out = smoke_study / "results" / "memory"
    df = pd.read_csv(out / "reference.csv")
    assert list(df.columns) == ["lambda", "rho", "model", "quantity", "exact", "measured", "stderr", "z"]
    assert len(df) == 3 * 3 * 2 * 2 and set(df.model) == {"plain", "normalised"}
    assert (df.z == (df.measured - df.exact) / df.stderr).all()
    row = df[(df["lambda"] == 0.99) & (df.rho == 1) & (df.model == "plain") & (df.quantity == "sens_sq")]
    assert row.exact.item() == pytest.approx(1e8)
    record = json.loads((out / "slopes.json").read_text())
    assert len(record["slopes"]) == 12 and record["n_sequences"] == 1000
    expected = {(s["model"], s["rho"], s["quantity"]): s["expected"] for s in record["slopes"]}
    assert expected[("plain", 1.0, "sens_sq")] == 4 and expected[("normalised", 0.0, "sens_sq")] == 0
    assert {r["rho"]: r["limit"] for r in record["normalised_sensitivity_limit"]} == {0.0: 0.25, 0.5: 0.75, 1.0: None}
    assert (out / "curse_of_memory.png").stat().st_size > 10_000
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))
