"""The reproduction table as a forest plot, the literature section's first figure: one line per judged claim, the
paper's number a mark (with its own 95% interval where it says how many runs it counted), ours a bar (the interval
over the seeds, gradlab.study.judging) with its point, coloured by the verdict. Rates on a linear axis from 0 to 1,
sequences to solve on a log axis, each kind its own panel."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from gradlab.core.figures import plt, save
from gradlab.report.figures import RC
from gradlab.study.judging import verdict_kind

COLOURS = {"consistent": "#1a7f37", "inconsistent": "#cf222e", "too few seeds": "#bf8700", "under budget": "#6e7781"}
PANELS = (("rate", "share of runs meeting the claim's criterion"), ("central", "training sequences to solve (log)"))


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _label(row: pd.Series) -> str:
    source = str(row["source"]).split(",")[0].replace(" & ", "&").replace(" et al.", "")
    extra = f" ν₀={row['task.nu0']:g}" if "task.nu0" in row and _number(row["task.nu0"]) is not None else ""
    return f"{source} · {row['model']} T={row['T']}{extra}"


def judged_rows(repro: pd.DataFrame) -> pd.DataFrame:
    """The rows the plot draws: a kind, a paper's number and a verdict of the four."""
    if repro is None or repro.empty or "kind" not in repro:
        return pd.DataFrame()
    keep = repro[repro.kind.isin([k for k, _ in PANELS]) & repro["theirs value"].map(_number).notna()
                 & repro.verdict.map(lambda v: verdict_kind(str(v)) in COLOURS)]
    return keep.reset_index(drop=True)


def forest_figure(repro: pd.DataFrame, path: Path) -> Path | None:
    """The figure (module docstring); None where no row has a verdict with an interval to draw."""
    rows = judged_rows(repro)
    if rows.empty:
        return None
    kinds = [(k, title) for k, title in PANELS if (rows.kind == k).any()]
    heights = [int((rows.kind == k).sum()) + 1 for k, _ in kinds]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 0.42 * sum(heights) + 1.3 * len(kinds)), squeeze=False,
                                 gridspec_kw={"height_ratios": heights})
        for ax, (kind, title) in zip(axes[:, 0], kinds, strict=True):
            sel = rows[rows.kind == kind]
            finite = [v for c in ("ours lo", "ours hi", "theirs value", "theirs hi") for v in sel[c].map(_number)
                      if v is not None and math.isfinite(v)]
            right = 1.0 if kind == "rate" else 3 * max(finite)  # where a bar open to +inf (never solved) ends
            for y, (_, r) in enumerate(sel.iloc[::-1].iterrows()):
                colour = COLOURS[verdict_kind(str(r.verdict))]
                lo, hi, point = (_number(r[f"ours {k}"]) for k in ("lo", "hi", "point"))
                if lo is not None and hi is not None:
                    ax.plot([lo, hi if math.isfinite(hi) else right], [y, y], color=colour, lw=5,
                            alpha=0.55, solid_capstyle="butt")
                if point is not None and math.isfinite(point):
                    ax.plot([point], [y], "o", color=colour, ms=6)
                tlo, thi = _number(r["theirs lo"]), _number(r["theirs hi"])
                if tlo is not None and thi is not None:
                    ax.plot([tlo, thi], [y + 0.22, y + 0.22], color="black", lw=1)
                ax.plot([_number(r["theirs value"])], [y + 0.22], "D", color="black", ms=5)
                ax.text(1.01, y, str(r.verdict), transform=ax.get_yaxis_transform(), va="center", color=colour,
                        fontsize=RC["font.size"])
            ax.set_yticks(range(len(sel)), [_label(r) for _, r in sel.iloc[::-1].iterrows()])
            ax.set_ylim(-0.7, len(sel) - 0.3)
            if kind == "rate":
                ax.set_xlim(-0.02, 1.02)
            else:
                ax.set_xscale("log")
                ax.set_xlim(min(finite) / 2, right)
            ax.set_xlabel(title)
            ax.grid(axis="x", alpha=0.3)
        axes[0, 0].set_title("The papers' numbers (black diamond, with their 95% interval where they say n) "
                             "against ours (bar: our 95% interval, dot: ours)", loc="left")
        fig.subplots_adjust(right=0.78)
        return save(fig, path)
