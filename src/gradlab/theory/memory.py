"""The curse of memory (Zucchet & Orvieto 2024): one linear unit h_{t+1} = λ h_t + x_t, driven by stationary inputs
of unit variance with E[x_t x_{t+Δ}] = ρ^|Δ| (an AR(1) process; ρ = 1: one constant input per sequence). As λ → 1
its state's variance and, faster, its sensitivity to λ blow up, though the backward factor λ^(T−t) stays ≤ 1. The
LRU's remedy (Orvieto et al. 2023): h_{t+1} = λ h_t + γ x_t with γ = √(1 − λ²) and λ = exp(−exp(ν)).

Three ways to the same numbers: the closed forms; exact sums over lags of the unit's impulse response (the check of
the closed forms); and a Monte Carlo of the recurrence itself, with the sensitivities by their forward recurrences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from gradlab.theory.memory_config import check_memory

MODELS = ("plain", "normalised")
# h_sq: E[h²]; sens_sq: E[(∂h/∂λ)²] of the plain unit, E[(∂h/∂ν)²] (the total derivative, through λ and γ) of the
# normalised one: the squared sensitivity to the parameter that is trained
QUANTITIES = ("h_sq", "sens_sq")
BURN_IN = 20  # Monte Carlo burn-in from the zero state, in memories 1/(1 − λ): the start's trace is ≤ 20 e^-20


def plain_h_sq(lam, rho):
    """E[h²] = (1 + ρλ) / ((1 − ρλ)(1 − λ²))."""
    return (1 + rho * lam) / ((1 - rho * lam) * (1 - lam ** 2))


def plain_sens_sq(lam, rho):
    """E[(∂h/∂λ)²] = [(1 + λ²)(1 − λ²ρ²) + 2(1 − λ²)λρ] / [(1 − λ²)³ (1 − λρ)²]."""
    return (((1 + lam ** 2) * (1 - lam ** 2 * rho ** 2) + 2 * (1 - lam ** 2) * lam * rho)
            / ((1 - lam ** 2) ** 3 * (1 - lam * rho) ** 2))


def normalised_h_sq(lam, rho):
    """E[h²] = γ² E_plain[h²] = (1 + ρλ) / (1 − ρλ): 1 for white noise, 2/(1 − λ) at ρ = 1 as λ → 1."""
    return (1 + rho * lam) / (1 - rho * lam)


def normalised_sens_sq(lam, rho):
    """E[(∂h/∂ν)²] = (λ ln λ)² [(1 − λ²) E[s²] − E[h²] (λ²/(1 − λ²) + 2λρ/(1 − ρ²λ²))], E[h²] and E[s²] the plain
    unit's, s = ∂h/∂λ. From ∂h̃/∂ν = (dλ/dν)(γ' h + γ s), dλ/dν = λ ln λ, γ' = −λ/γ, and E[h s] = ½ dE[h²]/dλ.
    White noise: (λ ln λ)² / (1 − λ²)² → 1/4; ρ < 1: → (1 + ρ)/(4(1 − ρ)); ρ = 1: 1/((1 − λ)³(1 + λ)) · (λ ln λ)²."""
    a, b = plain_h_sq(lam, rho), plain_sens_sq(lam, rho)
    bracket = (1 - lam ** 2) * b - a * (lam ** 2 / (1 - lam ** 2) + 2 * lam * rho / (1 - rho ** 2 * lam ** 2))
    return (lam * np.log(lam)) ** 2 * bracket


CLOSED_FORMS: dict[tuple[str, str], Callable] = {
    ("plain", "h_sq"): plain_h_sq, ("plain", "sens_sq"): plain_sens_sq,
    ("normalised", "h_sq"): normalised_h_sq, ("normalised", "sens_sq"): normalised_sens_sq}


def exact(model: str, quantity: str, lam: float, rho: float) -> float:
    """The closed form of one quantity of one model at (λ, ρ)."""
    check_memory(lam=lam, rho=rho)
    return float(CLOSED_FORMS[(model, quantity)](lam, rho))


def limit(model: str, quantity: str, rho: float) -> float:
    """The quantity as λ → 1 (inf where it grows without bound): the plain unit's always; the normalised unit's
    (1 + ρ)/(1 − ρ) and (1 + ρ)/(4(1 − ρ)) for ρ < 1 (1 and 1/4 for white noise), unbounded at ρ = 1."""
    check_memory(rho=rho)
    if model == "plain" or rho == 1:
        return math.inf
    return (1 + rho) / (1 - rho) / (4 if quantity == "sens_sq" else 1)


def asymptotic_slope(model: str, quantity: str, rho: float) -> int:
    """d ln(quantity) / d ln(1/(1 − λ)) as λ → 1: plain 1 and 3 (ρ < 1), 2 and 4 (ρ = 1); normalised 0 and 0
    (ρ < 1), 1 and 1 (ρ = 1)."""
    check_memory(rho=rho)
    if model == "normalised":
        return int(rho == 1)
    return (1 if quantity == "h_sq" else 3) + int(rho == 1)


# ---- exact sums over lags: quantity = Σ_{k,l ≥ 0} a_k a_l ρ^|k−l|, a the unit's impulse response ----

def kernel(model: str, quantity: str, lam: float, n_terms: int) -> tuple[np.ndarray, float, float]:
    """The first n_terms coefficients a_k of h_t (or of its sensitivity) = Σ_k a_k x_{t−1−k}, and (α, β) with
    |a_k| ≤ (α + βk) λ^k, for the truncation bound."""
    k = np.arange(n_terms, dtype=np.float64)
    gamma, log_lam = math.sqrt(1 - lam ** 2), math.log(lam)
    if (model, quantity) == ("plain", "h_sq"):
        return lam ** k, 1.0, 0.0
    if (model, quantity) == ("plain", "sens_sq"):  # ∂λ^k/∂λ = k λ^(k−1)
        return k * lam ** np.maximum(k - 1, 0), 0.0, 1 / lam
    if (model, quantity) == ("normalised", "h_sq"):
        return gamma * lam ** k, gamma, 0.0
    # ∂(γ λ^k)/∂ν = λ ln λ (γ k λ^(k−1) − (λ/γ) λ^k) = ln λ (γ k − λ²/γ) λ^k
    return log_lam * (gamma * k - lam ** 2 / gamma) * lam ** k, abs(log_lam) * lam ** 2 / gamma, abs(log_lam) * gamma


def lag_sum(a: np.ndarray, rho: float) -> float:
    """Σ_Δ ρ^|Δ| C(Δ), C(Δ) = Σ_k a_k a_{k+|Δ|} the autocorrelation of the kernel (by FFT: O(K log K), rounding
    ~1e-13 relative)."""
    size = 1 << (2 * len(a) - 1).bit_length()
    spectrum = np.fft.rfft(a, size)
    c = np.fft.irfft(spectrum * np.conj(spectrum), size)[:len(a)]
    weights = rho ** np.arange(len(a), dtype=np.float64)  # 0**0 == 1: white noise keeps only C(0)
    return float(c[0] + 2 * np.dot(weights[1:], c[1:]))


def direct_sum(model: str, quantity: str, lam: float, rho: float, memories: float = 60.0) -> tuple[float, float]:
    """The quantity as an exact sum over lags with K = ⌈memories/(1 − λ)⌉ terms of the kernel, and the bound on what
    the truncation leaves out: every omitted pair has an index ≥ K and |ρ^|Δ|| ≤ 1, so it is at most
    2 (Σ_k |a_k|)(Σ_{k≥K} |a_k|) ≤ 2 [α/(1−λ) + βλ/(1−λ)²] · λ^K [α/(1−λ) + β(K/(1−λ) + λ/(1−λ)²)]."""
    check_memory(lam=lam, rho=rho)
    n_terms = math.ceil(memories / (1 - lam))
    a, alpha, beta = kernel(model, quantity, lam, n_terms)
    total = alpha / (1 - lam) + beta * lam / (1 - lam) ** 2
    tail = lam ** n_terms * (alpha / (1 - lam) + beta * (n_terms / (1 - lam) + lam / (1 - lam) ** 2))
    return lag_sum(a, rho), 2 * total * tail


# ---- Monte Carlo of the recurrences ----

def rng_for(seed: int, lam: float, rho: float) -> np.random.Generator:
    """An independent stream for each (λ, ρ), the same whatever else the grid holds."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(round(lam * 1e9), round(rho * 1e9))))


def monte_carlo(lam: float, rho: float, n: int, rng: np.random.Generator) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, quantity) -> (mean, standard error) over n independent sequences, each burnt in from the zero state for
    ⌈BURN_IN/(1 − λ)⌉ steps (the input starts stationary, x_0 ~ N(0, 1)) and read once at its last step. Standard
    error: the sample sd of the squared quantity / √n (≈ √(2/n) × the mean: the quantity is Gaussian)."""
    check_memory(lam=lam, rho=rho, n=n)
    gamma, innovation = math.sqrt(1 - lam ** 2), math.sqrt(1 - rho ** 2)
    dgamma = -lam / gamma  # dγ/dλ
    x = rng.standard_normal(n)
    h, s, ht, u, xi, tmp = (np.zeros(n) for _ in range(6))  # ht: the normalised unit's h̃; u = ∂h̃/∂λ
    for _ in range(math.ceil(BURN_IN / (1 - lam))):
        s *= lam
        s += h  # s_{t+1} = λ s_t + h_t: ∂h_{t+1}/∂λ
        h *= lam
        h += x  # h_{t+1} = λ h_t + x_t
        u *= lam
        u += ht
        u += np.multiply(x, dgamma, out=tmp)  # u_{t+1} = λ u_t + h̃_t + γ' x_t: through λ and through γ
        ht *= lam
        ht += np.multiply(x, gamma, out=tmp)  # h̃_{t+1} = λ h̃_t + γ x_t
        if innovation:  # x_{t+1} = ρ x_t + √(1 − ρ²) ξ_t (ρ = 1: the input stays constant)
            x *= rho
            x += np.multiply(rng.standard_normal(out=xi), innovation, out=tmp)
    sens_nu = lam * math.log(lam) * u  # ∂h̃/∂ν = (dλ/dν) ∂h̃/∂λ, dλ/dν = λ ln λ for λ = exp(−exp(ν))
    samples = {("plain", "h_sq"): h ** 2, ("plain", "sens_sq"): s ** 2,
               ("normalised", "h_sq"): ht ** 2, ("normalised", "sens_sq"): sens_nu ** 2}
    return {key: (float(v.mean()), float(v.std(ddof=1) / math.sqrt(n))) for key, v in samples.items()}


def fit_slope(lams: Iterable[float], values: Iterable[float],
              stderrs: Iterable[float] | None = None) -> tuple[float, float]:
    """The least-squares slope of ln(value) against ln(1/(1 − λ)), and its standard error from the points' own
    (relative error stderr/value, independent points; NaN without stderrs or with fewer than two λ)."""
    x = -np.log1p(-np.asarray(list(lams), dtype=np.float64))
    y = np.log(np.asarray(list(values), dtype=np.float64))
    if len(x) < 2:
        return math.nan, math.nan
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # slope = Σ w_i y_i
    slope = float(w @ y)
    if stderrs is None:
        return slope, math.nan
    rel = np.asarray(list(stderrs), dtype=np.float64) / np.exp(y)
    return slope, float(np.sqrt((w ** 2 * rel ** 2).sum()))
