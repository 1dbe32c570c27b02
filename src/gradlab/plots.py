"""Figures of gradlab's tidy tables (matplotlib, Agg backend: no display needed), written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gradlab.runfolder import atomic_write_bytes  # noqa: E402


def save(fig: plt.Figure, path: Path) -> Path:
    """PNG via a temporary file and rename, so a killed run never leaves a half-written image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


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


def angle_sets(angles: dict, dims: dict[str, int], title: str, path: Path) -> Path:
    """Histogram of pair angles of each vector set, beside gaussian vectors of the same dimension."""
    names = [n for n in angles if not n.endswith("/random")]
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 2.8), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=True):
        ax.hist(angles[name].numpy(), bins=60, range=(0, 180), density=True, alpha=0.6, color="C0", label="network")
        ax.hist(angles[f"{name}/random"].numpy(), bins=60, range=(0, 180), density=True, alpha=0.5, color="C7",
                label=f"random, D={dims[name]}")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xlabel("angle between pairs (degrees)", fontsize=8)
        ax.set_yticks([])
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10, y=1.04)
    return save(fig, path)


def lyapunov_spectra(table: pd.DataFrame, decay_rate: float | None, title: str, path: Path) -> Path:
    """The finite-time Lyapunov exponents by index, one line per `when` (init, trained), with the probe's measured
    gradient decay rate as a horizontal line (λ_1 is the rate it comes from)."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for when, sel in table.groupby("when", sort=False):
        ax.plot(sel["index"] + 1, sel["exponent"], marker="o", ms=3, label=str(when))
    if decay_rate is not None and np.isfinite(decay_rate):
        ax.axhline(decay_rate, color="k", ls="--", lw=1, label="measured ∂ℓ/∂h decay rate (trained)")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set(xlabel="index i", ylabel="λ_i (ln per step)", title=title)
    ax.legend(fontsize=8)
    return save(fig, path)


def cliff(surface: pd.DataFrame, trajectories: pd.DataFrame, walls: pd.DataFrame, title: str, path: Path) -> Path:
    """log10 ‖∇ℓ‖ over (w, b), with SGD trajectories (one line per `run`) drawn on it, clipped to the map's extent
    (an unclipped step off the wall leaves it), and the walls' resolved maxima (`walls`: b, w_at_max,
    grad_norm_max), which the grid's cells are too coarse to show."""
    table = surface.pivot(index="b", columns="w", values="grad_norm").sort_index()
    w, b = table.columns.to_numpy(), table.index.to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mesh = ax.pcolormesh(w, b, np.log10(table.to_numpy() + 1e-300), shading="auto", cmap="magma")
    fig.colorbar(mesh, ax=ax, label="log10 ‖∇ℓ‖")
    for run, sel in trajectories.groupby("run", sort=False):
        inside = sel[(sel.w >= w.min()) & (sel.w <= w.max()) & (sel.b >= b.min()) & (sel.b <= b.max())]
        left = len(inside) < len(sel)
        ax.plot(inside.w, inside.b, marker=".", ms=3, lw=1,
                label=f"{run}" + (" (thrown off the map)" if left else ""))
    ax.scatter(walls.w_at_max, walls.b, marker="x", color="w", s=30, zorder=3,
               label=f"wall, resolved: ‖∇ℓ‖ up to {walls.grad_norm_max.max():.2g}")
    ax.set(xlim=(w.min(), w.max()), ylim=(b.min(), b.max()), xlabel="w", ylabel="b", title=title)
    ax.legend(fontsize=8, loc="lower left")
    return save(fig, path)


def lyapunov_vs_decay(df: pd.DataFrame, title: str, path: Path) -> Path:
    """One point per run: the probe's measured ∂ℓ/∂h decay rate (x) against λ_1 (y), per model, with y = x drawn."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    for model, sel in df.groupby("model", sort=False):
        ax.scatter(sel.bptt_decay_rate, sel.lyapunov_max, s=18, label=str(model))
    lo = float(np.nanmin([df.bptt_decay_rate.min(), df.lyapunov_max.min()]))
    hi = float(np.nanmax([df.bptt_decay_rate.max(), df.lyapunov_max.max(), 0.0]))
    ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=1, label="λ_1 = measured rate")
    ax.set(xlabel="measured decay rate of ‖∂ℓ/∂h_t‖ (ln per step)", ylabel="λ_1 (ln per step)", title=title)
    ax.legend(fontsize=8)
    return save(fig, path)
