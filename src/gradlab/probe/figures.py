"""The probe's figures: ‖∂ℓ/∂h_t‖ against t per probe, as a heatmap over training, and several runs' last probes."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from gradlab.core.figures import plt, save


def _curves(rows: pd.DataFrame, quantity: str, layer: int) -> pd.DataFrame:
    """steps x t table of one quantity of one layer."""
    sel = rows[(rows.quantity == quantity) & (rows.layer == layer)]
    return sel.pivot(index="step", columns="t", values="value").sort_index()


def norm_vs_t(rows: pd.DataFrame, quantity: str, layer: int, title: str, path: Path) -> Path:
    """One line per probe (colour = training step), log scale: how far back the gradient reaches, over training."""
    table = _curves(rows, quantity, layer)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    cmap = plt.get_cmap("viridis")
    steps = table.index.to_list()
    for i, step in enumerate(steps):
        values = table.loc[step].to_numpy(dtype=float)
        values = np.where(values > 0, values, np.nan)  # an underflow to 0 is off the log scale
        ax.plot(table.columns, values, color=cmap(i / max(1, len(steps) - 1)), lw=1.2,
                label=f"step {step}" if i in (0, len(steps) - 1) else None)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel(quantity.replace("dL_dh_norm", "‖∂L/∂h_t‖").replace("dL_dc_norm", "‖∂L/∂c_t‖"))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return save(fig, path)


def heatmap(rows: pd.DataFrame, quantity: str, layer: int, title: str, path: Path) -> Path:
    """log10 of a per-step quantity over (training step, t)."""
    table = _curves(rows, quantity, layer)
    values = table.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.where(values > 0, np.log10(values), np.nan)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    im = ax.imshow(logv, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                   extent=(-0.5, values.shape[1] - 0.5, -0.5, values.shape[0] - 0.5))
    ax.set_yticks(range(len(table.index)), [str(s) for s in table.index], fontsize=7)
    if len(table.index) > 12:
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(8, integer=True))
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step (probe)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=f"log10 {quantity}")
    return save(fig, path)


def compare_final_probes(tables: dict[str, pd.DataFrame], title: str, path: Path, layer: int = 0) -> Path:
    """The last probe of several runs side by side: ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ relative to their value at t=T-1. Runs
    named `<name> s<seed>` that differ only in the seed are one line, the median over the seeds, with the band from
    the lowest to the highest."""
    import re

    groups: dict[str, list[pd.DataFrame]] = {}
    for name, df in tables.items():
        groups.setdefault(re.sub(r" s\d+$", "", name), []).append(df)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, quantity, label in zip(axes, ("dL_dh_norm", "dL_dc_norm"), ("‖∂L/∂h_t‖", "‖∂L/∂c_t‖"), strict=True):
        for i, (name, frames) in enumerate(groups.items()):
            curves, steps = [], set()
            for df in frames:
                sel = df[(df.quantity == quantity) & (df.layer == layer) & (df.step == df.step.max())].sort_values("t")
                if sel.empty:
                    continue
                values = sel.value.to_numpy(dtype=float)
                curves.append(pd.Series(np.where(values > 0, values / values[-1], np.nan), index=sel.t.to_numpy()))
                steps.add(int(sel.step.iloc[0]))
            if not curves:
                continue
            table = pd.concat(curves, axis=1)
            at = f"step {steps.pop()}" if len(steps) == 1 else "last probes"
            n = table.shape[1]
            ax.plot(table.index, table.median(axis=1), lw=1.5, color=f"C{i}",
                    label=f"{name} ({at}" + (f"; median of {n} seeds, band min-max)" if n > 1 else ")"))
            if n > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=f"C{i}", alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_title(f"{label} / its value at t=T-1", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
