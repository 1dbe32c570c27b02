"""The report's tables: the summary table (one row per model, clip setting and T of a task, seeds pooled, formatted
for the page, each header defined) and the published results (each once, with the study's cells it speaks to and
how their setup differs), with the anchors that link the two."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import yaml

from gradlab import cells
from gradlab.core.runfolder import RunFolder
from gradlab.study.claims import PUBLISHED, published_table
from gradlab.study.summary import pooled


def pub_anchor(i: int) -> str:
    return f"pub-{i + 1}"


def _pub_links(task: str, model: str, T: int) -> str:
    """Links to the published results that speak to a cell of the grid (each listed once, in the literature)."""
    return " ".join(f'<a href="#{pub_anchor(i)}" title="{html.escape(p.source)}">[{i + 1}]</a>'
                    for i, p in enumerate(PUBLISHED) if p.speaks_to(task, model, int(T)))


def _pct(v: float, unit: str = "%") -> str:
    """A fraction as a percentage: 2 significant digits below 10%, whole percents above (no exponent)."""
    if pd.isna(v):
        return "–"
    return (f"{100 * v:.0f}" if 100 * v >= 10 else f"{100 * v:.2g}") + unit


def _span_text(values: pd.Series, fmt, unit: str = "") -> str:
    """'median [lowest–highest]' over seeds, `unit` once after the median; one value: itself; none: '–'."""
    values = values.dropna()
    if values.empty:
        return "–"
    med = fmt(values.median()) + unit
    return med if len(values) == 1 else f"{med} [{fmt(values.min())}–{fmt(values.max())}]"


def _g2(v: float) -> str:
    """Two significant digits (the table's ratios, rates and exponents)."""
    return "–" if pd.isna(v) else f"{v:.2g}"


SUMMARY_TITLES = {
    "solved": "runs whose test loss is below 1% of the memoryless baseline, of all the cell's runs (seeds)",
    "steps to solve": "optimizer steps until validation first found it solved: median [lowest–highest] over the "
                      "solved seeds",
    "loss / baseline": "test loss / memoryless baseline: median [lowest–highest] over seeds",
    "diverged": "runs stopped by a non-finite or > 1e10 gradient norm",
    "horizon": "steps back from t=T−1 until ‖∂ℓ/∂h_t‖ is below 1e-3 of its value there (test data, after training)",
    "h₀/h_T−1": "‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ on test data after training (median over seeds)",
    "h₀/h_T−1 train": "the same, its median over the probes while training (validation data)",
    "decay": "measured slope of ln‖∂ℓ/∂h_t‖ per step (test data, after training); negative: vanishing",
    "predicted": "each cell's theory rate (its dominant mode): " + "; ".join(
        f"{name}: {cell.theory}" for name, cell in cells.CELLS.items()),
    "λ₁": "the largest finite-time Lyapunov exponent of the trained net on the test sequences (ln per step)",
    "clipped": "fraction of optimizer steps whose gradient norm was clipped",
    "lit.": "the published results that speak to this cell (literature section)",
}


def summary_table(df: pd.DataFrame, task: str, literature: bool = True) -> pd.DataFrame:
    """One row per (model, clip, T) of `task`, seeds pooled (the definitions of `summary.pooled`), numbers only,
    formatted for the page; `lit.` links to the published results in the literature section (literature=False: a
    page without one, no such column)."""
    rows = []
    sel = df[df.task == task]
    for _, c in pooled(sel).iterrows():
        g = sel[(sel.model == c["model"]) & (sel["clip"] == c["clip"]) & (sel.seq_len == c["T"])]
        rows.append({"model": c["model"], "clip": c["clip"], "T": int(c["T"]), "solved": c["solved"],
                     "steps to solve": _span_text(g.solved_at_step[g.solved.astype(bool)], lambda v: f"{v:.0f}"),
                     "loss / baseline": _span_text(g.loss_rel_baseline, lambda v: _pct(v, ""), "%"),
                     "diverged": c["diverged"], "horizon": c["horizon"], "h₀/h_T−1": _g2(c["h_0/h_T-1"]),
                     "h₀/h_T−1 train": _g2(c["h_0/h_T-1 (training)"]), "decay": _g2(c["decay_rate"]),
                     "predicted": _g2(c["predicted"]), "λ₁": _g2(c["lyapunov_max"]),
                     "clipped": _g2(c["clip_fraction"]), "lit.": _pub_links(task, c["model"], c["T"])})
    table = pd.DataFrame(rows)
    return table if literature else table.drop(columns="lit.", errors="ignore")


def _config(runs_dir: Path, run: str) -> dict | None:
    path = RunFolder.of(runs_dir, run).config
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def published_results(df: pd.DataFrame, runs_dir: Path) -> pd.DataFrame:
    """Each published result once: `#` (its anchor's label), the claim and the setup it holds for, the study's cells
    it speaks to and, over their runs, every way our setup differs from theirs."""
    configs: dict[str, dict | None] = {}
    rows = []
    for i, (p, row) in enumerate(zip(PUBLISHED, published_table(), strict=True)):
        mine = df[[p.speaks_to(t, m, int(T)) for t, m, T in zip(df.task, df.model, df.seq_len, strict=True)]]
        for run in mine.run:
            if run not in configs:
                configs[run] = _config(runs_dir, run)
        diffs = sorted({d for run in mine.run for d in p.differences(configs[run])})
        ours = ", ".join(dict.fromkeys(f"{t} T={T} {m}" for t, T, m in zip(mine.task, mine.seq_len, mine.model,
                                                                             strict=True)))
        row = {k: v for k, v in row.items() if k != "beside"}  # where it sits: the claim says, and `our cells`
        rows.append({"#": f"[{i + 1}]", **row, "our cells": ours or "–",
                     "ours differs": ("; ".join(diffs) or "same setup") if ours else "–"})
    return pd.DataFrame(rows)


def pub_of(source: str, claim: str) -> str:
    """A reproduction row's link to its published result (matched by source and claim)."""
    for i, p in enumerate(PUBLISHED):
        if (p.source, p.claim) == (source, claim):
            return f'<a href="#{pub_anchor(i)}">[{i + 1}] {html.escape(source)}</a>'
    return html.escape(source)
