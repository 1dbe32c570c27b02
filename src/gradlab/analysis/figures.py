"""The analysis stage's figures: the angle sets beside random vectors, and a Lyapunov spectrum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradlab.core.figures import plt, save


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
