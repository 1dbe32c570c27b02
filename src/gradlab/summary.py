"""The study's summary: every run of the grid in one table (results/summary/), pooled over seeds, the headline, the
DVC metrics and plots, and the published results beside each cell.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gradlab.choices import ModelName
from gradlab.errors import ConfigError, DataError
from gradlab.grid import PaperRun, RunKey
from gradlab.literature import published_for, published_table, reproduction_rows
from gradlab.runfolder import RunFolder, atomic_write_bytes, read_json

MODELS = tuple(m.value for m in ModelName)  # the plots' columns, in this order

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


def paper_row(runs_dir: Path, run: PaperRun) -> dict[str, Any]:
    """One paper run (stage `paper`) as the reproduction table reads it."""
    folder = RunFolder.of(runs_dir, run.name)
    config = yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else None
    m = read_json(folder.metrics) or {}
    return {"paper": run.paper, "model": run.model, "T": run.seq_len, "seed": run.seed, "run": run.name,
            "status": m.get("status", "missing"), "solved": bool(m.get("solved", False)),
            "solved_at_step": m.get("solved_at_step"), "steps": m.get("steps"),
            "batch_size": (config or {}).get("trainer", {}).get("batch_size"),
            "loss_rel_baseline": m.get("test_loss_rel_baseline"), "test_acc": m.get("test_acc"), "config": config}


def reproduction(papers: list[PaperRun], runs_dir: Path) -> pd.DataFrame:
    """The reproduction table: every published claim, our runs of its setup over seeds, and the verdict."""
    return pd.DataFrame(reproduction_rows([paper_row(runs_dir, r) for r in papers]))


REPRODUCTION_KEYS = ["source", "setup", "model", "T", "seeds", "solved", "sequences to solve", "theirs",
                     "loss/baseline", "verdict", "ours differs"]


def reproduction_markdown(table: pd.DataFrame, keys: list[str] = REPRODUCTION_KEYS) -> str:
    """The reproduction table as Markdown (reproduction.md, docs/literature.md's block): the setup as its conf/paper/
    name."""
    def cell(r: pd.Series, key: str) -> str:
        text = str(r.get(key, ""))
        if key == "setup":
            text = f"`{text.removeprefix('conf/paper/').removesuffix('.yaml')}`" if text.startswith("conf/") else "–"
        return text.replace("|", "/")

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r, k) for k in keys) + " |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"


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


def cells(df: pd.DataFrame) -> pd.DataFrame:
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
    for model in [m for m in MODELS if m in set(at.model)]:
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
    solved, seeds and clip settings pooled) and which do not, and how much of the gradient at t=T-1 reaches t=0
    after training (‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T-1‖ on test data, the median over the seeds of the clip setting the
    headline figure draws: unclipped where there is one). `headline` has the details."""
    task = headline_task(df)
    if task is None:
        return "No finished runs in this study yet."
    sel = df[(df.task == task) & (df.status != "missing")]
    T = int(sel.seq_len.max())
    at = sel[sel.seq_len == T]
    models = [m for m in MODELS if m in set(at.model)] + sorted(set(at.model) - set(MODELS))
    solved = {m: (int(at.solved[at.model == m].sum()), int((at.model == m).sum())) for m in models}
    learn = [m for m in models if 2 * solved[m][0] > solved[m][1]]
    fail = [m for m in models if m not in learn]

    order = learn + fail

    def join(names: list[str]) -> str:
        return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]

    if learn and fail:
        verdict = (f"{join(learn)} learn{'s' if len(learn) == 1 else ''} it, {join(fail)} "
                   f"do{'es' if len(fail) == 1 else ''} not (")
    else:  # the models, named in the order of the numbers that follow
        verdict = f"{'every' if learn else 'no'} model learns it ({', '.join(order)}: "
    counts = ", ".join(f"{solved[m][0]}/{solved[m][1]}" for m in order)
    # the ratio over the runs the report's headline figure draws: one clip setting, unclipped where there is one
    clips = list(dict.fromkeys(at["clip"]))
    clip = "none" if "none" in clips else clips[0]
    drawn = at[at["clip"] == clip]
    ratios = [drawn.h_ratio_first_last[drawn.model == m].median() for m in order]
    reach = (f"; ‖∂ℓ/∂h_0‖/‖∂ℓ/∂h_T−1‖{f' (clip {clip})' if len(clips) > 1 else ''} = "
             + ", ".join(f"{r:.2g}" if r > 0 else "0 (underflow)" for r in ratios)
             if all(pd.notna(r) for r in ratios) else "")
    return f"{task}, T={T}: {verdict}solved {counts}{reach})."


def _why(at: pd.DataFrame) -> str:
    """The gradient half of the headline: per model, one value per clip setting (grid order), median over seeds."""
    def per_model(column: str) -> str:
        have = at[at[column].notna()]
        return "; ".join(f"{m} " + ", ".join(f"{v:.2g}" for v in
                                             have[have.model == m].groupby("clip", sort=False)[column].median())
                         for m in MODELS if m in set(have.model))

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
    table = cells(df)
    for task, g in table.groupby("task", sort=False):
        lines += [f"## {task}", "", "| " + " | ".join(c for c in g.columns if c != "task") + " |",
                  "|" + "---|" * (len(g.columns) - 1)]
        for _, r in g.iterrows():
            lines.append("| " + " | ".join(_fmt(r[c]) for c in g.columns if c != "task") + " |")
        lines.append("")
    lines += ["solved: test loss below 1% of the memoryless baseline. horizon: steps back from t=T-1 until "
              "‖∂ℓ/∂h_t‖ falls below 1e-3 of its value there (T if never), on test data after training. "
              "h_0/h_T-1: ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T-1‖ there; (training): its median over the probes while training. "
              "decay_rate: slope of ln‖∂ℓ/∂h_t‖ per step (negative: vanishing); predicted: the theory's "
              "(rnn: mean field from W_hh and tanh'; lstm: mean ln f_t; nfg: 0). lyapunov_max: the largest "
              "finite-time Lyapunov exponent of the trained net on the same test sequences (ln per step).", ""]
    return "\n".join(lines)


def lyapunov_agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, over its runs (all T, clips, seeds): the largest Lyapunov exponent λ_1 beside the probe's measured
    ∂ℓ/∂h decay rate, and how far apart they are (medians; `rel_gap` = |λ_1 − rate| / |rate|). Nothing is fitted."""
    have = df.dropna(subset=["lyapunov_max", "bptt_decay_rate"])
    rows = []
    for model in [m for m in MODELS if m in set(have.model)]:
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
        cells = set(far.model) & {"lstm", "nfg_lstm"}
        parts.append("It does not for " + ", ".join(
            f"{r.model} (λ_1 {r.lyapunov_max:.2g} against a rate of {r.decay_rate:.2g})" for r in far.itertuples())
            + (f": the state of {' and '.join(sorted(cells))} includes the cell, whose slow directions set λ_1 "
               f"while the probe's rate follows ‖∂ℓ/∂h_t‖" if cells else "") + ".")
    return " ".join(parts)


def dvc_metrics(df: pd.DataFrame) -> dict[str, Any]:
    """Nested metrics for `dvc metrics show` / `dvc exp show`: task -> T<T> -> model-clip -> numbers, and
    task -> longest -> the same at the task's longest T (with T itself), so that experiments over different
    sequence lengths share columns (`dvc exp show --keep longest`)."""
    out: dict[str, Any] = {}
    table = cells(df)
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


def val_curve(run_dir: Path) -> pd.Series | None:
    """Validation loss / the memoryless baseline vs optimizer step (index) of one run; None when it has none."""
    run = RunFolder(run_dir)
    m = read_json(run.metrics) or {}
    if not (run.metrics_csv.is_file() and m.get("baseline_loss")):
        return None
    log = read_csv(run.metrics_csv)
    if "val/loss" not in log:
        return None
    v = log[["step", "val/loss"]].dropna().drop_duplicates("step").set_index("step")["val/loss"]
    return v / m["baseline_loss"] if len(v) else None


def curve_tables(df: pd.DataFrame, runs_dir: Path) -> dict[str, pd.DataFrame]:
    """Tables for `dvc plots`, per (task, T, clip) with one column per model (median over seeds; the columns are
    always rnn, lstm, nfg_lstm so that dvc.yaml can name them): learning/<task>-T<T>-<clip>.csv, validation loss /
    baseline vs step; bptt/<task>-T<T>-<clip>.csv, the last test probe's ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_{T-1}‖ vs t."""
    tables: dict[str, pd.DataFrame] = {}
    for (task, T, clip), g in df[df.status != "missing"].groupby(["task", "seq_len", "clip"], sort=False):
        learn: dict[str, list[pd.Series]] = {m: [] for m in MODELS}
        grad: dict[str, list[pd.Series]] = {m: [] for m in MODELS}
        for _, r in g.iterrows():
            v = val_curve(runs_dir / r["run"])
            if v is not None:
                learn[r["model"]].append(v)
            bptt = RunFolder.of(runs_dir, r["run"]).analysis.bptt
            if bptt.is_file():
                b = read_csv(bptt)
                sel = b[(b.quantity == "dL_dh_norm") & (b.layer == 0)].sort_values("t").set_index("t").value
                if len(sel) and sel.iloc[-1] > 0:
                    grad[r["model"]].append(sel / sel.iloc[-1])
        for kind, series, x in (("learning", learn, "step"), ("bptt", grad, "t")):
            cols = {m: pd.concat(v, axis=1).median(axis=1) if v else pd.Series(dtype=float) for m, v in series.items()}
            if any(len(c) for c in cols.values()):
                table = pd.DataFrame(cols).sort_index()
                table.index.name = x
                tables[f"{kind}/{task}-T{T}-{clip}"] = table.reset_index()
    return tables
