"""The report's figures (gradlab.stages.report inlines them): the headline figure (the gradient reaching each step,
the learning curves, loss against T), the models after training side by side, the probes over training as heat
maps, and the learning curves and gradient norms of every run of a (task, T); drawn with one style per model and
clip setting, the median over seeds with a band from the lowest to the highest."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from gradlab import cells
from gradlab.core.figures import plt, save
from gradlab.core.runfolder import RunFolder
from gradlab.study.curves import grad_norm, probe_ratio, val_curve
from gradlab.study.summary import models_in, read_csv

# Figures drawn here: text of at least FONT pt at plots.save's 110 dpi is 13.75 px in the PNG; the page shows the
# headline figure at >= 73% of its width in pixels (the browser test measures it), so its text is >= 10 px on screen.
FONT = 9


RC = {"font.size": FONT, "axes.titlesize": FONT + 1, "axes.labelsize": FONT, "xtick.labelsize": FONT,
      "ytick.labelsize": FONT, "legend.fontsize": FONT, "figure.titlesize": FONT + 1}


def model_style(model: str, clip: str) -> dict:
    color = {m: f"C{i}" for i, m in enumerate(cells.names())}.get(model, "C9")
    return {"color": color, "ls": "-" if clip == "none" else ("--" if clip.startswith("norm") else ":")}


def _runs_figure(df: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path, curve, ylabel: str,
                 title: str, lines: tuple[tuple[float, dict], ...] = ()) -> Path | None:
    """One line per (model, clip) of (task, T) (colour = model, dashes = clipping), y on a log scale: the median over
    its seeds, with the band from the lowest to the highest seed where there are several. `curve(run_dir)` gives a
    run's series (index = x) or None; None when no run has one."""
    sel = df[(df.task == task) & (df.seq_len == T) & (df.status != "missing")]
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        seeds = set()
        for (model, clip), g in sel.groupby(["model", "clip"], sort=False):
            series = [y for y in (curve(runs_dir / r) for r in g["run"]) if y is not None]
            if series:
                seeds.add(_band(ax, series, f"{model} {clip}", **model_style(model, clip)))
        if not seeds:
            plt.close(fig)
            return None
        for value, style in lines:
            ax.axhline(value, lw=0.8, **style)
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{task}, T={T}: {title}\n({_seeds_text(seeds)})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the axes, off the data
        ax.grid(alpha=0.3, which="both")
        return save(fig, path)


def _band(ax, series: list[pd.Series], label: str, **style) -> int:
    """The median of several runs' series (one per seed, index = x) as a line, the band from the lowest to the
    highest where there are several, for a log axis. A value <= 0 (a gradient norm that underflowed) counts as the
    smallest in the median and the band, which then reaches down to the smallest positive value drawn; a line at
    or below 0 is not drawn. Returns how many series."""
    table = pd.concat(series, axis=1).sort_index()
    table = table.where(table.isna() | (table > 0), 0.0)  # NaN: no value there (a run that ended earlier)
    median = table.median(axis=1)
    ax.plot(table.index, median.where(median > 0).to_numpy(), lw=1.5, label=label, **style)
    if table.shape[1] > 1:
        positive = table[table > 0]
        floor = float(positive.min().min()) if positive.notna().any().any() else np.nan
        low, high = table.min(axis=1), table.max(axis=1)
        ax.fill_between(table.index, low.where(low > 0, floor).to_numpy(), high.where(high > 0).to_numpy(),
                        color=style.get("color"), alpha=0.15, lw=0)
    return table.shape[1]


def _seeds_text(counts: set[int]) -> str:
    """What a line is: 'median of 3 seeds, band min-max', or '1 seed' (no band)."""
    if counts == {1}:
        return "1 seed"
    n = "/".join(str(c) for c in sorted(counts))
    return f"median of {n} seeds, band min-max"


def learning_figure(df: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path) -> Path | None:
    """Validation loss / baseline vs step for every run of (task, T)."""
    return _runs_figure(df, runs_dir, task, T, path, val_curve, "validation loss / baseline", "learning curves",
                        lines=((1.0, {"color": "gray", "label": "memoryless baseline"}),
                               (0.01, {"color": "green", "ls": ":", "label": "solved (1% of baseline)"})))


def grad_norm_figure(df: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path) -> Path | None:
    """The total gradient norm before clipping per optimizer step, every run of (task, T)."""
    return _runs_figure(df, runs_dir, task, T, path, grad_norm, "‖g‖ before clipping (running median)",
                        "total gradient norm per step")


def _headline_clip(sel: pd.DataFrame) -> str:
    """The clip setting the headline figure draws: unclipped where the study has it, else its first."""
    clips = list(dict.fromkeys(sel["clip"]))
    return "none" if "none" in clips else clips[0]


def _models(sel: pd.DataFrame) -> list[str]:
    return models_in(sel.model)


# The gradient-ratio axes stop at 1e-30 (the heat maps' colour floor too): a tanh RNN's ratio reaches 1e-160 and below
# (0 in float64), and an axis over 160 decades would flatten the gated models' 1e-1 against 1e-8 into one line.
RATIO_FLOOR_LOG10 = -30.0


def _floor_ratio_axis(ax) -> bool:
    """Cut a gradient-ratio axis at 10^RATIO_FLOOR_LOG10 where it reaches lower; whether it was cut."""
    low, high = ax.get_ylim()
    if low >= 10**RATIO_FLOOR_LOG10:
        return False
    ax.set_ylim(10**RATIO_FLOOR_LOG10, high)
    return True


def _reference_lines(ax) -> None:
    ax.axhline(1.0, color="gray", lw=0.9)
    ax.axhline(0.01, color="green", ls=":", lw=1.1)


def legend_row(fig, models: list[str], seeds: set[int], references: bool = True) -> None:
    """One legend for the whole figure, in a row above the axes (off the data): colour = model."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], lw=2, label=m, color=model_style(m, "none")["color"]) for m in models]
    if references:
        handles += [Line2D([], [], color="gray", lw=0.9, label="memoryless baseline"),
                    Line2D([], [], color="green", ls=":", lw=1.1, label="solved: 1% of baseline")]
    if seeds - {1}:
        handles.append(Patch(color="0.5", alpha=0.25, lw=0, label="band: lowest to highest seed"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)


def headline_figure(df: pd.DataFrame, runs_dir: Path, path: Path, more: bool = True) -> tuple[Path | None, str]:
    """The answer in one figure, one row per task, at its longest T: ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_{T-1}‖ against t after
    training (the analysis stage's probe on test data) for every model on one log axis, the learning curves
    (validation loss / baseline against step) and, where the task has several T, test loss / baseline against T
    (its markers: how many seeds solved the task there). Lines: the median over seeds, bands: lowest to highest
    seed; one clip setting (unclipped where there is one). Returns the figure (None: no finished runs) and its caption
    (`more`: it says the rest is further down)."""
    done = df[df.status != "missing"]
    tasks = list(dict.fromkeys(done.task))
    if not tasks:
        return None, ""
    several = {t: done[done.task == t].seq_len.nunique() > 1 for t in tasks}
    ncols = 3 if any(several.values()) else 2
    models, seeds, sources, clips, cut = [], set(), set(), [], False
    with plt.rc_context(RC):
        # 11 in at 110 dpi: about the page's 1200 px, so the PNG is shown near its own size (text >= 10 px)
        fig, axes = plt.subplots(len(tasks), ncols, figsize=(11, 2.7 * len(tasks) + 0.35), squeeze=False,
                                 layout="constrained")
        for row, task in zip(axes, tasks, strict=True):
            sel = done[done.task == task]
            T, clip = int(sel.seq_len.max()), _headline_clip(sel)
            clips.append(clip)
            at = sel[(sel.seq_len == T) & (sel["clip"] == clip)]
            for model in _models(at):
                style = {"color": model_style(model, clip)["color"]}
                runs = list(at.run[at.model == model])
                probes = [probe_ratio(runs_dir, r) for r in runs]
                curves = [c for c, _ in probes if c is not None]
                sources |= {test for c, test in probes if c is not None}
                if curves:
                    seeds.add(_band(row[0], curves, model, **style))
                learning = [c for c in (val_curve(runs_dir / r) for r in runs) if c is not None]
                if learning:
                    seeds.add(_band(row[1], learning, model, **style))
                if model not in models:
                    models.append(model)
            row[0].set(yscale="log", xlabel="time step t", ylabel="‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_T−1‖",
                       title=f"{task}, T={T}: gradient reaching step t")
            cut |= _floor_ratio_axis(row[0])
            _reference_lines(row[1])
            row[1].set(yscale="log", xlabel="optimizer step", ylabel="validation loss / baseline",
                       title=f"{task}, T={T}: learning curves")
            if ncols == 3:
                _loss_vs_T(row[2], sel[sel["clip"] == clip], task) if several[task] else row[2].axis("off")
            for ax in row:
                ax.grid(alpha=0.3, which="both")
        legend_row(fig, models, seeds)
        path = save(fig, path)
    source = ("the analyze stage's probe on test data, after training" if sources == {True} else
              "after training: on test data where the analyze stage probed the run, else its last training probe "
              "(validation data)")
    caption = (f"Left: how much of the gradient at the last step reaches step t ({source}"
               + (f"; the axis stops at 1e{RATIO_FLOOR_LOG10:.0f}, lines that leave it fall lower" if cut else "")
               + "). "
               + ("Middle" if ncols == 3 else "Right") + ": validation loss / memoryless baseline while training"
               + (f"; right: test loss / baseline against T ({SOLVED_FILL_TEXT})" if ncols == 3 else "")
               + f". Runs with clip {' / '.join(dict.fromkeys(clips))}; lines: {_seeds_text(seeds)}."
               + (" Every clip setting and T: further down." if more else ""))
    return path, caption


# The loss-against-T marker of a (model, T): filled where every seed solved the task there, half-filled where some
# did, open where none did.
SOLVED_FILL_TEXT = "marker filled: every seed solved the task at that T; half-filled: some did; open: none did"


def _solved_fill(fraction: float) -> str:
    """The marker's matplotlib fillstyle for the fraction of seeds that solved the task."""
    return "full" if fraction >= 1 else ("left" if fraction > 0 else "none")


def _loss_vs_T(ax, sel: pd.DataFrame, task: str) -> None:
    """Test loss / baseline against T per model: the median over seeds, the band from the lowest to the highest; the
    median's marker says how many of the seeds solved the task at that T (filled: all, half-filled: some, open:
    none)."""
    for model in _models(sel):
        runs = sel[sel.model == model].groupby("seq_len")
        g = runs.loss_rel_baseline
        med, lo, hi = g.median(), g.min(), g.max()
        solved = runs.solved.agg(lambda s: s.eq(True).mean())  # the fraction of its runs that solved it
        color = model_style(model, "none")["color"]
        ax.plot(med.index, med.to_numpy(), lw=1.5, color=color)
        for T, value in med.dropna().items():
            ax.plot([T], [value], marker="o", ms=5, ls="none", color=color, fillstyle=_solved_fill(solved[T]))
        ax.fill_between(med.index, lo.to_numpy(), hi.to_numpy(), color=color, alpha=0.15, lw=0)
    _reference_lines(ax)
    Ts = sorted(set(int(t) for t in sel.seq_len))
    ax.set(yscale="log", xlabel="sequence length T", ylabel="test loss / baseline", title=f"{task}: loss against T",
           xticks=Ts)


def compare_figure(done: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path) -> Path | None:
    """After training, on test data: ‖∂ℓ/∂h_t‖ and ‖∂ℓ/∂c_t‖ relative to t=T-1, every model (one clip setting:
    unclipped where there is one), median over seeds with the lowest-to-highest band; the legend in a row above."""
    sel = done[(done.task == task) & (done.seq_len == T)]
    if sel.empty:
        return None
    clip = _headline_clip(sel)
    at = sel[sel["clip"] == clip]
    models, seeds = [], set()
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.0), sharey=True, layout="constrained")
        for ax, quantity, label in zip(axes, ("dL_dh_norm", "dL_dc_norm"), ("‖∂ℓ/∂h_t‖", "‖∂ℓ/∂c_t‖ (LSTMs)"),
                                       strict=True):
            for model in _models(at):
                curves = [c for c, _ in (probe_ratio(runs_dir, r, quantity) for r in at.run[at.model == model])
                          if c is not None]
                if curves:
                    seeds.add(_band(ax, curves, model, color=model_style(model, clip)["color"]))
                    models += [model] if model not in models else []
            ax.set(yscale="log", xlabel="time step t",
                   title=f"{task}, T={T}, clip {clip}: {label} / its value at t=T−1")
            ax.grid(alpha=0.3, which="both")
        if not models:
            plt.close(fig)
            return None
        axes[0].set_ylabel("relative to t=T−1")
        _floor_ratio_axis(axes[0])  # the y axis is shared
        legend_row(fig, models, seeds, references=False)
        return save(fig, path)


def training_heatmaps(done: pd.DataFrame, runs_dir: Path, task: str, path: Path) -> Path | None:
    """BPTT over training at the task's longest T: for one run per model (unclipped where there is one, the lowest
    seed), log10 ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_{T-1}‖ of every training probe (validation data) over (t, training step), on one
    colour scale."""
    sel = done[done.task == task]
    if sel.empty:
        return None
    reps = representatives(sel[sel.seq_len == sel.seq_len.max()])
    tables = {}
    for _, r in reps.iterrows():
        csv = RunFolder.of(runs_dir, r["run"]).bptt
        if not csv.is_file():
            continue
        d = read_csv(csv)
        d = d[(d.quantity == "dL_dh_norm") & (d.layer == 0)]
        if d.empty:
            continue
        table = d.pivot_table(index="step", columns="t", values="value").sort_index()
        last = table[table.columns.max()]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log10(table.div(last.where(last > 0), axis=0).where(lambda x: x > 0))
        tables[(r["model"], f"{r['clip']}, seed {r['seed']}")] = ratio
    if not tables:
        return None
    low = max(RATIO_FLOOR_LOG10, min(float(np.nanmin(t.to_numpy())) for t in tables.values() if t.notna().any().any()))
    high = max(0.0, max(float(np.nanmax(t.to_numpy())) for t in tables.values() if t.notna().any().any()))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(tables), figsize=(3.7 * len(tables) + 0.8, 2.8), squeeze=False,
                                 layout="constrained", sharey=True)
        for ax, ((model, which), table) in zip(axes[0], tables.items(), strict=True):
            im = ax.imshow(table.to_numpy(), aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                           vmin=low, vmax=high, extent=(-0.5, table.shape[1] - 0.5, -0.5, table.shape[0] - 0.5))
            ax.set(title=f"{model} ({which})", xlabel="time step t")
            steps = [str(s) for s in table.index]  # the rows are the probes: label a row by its training step
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(7, integer=True))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _, steps=steps: steps[int(round(v))] if 0 <= round(v) < len(steps) else ""))
        axes[0][0].set_ylabel("training step (probe)")
        fig.colorbar(im, ax=axes[0].tolist(), label="log10 ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_T−1‖")
        T = int(sel.seq_len.max())
        fig.suptitle(f"{task}, T={T}: the gradient through time over training (validation data)")
        return save(fig, path)


def representatives(runs: pd.DataFrame) -> pd.DataFrame:
    """One run per (task, model): unclipped where there is one, else the first clip; the lowest seed."""
    if runs.empty:
        return runs
    order = runs.assign(_clipped=runs["clip"] != "none").sort_values(["_clipped", "seed"], kind="stable")
    return order.drop_duplicates(["task", "seq_len", "model"]).drop(columns="_clipped")


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
