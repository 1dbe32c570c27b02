"""The study's summary: every run of the grid in one table (results/summary/), pooled over seeds, the headline, the
DVC metrics, and the published results beside each cell. The reproduction table: gradlab.study.verdicts; the curves
`dvc plots` draws: gradlab.study.curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gradlab import cells
from gradlab.core.errors import ConfigError, DataError
from gradlab.core.runfolder import RunFolder, atomic_write_bytes, read_json
from gradlab.study.claims import published_for, published_table
from gradlab.study.grid import RunKey
from gradlab.study.verdicts import reproduction, reproduction_markdown


def models_in(names: object) -> list[str]:
    """The models among `names` in the registry's order (the plots' and tables' order), unknown ones after."""
    have = set(names)
    return [m for m in cells.names() if m in have] + sorted(have - set(cells.names()))


COLUMNS = ["task", "seq_len", "model", "hidden_size", "clip", "seed", "run", "status", "solved", "solved_at_step",
           "steps", "loss_rel_baseline", "test_acc", "diverged", "diverged_at_step", "clip_fraction",
           "grad_norm_preclip_max", "bptt_horizon", "bptt_decay_rate", "bptt_decay_rate_predicted",
           "bptt_decay_rate_c", "lyapunov_max", "lyapunov_max_init", "h_ratio_first_last", "h_ratio_training",
           "c_ratio_training", "published"]


def read_csv(path: Path) -> pd.DataFrame:
    """A run's CSV record; DataError naming it when it cannot be parsed."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:  # pandas' parser errors are ValueErrors
        raise DataError(f"{path} is corrupt ({type(err).__name__}: {str(err).splitlines()[0]}); rerun the stage "
                        f"that writes it") from None


def run_row(runs_dir: Path, key: RunKey) -> dict[str, Any]:
    """One run's line of the summary: training metrics, the analysis probe on test data, published claims."""
    run = RunFolder.of(runs_dir, key.name)
    config = yaml.safe_load(run.config.read_text()) if run.config.is_file() else None
    m = read_json(run.metrics) or {}
    a = read_json(run.analysis.metrics) or {}
    return {"task": key.task, "seq_len": key.seq_len, "model": key.model, "hidden_size": key.hidden_size,
            "clip": key.clip, "seed": key.seed, "run": key.name, "status": m.get("status", "missing"),
            "solved": bool(m.get("solved", False)), "solved_at_step": m.get("solved_at_step"),
            "steps": m.get("steps"), "loss_rel_baseline": m.get("test_loss_rel_baseline"),
            "test_acc": m.get("test_acc"), "diverged": m.get("status") == "diverged",
            "diverged_at_step": m.get("diverged_at_step"), "clip_fraction": m.get("clip_fraction"),
            "grad_norm_preclip_max": m.get("grad_norm_preclip_max"), "bptt_horizon": a.get("bptt_horizon"),
            "bptt_decay_rate": a.get("bptt_decay_rate"),
            "bptt_decay_rate_predicted": a.get("bptt_decay_rate_predicted"),
            "bptt_decay_rate_c": a.get("bptt_decay_rate_c"), "lyapunov_max": a.get("lyapunov_max"),
            "lyapunov_max_init": a.get("lyapunov_max_init"), "h_ratio_first_last": h_ratio(run.analysis.bptt),
            "h_ratio_training": h_ratio(run.bptt, probes="all"),
            "c_ratio_training": h_ratio(run.bptt, "dL_dc_norm", probes="all"),
            "published": published_for(key.task, key.model, key.seq_len, config)}


def h_ratio(bptt_csv: Path, quantity: str = "dL_dh_norm", probes: str = "last") -> float | None:
    """‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_{T-1}‖ (layer 0; `quantity` dL_dc_norm: the same for c): how much gradient reaches the
    first step. probes='last': of the last probe in the file; 'all': the median over every probe (training)."""
    if not bptt_csv.is_file():
        return None
    df = read_csv(bptt_csv)
    sel = df[(df.quantity == quantity) & (df.layer == 0)]
    if sel.empty:
        return None
    per_probe = sel.pivot_table(index="step", columns="t", values="value")
    last_t = per_probe[per_probe.columns.max()]
    ratios = (per_probe[per_probe.columns.min()] / last_t)[last_t > 0]
    if ratios.empty:
        return None
    return float(ratios.iloc[-1] if probes == "last" else ratios.median())


def read_summary(path: Path) -> pd.DataFrame:
    """summary.csv as the summarize stage wrote it (what the report reads); ConfigError when missing or foreign."""
    if not Path(path).is_file():
        raise ConfigError(f"no study summary at {path}: run `make summary` (or `dvc repro`) first")
    df = pd.read_csv(path, dtype={"published": str}, keep_default_na=True)
    if list(df.columns) != COLUMNS:
        raise ConfigError(f"{path} is not a summary of this version (columns differ): run `make summary` again")
    return df.assign(published=df.published.fillna(""))


def summarize(runs: list[RunKey], runs_dir: Path) -> pd.DataFrame:
    """The per-run summary table, in grid order."""
    return pd.DataFrame([run_row(runs_dir, k) for k in runs], columns=COLUMNS)


def pooled(df: pd.DataFrame) -> pd.DataFrame:
    """Seeds pooled: one line per (task, model, clip, T) with solved k/n, steps to solve (median and range over the
    solved seeds), test loss / baseline (median and interquartile range) and the probe's ratios (medians). A cell of
    one seed says so: seeds = 1, no range."""
    rows = []
    for (task, model, clip, T), g in df.groupby(["task", "model", "clip", "seq_len"], sort=False):
        solved_at = g.solved_at_step[g.solved].dropna()
        loss = g.loss_rel_baseline.dropna()
        rows.append({"task": task, "model": model, "clip": clip, "T": T, "seeds": len(g),
                     "solved": f"{int(g.solved.sum())}/{len(g)}",
                     "steps_to_solve": int(solved_at.median()) if len(solved_at) else None,
                     "steps_to_solve_range": (f"{int(solved_at.min())}-{int(solved_at.max())}" if len(solved_at) > 1
                                              else None),
                     "loss/baseline": g.loss_rel_baseline.median(),
                     "loss/baseline_iqr": (f"{loss.quantile(0.25):.3g}-{loss.quantile(0.75):.3g}" if len(loss) > 1
                                           else None),
                     "diverged": f"{int(g.diverged.sum())}/{len(g)}",
                     "horizon": g.bptt_horizon.median(), "h_0/h_T-1": g.h_ratio_first_last.median(),
                     "h_0/h_T-1 (training)": g.h_ratio_training.median(),
                     "decay_rate": g.bptt_decay_rate.median(), "predicted": g.bptt_decay_rate_predicted.median(),
                     "lyapunov_max": g.lyapunov_max.median(),
                     "clip_fraction": g.clip_fraction.median(), "published": g.published.iloc[0]})
    return pd.DataFrame(rows)


def headline(df: pd.DataFrame, task: str = "adding") -> str:
    """At the longest T of `task`: how many runs of each model solved it (seeds and clip settings pooled), and how
    much of the gradient at t=T-1 reached t=0 while it trained (the probes' median ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T-1‖, then
    the median over seeds, per clip setting; and the same for c)."""
    sel = df[(df.task == task) & (df.status != "missing")]
    if sel.empty:
        return f"No {task} runs in this study."
    T = int(sel.seq_len.max())
    at = sel[sel.seq_len == T]
    seeds = at.seed.nunique()
    clips = list(dict.fromkeys(at["clip"]))
    parts = []
    for model in models_in(at.model):
        g = at[at.model == model]
        diverged = int(g.diverged.fillna(False).astype(bool).sum())
        parts.append(f"{model} solved it in {int(g.solved.sum())}/{len(g)} runs (test loss median "
                     f"{g.loss_rel_baseline.median():.2%}, best {g.loss_rel_baseline.min():.2%} of the baseline"
                     + (f"; {diverged} diverged" if diverged else "") + ")")
    setup = f"{seeds} seed{'s' if seeds > 1 else ''} x clip {', '.join(clips)}"
    return f"At the longest {task} T={T} ({setup}): " + "; ".join(parts) + "." + _why(at)


def headline_task(df: pd.DataFrame) -> str | None:
    """The task the one-line headline speaks of: adding where the study has it, else its first task with runs."""
    tasks = list(dict.fromkeys(df.task[df.status != "missing"]))
    return "adding" if "adding" in tasks else (tasks[0] if tasks else None)


def headline_line(df: pd.DataFrame) -> str:
    """The report's one-line answer, at the longest T of `headline_task`: which models learn it (most of their runs
    solved, seeds and clip settings pooled) and which do not, each with its runs solved. How much of the gradient
    reaches t=0 is the headline figure right below it (and `headline`'s numbers): with six models both do not fit
    one line at 1280 px."""
    task = headline_task(df)
    if task is None:
        return "No finished runs in this study yet."
    sel = df[(df.task == task) & (df.status != "missing")]
    T = int(sel.seq_len.max())
    at = sel[sel.seq_len == T]
    models = models_in(at.model)
    solved = {m: (int(at.solved[at.model == m].sum()), int((at.model == m).sum())) for m in models}
    learn = [m for m in models if 2 * solved[m][0] > solved[m][1]]
    fail = [m for m in models if m not in learn]

    def join(names: list[str]) -> str:
        named = [f"{m} {solved[m][0]}/{solved[m][1]}" for m in names]
        return " and ".join(named) if len(named) < 3 else ", ".join(named[:-1]) + " and " + named[-1]

    if learn and fail:
        verdict = (f"{join(learn)} learn{'s' if len(learn) == 1 else ''} it, {join(fail)} "
                   f"do{'es' if len(fail) == 1 else ''} not")
    else:
        verdict = f"{'every' if learn else 'no'} model learns it: {join(models)}"
    return f"{task}, T={T}: {verdict} (runs solved)."


def _why(at: pd.DataFrame) -> str:
    """The gradient half of the headline: per model, one value per clip setting (grid order), median over seeds."""
    def per_model(column: str) -> str:
        have = at[at[column].notna()]
        return "; ".join(f"{m} " + ", ".join(f"{v:.2g}" for v in
                                             have[have.model == m].groupby("clip", sort=False)[column].median())
                         for m in models_in(have.model))

    h = per_model("h_ratio_training")
    if not h:
        return ""
    clips = list(dict.fromkeys(at.loc[at.h_ratio_training.notna(), "clip"]))
    c = per_model("c_ratio_training")
    seeds = " and seeds" if at.seed.nunique() > 1 else ""
    return (f" The gradient shows why: while training (median over the probes{seeds}), ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ was "
            + h + f" (clip {', '.join(clips)})" + (f", and ‖∂ℓ/∂c_0‖ / ‖∂ℓ/∂c_T−1‖ {c}" if c else "") + ".")


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def markdown(df: pd.DataFrame) -> str:
    """The summary as Markdown: the headline, one table per task, and the published claims beside ours."""
    lines = ["# Study summary", "", headline(df), ""]
    table = pooled(df)
    for task, g in table.groupby("task", sort=False):
        lines += [f"## {task}", "", "| " + " | ".join(c for c in g.columns if c != "task") + " |",
                  "|" + "---|" * (len(g.columns) - 1)]
        for _, r in g.iterrows():
            lines.append("| " + " | ".join(_fmt(r[c]) for c in g.columns if c != "task") + " |")
        lines.append("")
    lines += ["solved: test loss below 1% of the memoryless baseline. horizon: steps back from t=T-1 until "
              "‖∂ℓ/∂h_t‖ falls below 1e-3 of its value there (T if never), on test data after training. "
              "h_0/h_T-1: ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T-1‖ there; (training): its median over the probes while training. "
              "decay_rate: slope of ln‖∂ℓ/∂h_t‖ per step (negative: vanishing); predicted: the theory's ("
              + "; ".join(f"{m}: {cells.get(m).theory}" for m in table.model.unique() if m in cells.names())
              + "). lyapunov_max: the "
              "largest finite-time Lyapunov exponent of the trained net on the same test sequences (ln per step).", ""]
    return "\n".join(lines)


def lyapunov_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, over its runs (all T, clips, seeds): the largest Lyapunov exponent λ_1 beside the probe's measured
    ∂ℓ/∂h decay rate, and how far apart they are (medians; `rel_gap` = |λ_1 − rate| / |rate|). Nothing is fitted."""
    have = df.dropna(subset=["lyapunov_max", "bptt_decay_rate"])
    rows = []
    for model in models_in(have.model):
        g = have[have.model == model]
        gap = (g.lyapunov_max - g.bptt_decay_rate).abs()
        rows.append({"model": model, "runs": len(g), "lyapunov_max": g.lyapunov_max.median(),
                     "lyapunov_max_init": g.lyapunov_max_init.median(), "decay_rate": g.bptt_decay_rate.median(),
                     "abs_gap": gap.median(), "rel_gap": (gap / g.bptt_decay_rate.abs()).median()})
    return pd.DataFrame(rows, columns=["model", "runs", "lyapunov_max", "lyapunov_max_init", "decay_rate",
                                       "abs_gap", "rel_gap"])


def lyapunov_reading(agreement: pd.DataFrame) -> str:
    """Two sentences from the agreement table: which model's λ_1 tracks its measured decay, and which does not."""
    if agreement.empty:
        return "No run has both a Lyapunov spectrum and a test probe yet."
    close = agreement[agreement.rel_gap <= 0.25]
    far = agreement[agreement.rel_gap > 0.25]
    parts = []
    if len(close):
        parts.append("λ_1 tracks the measured decay rate of ∂ℓ/∂h for " + ", ".join(
            f"{r.model} (median gap {r.rel_gap:.0%} of the rate over {r.runs} runs)" for r in close.itertuples())
            + ".")
    if len(far):
        with_c = set(far.model) & set(cells.with_state("c"))
        parts.append("It does not for " + ", ".join(
            f"{r.model} (λ_1 {r.lyapunov_max:.2g} against a rate of {r.decay_rate:.2g})" for r in far.itertuples())
            + (f": the state of {' and '.join(sorted(with_c))} includes the cell, whose slow directions set λ_1 "
               f"while the probe's rate follows ‖∂ℓ/∂h_t‖" if with_c else "") + ".")
    return " ".join(parts)


def dvc_metrics(df: pd.DataFrame) -> dict[str, Any]:
    """Nested metrics for `dvc metrics show` / `dvc exp show`: task -> T<T> -> model-clip -> numbers, and
    task -> longest -> the same at the task's longest T (with T itself), so that experiments over different
    sequence lengths share columns (`dvc exp show --keep longest`)."""
    out: dict[str, Any] = {}
    table = pooled(df)
    for _, r in table.iterrows():
        out.setdefault(r["task"], {}).setdefault(f"T{r['T']}", {})[f"{r['model']}-{r['clip']}"] = _cell_metrics(r)
    for task, g in table.groupby("task", sort=False):
        T = int(g["T"].max())
        out[task]["longest"] = {"T": T, **{f"{r['model']}-{r['clip']}": _cell_metrics(r)
                                          for _, r in g[g["T"] == T].iterrows()}}
    return out


def _cell_metrics(r: pd.Series) -> dict[str, Any]:
    def num(v: Any) -> float | None:
        return None if pd.isna(v) else float(f"{float(v):.6g}")  # 6 significant digits: ratios go to 1e-12

    k, n = (int(x) for x in r["solved"].split("/"))
    return {"solved_frac": k / n, "loss_rel_baseline": num(r["loss/baseline"]), "horizon": num(r["horizon"]),
            "h0_rel": num(r["h_0/h_T-1"]), "h0_rel_training": num(r["h_0/h_T-1 (training)"])}


def write_summary(df: pd.DataFrame, out: Path, repro: pd.DataFrame | None = None) -> dict[str, Path]:
    """summary.csv (per run), summary.md, metrics.json (DVC metrics), published.csv, reproduction.csv/.md: each
    written atomically."""
    files = {"csv": out / "summary.csv", "md": out / "summary.md", "metrics": out / "metrics.json",
             "published": out / "published.csv", "reproduction": out / "reproduction.csv",
             "reproduction_md": out / "reproduction.md"}
    repro = reproduction([], Path()) if repro is None else repro
    atomic_write_bytes(files["reproduction"], repro.to_csv(index=False).encode())
    atomic_write_bytes(files["reproduction_md"], reproduction_markdown(repro).encode())
    atomic_write_bytes(files["csv"], df.to_csv(index=False).encode())
    atomic_write_bytes(files["md"], markdown(df).encode())
    atomic_write_bytes(files["metrics"], (json.dumps(dvc_metrics(df), indent=1) + "\n").encode())
    atomic_write_bytes(files["published"], pd.DataFrame(published_table()).to_csv(index=False).encode())
    return files
