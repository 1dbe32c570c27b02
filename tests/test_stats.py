"""The intervals of gradlab.study.stats against closed forms and published tables."""

import math

import pytest

from gradlab.study.stats import binomial_cdf, clopper_pearson, median_interval, seeds_to_decide


def test_clopper_pearson_at_the_ends_is_its_closed_form():
    """k = 0: hi = 1 − (α/2)^(1/n); k = n: lo = (α/2)^(1/n) (the binomial's one term)."""
    for n in (1, 5, 10, 100):
        assert clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), abs=1e-12))
        assert clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n), abs=1e-12), 1.0)


@pytest.mark.parametrize("k,n,lo,hi", [
    (3, 10, 0.066739, 0.652453),   # the beta quantiles B(0.025; k, n − k + 1), B(0.975; k + 1, n − k), as tabulated
    (50, 100, 0.398321, 0.601679),
    (1, 5, 0.005051, 0.716417),
])
def test_clopper_pearson_is_the_beta_quantiles(k, n, lo, hi):
    """Against the beta quantiles (the interval's other form), to the 6 digits they are quoted with."""
    got = clopper_pearson(k, n)
    assert got == (pytest.approx(lo, abs=2e-6), pytest.approx(hi, abs=2e-6))
    # and by its definition: each end puts exactly α/2 of the binomial beyond k
    assert 1 - binomial_cdf(k - 1, n, got[0]) == pytest.approx(0.025, abs=1e-10)
    assert binomial_cdf(k, n, got[1]) == pytest.approx(0.025, abs=1e-10)


def test_a_bad_count_is_refused_with_its_values():
    with pytest.raises(ValueError, match="k=6 successes of n=5 trials"):
        clopper_pearson(6, 5)


def test_the_median_interval_of_order_statistics():
    """n = 5: no symmetric interval reaches 95% ([min, max] covers 1 − 2/32 = 93.75%); n = 6: [min, max] at
    96.9%; n = 10: [x_(2), x_(9)] at 97.9% ([x_(3), x_(8)] would be 89.1%)."""
    assert median_interval([1, 2, 3, 4, 5]) is None
    assert median_interval([6, 1, 5, 2, 4, 3]) == (1, 6, pytest.approx(1 - 2 / 64))
    lo, hi, coverage = median_interval(list(range(10, 0, -1)))
    assert (lo, hi) == (2, 9) and coverage == pytest.approx(1 - 2 * 11 / 1024)
    assert median_interval([1, 2, 3, 4, 5, 6, 7, math.inf, math.inf, math.inf])[1] == math.inf


def test_seeds_to_decide():
    """0 of n against 18% and 0%: hi = 1 − 0.025^(1/n) drops below 0.18 at n = 19 (ln 0.025 / ln 0.82 = 18.6)."""
    assert seeds_to_decide(0.0, 0.0, 0.18) == 19
    assert seeds_to_decide(1.0, 1.0, 0.0) == 1  # one success: lo = 0.025 > 0, "it never solves" is out
    # more seeds than we have: 1 of 3 against 1% and 47% holds both at n = 3; at n = 2 (k = round(2/3) = 1) it would
    # not, by rounding alone (the cpu profile's first record said "2 seeds")
    assert seeds_to_decide(1 / 3, 0.01, 0.47, have=3) > 3
    n = seeds_to_decide(0.5, 0.2, 0.8)  # a rate between the two: decided once the interval is narrower than ±0.3
    lo, hi = clopper_pearson(round(n / 2), n)
    assert not (lo <= 0.2 and hi >= 0.8)
    lo, hi = clopper_pearson(round((n - 1) / 2), n - 1)
    assert lo <= 0.2 and hi >= 0.8
    assert seeds_to_decide(0.5, 0.2, 0.8, most=n - 1) is None
