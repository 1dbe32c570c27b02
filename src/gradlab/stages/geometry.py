"""Stage `geometry`: the curse-of-dimensionality experiment against exact theory -> results/geometry/ (a table,
six figures and a wandb run)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gradlab.core.choices import Distribution
from gradlab.core.conf import as_dict
from gradlab.core.figures import save
from gradlab.core.runfolder import atomic_write_bytes
from gradlab.theory import geometry as g
from gradlab.theory.geometry_config import GeometryConfig
from gradlab.tracking.loggers import log_once

COLUMNS = ["distribution", "D", "statistic", "value", "theory"]
EXACT_ANGLES = (Distribution.gaussian, Distribution.sphere)  # the angle density sin^(D-2) is exact for these


def reference_rows(cfg: GeometryConfig) -> tuple[list[dict[str, Any]], dict[tuple[str, int], np.ndarray]]:
    """Every statistic with its theory value (NaN where there is none), and the angle samples for histograms."""
    p = cfg.geometry
    gen = torch.Generator().manual_seed(cfg.seed)
    rows: list[dict[str, Any]] = []
    angles: dict[tuple[str, int], np.ndarray] = {}

    def add(dist: str, D: int, stat: str, value: float, theory: float = math.nan) -> None:
        rows.append({"distribution": str(dist), "D": D, "statistic": stat, "value": value, "theory": theory})

    for dist in p.distributions:
        for D in p.dims:
            pairs = g.random_pairs(dist, D, p.n_pairs, gen)
            s = g.summary(pairs, D)
            angles[(dist, D)] = pairs.angle_deg.numpy()
            exact = dist in EXACT_ANGLES and D >= 2
            add(dist, D, "angle_mean_deg", s["angle_mean_deg"], 90.0 if D >= 2 else math.nan)
            add(dist, D, "angle_sd_deg", s["angle_sd_deg"], g.angle_sd_deg(D) if exact else math.nan)
            add(dist, D, "cos_var_times_D", s["cos_var_times_D"], 1.0)
            add(dist, D, "dist_sq_mean_over_D", s["dist_sq_mean_over_D"], g.dist_sq_mean_over_D(dist, D))
            add(dist, D, "dist_mean", s["dist_mean"])
            add(dist, D, "dist_sd", s["dist_sd"], math.sqrt(7 / 120) if dist == Distribution.cube and D >= 100
                else math.nan)
            rc, _ = g.relative_contrast(dist, D, p.n_points, p.n_queries, gen)
            add(dist, D, "relative_contrast", rc)
            add(dist, D, "relative_contrast_times_sqrtD", rc * math.sqrt(D))
    for D in p.dims:
        exact = g.shell_fraction(p.epsilon, D)
        add("ball", D, "shell_fraction", exact, exact)
        if D <= p.mc_max_dim:
            mc, se, _ = g.shell_fraction_mc(p.epsilon, D, p.mc_samples, gen)
            add("ball", D, "shell_fraction_mc", mc, exact)
            add("ball", D, "shell_fraction_mc_se", se)
        ratio = g.ball_cube_ratio(D)
        add("ball", D, "ball_cube_ratio", ratio, ratio)
        add("ball", D, "log10_ball_cube_ratio", g.log10_ball_cube_ratio(D), g.log10_ball_cube_ratio(D))
        for stat, value in g.spiky_cube(D).items():
            add("cube", D, stat, value, value)
    return rows, angles


def figures(df: pd.DataFrame, angles: dict[tuple[str, int], np.ndarray], cfg: GeometryConfig, out: Path) -> dict:
    import matplotlib.pyplot as plt

    p = cfg.geometry
    made: dict[str, Path] = {}
    dims = [D for D in p.dims if D >= 2]
    if dims:  # the article's figure: angle histograms per D, the exact density over them
        cols = min(4, len(dims))
        rows = math.ceil(len(dims) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, D in zip(axes.flat, dims, strict=False):
            for i, dist in enumerate(p.distributions):
                ax.hist(angles[(dist, D)], bins=p.histogram_bins, range=(0, 180), density=True, alpha=0.45,
                        color=f"C{i}", label=dist)
            t = np.linspace(0, 180, 721)
            ax.plot(t, g.angle_density(np.radians(t), D).numpy() * math.pi / 180, "k", lw=1, label="exact")
            ax.set_title(f"D = {D}", fontsize=9)
            ax.set_yticks([])
        for ax in list(axes.flat)[len(dims):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"angle between two random vectors (degrees), {p.n_pairs} pairs", fontsize=10)
        made["angle_histograms"] = save(fig, out / "angle_histograms.png")

    def versus_d(stats: list[tuple[str, str]], title: str, name: str, logy: bool = False) -> None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for dist_i, dist in enumerate(sorted(df.distribution.unique())):
            for stat, style in stats:
                sel = df[(df.distribution == dist) & (df.statistic == stat)].sort_values("D")
                if sel.empty:
                    continue
                ax.plot(sel.D, sel.value, style, color=f"C{dist_i}", ms=4, label=f"{dist} {stat}")
                if sel.theory.notna().any():
                    ax.plot(sel.D, sel.theory, "--", color=f"C{dist_i}", lw=0.8, alpha=0.8)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("dimension D")
        ax.set_title(title + " (dashed: theory)", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
        made[name] = save(fig, out / f"{name}.png")

    versus_d([("angle_sd_deg", "o-")], "sd of the angle (degrees)", "angle_sd_vs_D", logy=True)
    versus_d([("relative_contrast", "o-")], f"relative contrast (Dmax−Dmin)/Dmin, {p.n_points} points",
             "relative_contrast_vs_D", logy=True)
    versus_d([("dist_mean", "o-"), ("dist_sd", "s:")], "distance mean and sd", "distances_vs_D", logy=True)
    versus_d([("shell_fraction", "-"), ("shell_fraction_mc", "o")], f"volume fraction in the outer "
             f"{p.epsilon:g}-shell", "shell_fraction_vs_D")
    versus_d([("log10_ball_cube_ratio", "o-")], "log10 vol(unit ball) / vol([−1,1]^D)", "ball_cube_ratio_vs_D")
    return made


def wandb_payload(wandb: Any, df: pd.DataFrame, angles: dict, made: dict) -> dict[str, Any]:
    """The geometry run's one wandb log: the figures, a histogram per (distribution, D), line series, the table."""
    payload: dict[str, Any] = {f"geometry/{k}": wandb.Image(str(v)) for k, v in made.items()}
    for (dist, D), a in angles.items():
        payload[f"geometry/angle_hist/{dist}_D{D}"] = wandb.Histogram(np_histogram=np.histogram(a, bins=90,
                                                                                                range=(0, 180)))
    for stat in ("angle_sd_deg", "relative_contrast", "dist_mean"):
        sel = df[df.statistic == stat]
        dists = sorted(sel.distribution.unique())
        payload[f"geometry/line/{stat}_vs_D"] = wandb.plot.line_series(  # not the figure's key
            xs=sorted(sel.D.unique()), keys=dists, title=f"{stat} vs D", xname="D",
            ys=[sel[sel.distribution == d].sort_values("D").value.tolist() for d in dists])
    payload["geometry/reference"] = wandb.Table(dataframe=df)
    return payload


def run(cfg: GeometryConfig) -> pd.DataFrame:
    started = time.perf_counter()
    out = Path(cfg.out_dir)
    rows, angles = reference_rows(cfg)
    df = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write_bytes(out / "reference.csv", df.to_csv(index=False).encode())
    made = figures(df, angles, cfg, out / "figures")
    where = log_once(cfg.logger, "geometry-reference", out, as_dict(cfg),
                     lambda wandb: wandb_payload(wandb, df, angles, made))
    checks = df[df.theory.notna() & df.statistic.isin(["cos_var_times_D", "angle_sd_deg", "dist_sq_mean_over_D"])]
    worst = (checks.value / checks.theory - 1).abs().max() if len(checks) else math.nan
    print(f"geometry: {len(cfg.geometry.distributions)} distributions x {len(cfg.geometry.dims)} dimensions, "
          f"{cfg.geometry.n_pairs} pairs each, in {time.perf_counter() - started:.1f}s; largest relative gap to "
          f"theory (cos variance, angle sd, mean squared distance): {worst:.3%}")
    print(f"results:     {out}/reference.csv, {out}/figures/ ({len(made)} figures)")
    if where:
        print(f"wandb run:   {where}")
    return df
