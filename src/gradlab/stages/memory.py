"""Stage `memory`: the curse of memory (Zucchet & Orvieto 2024), one linear unit measured against its closed forms
-> results/memory/ (a table, the fitted slopes, one figure and a wandb run)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gradlab.core.conf import as_dict
from gradlab.core.figures import save
from gradlab.core.runfolder import atomic_write_bytes, write_json
from gradlab.theory import memory as m
from gradlab.theory.memory_config import MemoryConfig
from gradlab.tracking.loggers import log_once

COLUMNS = ["lambda", "rho", "model", "quantity", "exact", "measured", "stderr", "z"]
LABELS = {("plain", "h_sq"): "E[h²]", ("plain", "sens_sq"): "E[(∂h/∂λ)²]",
          ("normalised", "h_sq"): "E[h²]", ("normalised", "sens_sq"): "E[(∂h/∂ν)²]"}


def finite(value: float) -> float | None:
    """A number for the JSON record: None where there is none (JSON has no NaN or inf)."""
    return float(value) if math.isfinite(value) else None


def shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def reference_rows(cfg: MemoryConfig) -> pd.DataFrame:
    """Every (λ, ρ, model, quantity): the closed form, the Monte Carlo mean, its standard error and z."""
    p = cfg.memory
    rows: list[dict[str, Any]] = []
    for rho in p.rhos:
        for lam in sorted(p.lambdas):
            measured = m.monte_carlo(lam, rho, p.n_sequences, m.rng_for(cfg.seed, lam, rho))
            for (model, quantity), (mean, stderr) in measured.items():
                exact = m.exact(model, quantity, lam, rho)
                rows.append({"lambda": lam, "rho": rho, "model": model, "quantity": quantity, "exact": exact,
                             "measured": mean, "stderr": stderr, "z": (mean - exact) / stderr})
    return pd.DataFrame(rows, columns=COLUMNS)


def slopes(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (model, ρ, quantity): the log-log slope against 1/(1 − λ) fitted on the measured points (with its standard
    error), the same fit on the closed form at those λ, and the slope as λ → 1."""
    out = []
    for (model, rho, quantity), sel in df.groupby(["model", "rho", "quantity"], sort=False):
        slope, se = m.fit_slope(sel["lambda"], sel.measured, sel.stderr)
        exact_fit, _ = m.fit_slope(sel["lambda"], sel.exact)
        out.append({"model": model, "rho": rho, "quantity": quantity, "measured": finite(slope),
                    "stderr": finite(se), "exact_fit": finite(exact_fit),
                    "expected": m.asymptotic_slope(model, quantity, rho)})
    return out


def limits(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The normalised unit's sensitivity at the largest λ measured, beside the closed form there and its λ → 1
    limit ((1 + ρ)/(4(1 − ρ)): 1/4 for white noise; none at ρ = 1)."""
    sel = df[(df.model == "normalised") & (df.quantity == "sens_sq") & (df["lambda"] == df["lambda"].max())]
    return [{"rho": r.rho, "lambda": r["lambda"], "measured": r.measured, "stderr": r.stderr, "exact": r.exact,
             "limit": finite(m.limit("normalised", "sens_sq", r.rho))} for _, r in sel.iterrows()]


def figure(df: pd.DataFrame, path: Path) -> Path:
    """Both quantities of both models against 1/(1 − λ), log-log: the closed forms as lines, the measured points
    with their error bars (±2 standard errors), one colour per ρ."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), squeeze=False)
    lo, hi = df["lambda"].min(), df["lambda"].max()
    lams = 1 - np.geomspace(1 - lo, 1 - hi, 200) if hi > lo else np.array([lo])
    for row, model in enumerate(m.MODELS):
        for col, quantity in enumerate(m.QUANTITIES):
            ax = axes[row][col]
            for i, rho in enumerate(sorted(df.rho.unique())):
                sel = df[(df.model == model) & (df.quantity == quantity) & (df.rho == rho)].sort_values("lambda")
                ax.plot(1 / (1 - lams), m.CLOSED_FORMS[(model, quantity)](lams, rho), "-", color=f"C{i}", lw=1,
                        label=f"ρ = {rho:g} (exact)")
                ax.errorbar(1 / (1 - sel["lambda"]), sel.measured, yerr=2 * sel.stderr, fmt="o", ms=3.5,
                            color=f"C{i}", capsize=2, label=f"ρ = {rho:g} (measured ±2 se)")
                if model == "normalised" and math.isfinite(limit := m.limit(model, quantity, rho)):
                    ax.axhline(limit, color=f"C{i}", ls=":", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("memory 1/(1 − λ)")
            ax.set_title(f"{model}: {LABELS[(model, quantity)]}", fontsize=10)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("The curse of memory: plain h ← λh + x; normalised h ← λh + √(1−λ²)x, λ = exp(−exp ν)\n"
                 "inputs of unit variance, E[x_t x_(t+Δ)] = ρ^|Δ|; dotted: the normalised unit's λ → 1 limits",
                 fontsize=10)
    fig.subplots_adjust(hspace=0.35, wspace=0.25, top=0.88)
    return save(fig, path)


def wandb_payload(wandb: Any, df: pd.DataFrame, fitted: list[dict], figure_path: Path) -> dict[str, Any]:
    """The memory run's one wandb log: the figure, the table, every fitted slope and the largest |z|."""
    payload: dict[str, Any] = {"memory/curse_of_memory": wandb.Image(str(figure_path)),
                               "memory/reference": wandb.Table(dataframe=df), "memory/max_abs_z": df.z.abs().max()}
    for s in fitted:
        payload[f"memory/slope/{s['model']}/rho{s['rho']:g}/{s['quantity']}"] = s["measured"]
    return payload


def run(cfg: MemoryConfig) -> pd.DataFrame:
    started = time.perf_counter()
    out = Path(cfg.out_dir)
    df = reference_rows(cfg)
    atomic_write_bytes(out / "reference.csv", df.to_csv(index=False).encode())
    fitted = slopes(df)
    n = cfg.memory.n_sequences
    write_json(out / "slopes.json", {
        "slopes": fitted, "normalised_sensitivity_limit": limits(df), "max_abs_z": float(df.z.abs().max()),
        "n_sequences": n, "relative_stderr": math.sqrt(2 / n),
        "monte_carlo": f"{n} independent sequences per (lambda, rho), burnt in from the zero state for "
                       f"ceil({m.BURN_IN}/(1 - lambda)) steps and read once at the last step; stderr = sample sd / "
                       "sqrt(n); the plain and normalised units share each sequence's inputs",
        "slopes_note": "measured: least-squares slope of ln(measured) against ln(1/(1 - lambda)) over the grid, "
                       "stderr propagated from the points'; exact_fit: the same fit on the closed form; expected: "
                       "the slope as lambda -> 1"})
    made = figure(df, out / "curse_of_memory.png")
    where = log_once(cfg.logger, "memory-reference", out, as_dict(cfg),
                     lambda wandb: wandb_payload(wandb, df, fitted, made))
    print(f"memory: {len(cfg.memory.lambdas)} λ x {len(cfg.memory.rhos)} ρ, {n} sequences each (relative standard "
          f"error {math.sqrt(2 / n):.1%}), in {time.perf_counter() - started:.1f}s; largest |z| against the closed "
          f"forms: {df.z.abs().max():.2f}")
    for s in fitted:
        print(f"  slope {s['model']:10s} ρ={s['rho']:<4g} {s['quantity']:8s} {shown(s['measured'])} ± "
              f"{shown(s['stderr'])} (closed form on the grid {shown(s['exact_fit'])}; λ → 1: {s['expected']})")
    print(f"results:     {out}/reference.csv, {out}/slopes.json, {made}")
    if where:
        print(f"wandb run:   {where}")
    return df
