"""Stage `report`: the study as one self-contained HTML page (images inlined as data: URIs, no scripts, no network).

In the order of a reader's questions. What happens: a one-line headline and the headline figure (how much of the
gradient reaches each step, the learning curves, and loss against T) on the first screen, then the summary table.
Why: the gradient through time over training and after it, its norm per step (what clipping cuts), the dynamics
(Lyapunov exponents) and Pascanu et al.'s cliff. Then the literature (each published result once, with its setup,
and the reproduction table), the geometry of high-dimensional vectors, and last, folded, every T and clip setting
and the per-run figures.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from gradlab import plots  # noqa: E402
from gradlab.literature import PUBLISHED, published_table  # noqa: E402
from gradlab.runfolder import RunFolder, atomic_write_bytes  # noqa: E402
from gradlab.summary import MODELS, cells, headline, headline_line, headline_task, read_csv, val_curve  # noqa: E402

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:.8em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.5em;margin:0 0 .25em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0;max-width:100%}
td.l{overflow-wrap:anywhere}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}td a{white-space:nowrap}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.solved td{background:#eaf7ea}tr.diverged td{background:#fbeaea}
th[title]{text-decoration:underline dotted;cursor:help}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;flex:0 1 calc(50% - 6px);max-width:calc(50% - 6px)}
.figs.wide figure{flex:1 1 100%;max-width:100%}
.figs img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:12px;color:#555}
#headline-figure{margin:.4em 0 0}#headline-figure img{display:block;width:100%;height:auto}
.headline{font-size:1em;margin:.1em 0 .3em;background:#f6f8fa;padding:.35em .8em;border-left:4px solid #4a7}
.note{font-size:12px;color:#555}nav.note{margin:0}
details{margin:.5em 0;border:1px solid #e4e4e4;padding:.3em .8em}summary{cursor:pointer;font-weight:600}
"""

# Figures drawn here: text of at least FONT pt at plots.save's 110 dpi is 13.75 px in the PNG; the page shows the
# headline figure at >= 73% of its width in pixels (the browser test measures it), so its text is >= 10 px on screen.
FONT = 9
RC = {"font.size": FONT, "axes.titlesize": FONT + 1, "axes.labelsize": FONT, "xtick.labelsize": FONT,
      "ytick.labelsize": FONT, "legend.fontsize": FONT, "figure.titlesize": FONT + 1}


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _figs(items: list[tuple[Path | None, str]], wide: bool = False) -> str:
    present = [(p, c) for p, c in items if p is not None and Path(p).is_file()]
    if not present:
        return '<p class="note">(no figures: the runs have not produced them)</p>'
    return f'<div class="figs{" wide" if wide else ""}">' + "".join(_img(p, c) for p, c in present) + "</div>"


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, left: tuple[str, ...] = (), row_class=None, raw: tuple[str, ...] = (),
           titles: dict[str, str] | None = None, row_id=None, table_id: str | None = None) -> str:
    """An HTML table of df: `left` columns left-aligned, `raw` columns already HTML (links), `titles` a header's
    tooltip (its definition), `row_class`/`row_id` of a row."""
    def th(c: str) -> str:
        title = f' title="{html.escape(titles[c])}"' if titles and c in titles else ""
        return f'<th class="{"l" if c in left else ""}"{title}>{html.escape(str(c))}</th>'

    body = []
    for _, r in df.iterrows():
        cls = f' class="{row_class(r)}"' if row_class else ""
        rid = f' id="{row_id(r)}"' if row_id else ""
        body.append(f"<tr{rid}{cls}>" + "".join(
            f'<td class="{"l" if c in left else ""}">{r[c] if c in raw else _cell(r[c])}</td>' for c in df.columns)
            + "</tr>")
    tid = f' id="{table_id}"' if table_id else ""
    return (f"<table{tid}><thead><tr>{''.join(th(c) for c in df.columns)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _style(model: str, clip: str) -> dict:
    color = {m: f"C{i}" for i, m in enumerate(MODELS)}.get(model, "C4")
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
                seeds.add(_band(ax, series, f"{model} {clip}", **_style(model, clip)))
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
        return plots.save(fig, path)


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


def _grad_norm(run_dir: Path) -> pd.Series | None:
    """grad/norm_preclip per optimizer step, as a running median so that 1e-3 .. 1e3 spikes stay readable."""
    csv = RunFolder(run_dir).metrics_csv
    if not csv.is_file():
        return None
    log = read_csv(csv)
    if "grad/norm_preclip" not in log:
        return None
    g = log[["step", "grad/norm_preclip"]].dropna().set_index("step")["grad/norm_preclip"]
    return g.rolling(max(1, len(g) // 100), min_periods=1).median() if len(g) else None


def learning_figure(df: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path) -> Path | None:
    """Validation loss / baseline vs step for every run of (task, T)."""
    return _runs_figure(df, runs_dir, task, T, path, val_curve, "validation loss / baseline", "learning curves",
                        lines=((1.0, {"color": "gray", "label": "memoryless baseline"}),
                               (0.01, {"color": "green", "ls": ":", "label": "solved (1% of baseline)"})))


def grad_norm_figure(df: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path) -> Path | None:
    """The total gradient norm before clipping per optimizer step, every run of (task, T)."""
    return _runs_figure(df, runs_dir, task, T, path, _grad_norm, "‖g‖ before clipping (running median)",
                        "total gradient norm per step")


def probe_ratio(runs_dir: Path, run: str, quantity: str = "dL_dh_norm") -> tuple[pd.Series | None, bool]:
    """One run's last probe of `quantity` (layer 0) relative to its value at t=T-1, indexed by t (0 where the norm
    underflowed: `_band` draws it as below every other value), and whether it is the analysis stage's probe on test
    data (True) or, where the run has none, the last training probe on validation data (False). (None, _) where the
    run has no such quantity."""
    folder = RunFolder.of(runs_dir, run)
    for csv, test in ((folder.analysis.bptt, True), (folder.bptt, False)):
        if not csv.is_file():
            continue
        d = read_csv(csv)
        sel = d[(d.quantity == quantity) & (d.layer == 0)]
        if sel.empty:
            return None, test
        sel = sel[sel.step == sel.step.max()].sort_values("t")
        last = float(sel.value.iloc[-1])
        if not last > 0:
            return None, test
        values = sel.value.to_numpy(dtype=float) / last
        return pd.Series(values, index=sel.t.to_numpy()), test
    return None, False


def _headline_clip(sel: pd.DataFrame) -> str:
    """The clip setting the headline figure draws: unclipped where the study has it, else its first."""
    clips = list(dict.fromkeys(sel["clip"]))
    return "none" if "none" in clips else clips[0]


def _models(sel: pd.DataFrame) -> list[str]:
    return [m for m in MODELS if m in set(sel.model)] + sorted(set(sel.model) - set(MODELS))


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


def _legend_row(fig, models: list[str], seeds: set[int], references: bool = True) -> None:
    """One legend for the whole figure, in a row above the axes (off the data): colour = model."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], lw=2, label=m, color=_style(m, "none")["color"]) for m in models]
    if references:
        handles += [Line2D([], [], color="gray", lw=0.9, label="memoryless baseline"),
                    Line2D([], [], color="green", ls=":", lw=1.1, label="solved: 1% of baseline")]
    if seeds - {1}:
        handles.append(Patch(color="0.5", alpha=0.25, lw=0, label="band: lowest to highest seed"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)


def headline_figure(df: pd.DataFrame, runs_dir: Path, path: Path, more: bool = True) -> tuple[Path | None, str]:
    """The answer in one figure, one row per task, at its longest T: ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_{T-1}‖ against t after
    training (the analysis stage's probe on test data) for every model on one log axis, the learning curves
    (validation loss / baseline against step) and, where the task has several T, test loss / baseline against T.
    Lines: the median over seeds, bands: lowest to highest seed; one clip setting (unclipped where there is one).
    Returns the figure (None: no finished runs) and its caption (`more`: it says the rest is further down)."""
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
                style = {"color": _style(model, clip)["color"]}
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
        _legend_row(fig, models, seeds)
        path = plots.save(fig, path)
    source = ("the analyze stage's probe on test data, after training" if sources == {True} else
              "after training: on test data where the analyze stage probed the run, else its last training probe "
              "(validation data)")
    caption = (f"Left: how much of the gradient at the last step reaches step t ({source}"
               + (f"; the axis stops at 1e{RATIO_FLOOR_LOG10:.0f}, lines that leave it fall lower" if cut else "")
               + "). "
               + ("Middle" if ncols == 3 else "Right") + ": validation loss / memoryless baseline while training"
               + ("; right: test loss / baseline against T" if ncols == 3 else "")
               + f". Runs with clip {' / '.join(dict.fromkeys(clips))}; lines: {_seeds_text(seeds)}."
               + (" Every clip setting and T: further down." if more else ""))
    return path, caption


def _loss_vs_T(ax, sel: pd.DataFrame, task: str) -> None:
    """Test loss / baseline against T per model: the median over seeds, the band from the lowest to the highest."""
    for model in _models(sel):
        g = sel[sel.model == model].groupby("seq_len").loss_rel_baseline
        med, lo, hi = g.median(), g.min(), g.max()
        color = _style(model, "none")["color"]
        ax.plot(med.index, med.to_numpy(), marker="o", ms=4, lw=1.5, color=color)
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
                    seeds.add(_band(ax, curves, model, color=_style(model, clip)["color"]))
                    models += [model] if model not in models else []
            ax.set(yscale="log", xlabel="time step t",
                   title=f"{task}, T={T}, clip {clip}: {label} / its value at t=T−1")
            ax.grid(alpha=0.3, which="both")
        if not models:
            plt.close(fig)
            return None
        axes[0].set_ylabel("relative to t=T−1")
        _floor_ratio_axis(axes[0])  # the y axis is shared
        _legend_row(fig, models, seeds, references=False)
        return plots.save(fig, path)


def training_heatmaps(done: pd.DataFrame, runs_dir: Path, task: str, path: Path) -> Path | None:
    """BPTT over training at the task's longest T: for one run per model (unclipped where there is one, the lowest
    seed), log10 ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_{T-1}‖ of every training probe (validation data) over (t, training step), on one
    colour scale."""
    sel = done[done.task == task]
    if sel.empty:
        return None
    reps = _representatives(sel[sel.seq_len == sel.seq_len.max()])
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
        return plots.save(fig, path)


def _representatives(runs: pd.DataFrame) -> pd.DataFrame:
    """One run per (task, model): unclipped where there is one, else the first clip; the lowest seed."""
    if runs.empty:
        return runs
    order = runs.assign(_clipped=runs["clip"] != "none").sort_values(["_clipped", "seed"], kind="stable")
    return order.drop_duplicates(["task", "seq_len", "model"]).drop(columns="_clipped")


def headline_section(df: pd.DataFrame, runs_dir: Path, figdir: Path, more: bool = True) -> str:
    """The first screen: the one-line answer and the headline figure; the numbers behind the line below them."""
    parts = [f'<p class="headline" id="headline">{html.escape(headline_line(df))}</p>']
    figure, caption = headline_figure(df, runs_dir, figdir / "headline.png", more)
    if figure is not None:
        data = base64.b64encode(figure.read_bytes()).decode()
        parts.append(f'<figure id="headline-figure"><img src="data:image/png;base64,{data}" '
                     f'alt="the headline figure"><figcaption>{html.escape(caption)}</figcaption></figure>')
    parts.append(f'<p class="note">In numbers: {html.escape(headline(df, headline_task(df) or "adding"))}</p>')
    missing = df[df.status == "missing"]
    if len(missing):
        parts.append(f'<p class="note">{len(missing)} of {len(df)} runs are missing: '
                     f"{html.escape(', '.join(missing.run.head(8)))}</p>")
    return "".join(parts)


def _pub_anchor(i: int) -> str:
    return f"pub-{i + 1}"


def _pub_links(task: str, model: str, T: int) -> str:
    """Links to the published results that speak to a cell of the grid (each listed once, in the literature)."""
    return " ".join(f'<a href="#{_pub_anchor(i)}" title="{html.escape(p.source)}">[{i + 1}]</a>'
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
    "predicted": "the theory's rate: rnn mean field from W_hh and tanh', lstm mean ln f_t, nfg_lstm 0",
    "λ₁": "the largest finite-time Lyapunov exponent of the trained net on the test sequences (ln per step)",
    "clipped": "fraction of optimizer steps whose gradient norm was clipped",
    "lit.": "the published results that speak to this cell (literature section)",
}


def summary_table(df: pd.DataFrame, task: str, literature: bool = True) -> pd.DataFrame:
    """One row per (model, clip, T) of `task`, seeds pooled (the definitions of `summary.cells`), numbers only,
    formatted for the page; `lit.` links to the published results in the literature section (literature=False: a
    page without one, no such column)."""
    rows = []
    sel = df[df.task == task]
    for _, c in cells(sel).iterrows():
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


def summary_section(df: pd.DataFrame, literature: bool = True) -> str:
    """The pooled table per task (numbers only), explained in one sentence; the published results it links to are
    in the literature section (literature=False: a page without one, no links)."""
    parts = ['<h2 id="summary">Summary: which model learns which T</h2>']
    tasks = list(dict.fromkeys(df.task))
    for task in tasks:
        if len(tasks) > 1:
            parts.append(f"<h3>{html.escape(task)}</h3>")
        parts.append(_table(summary_table(df, task, literature), left=("model", "clip"), raw=("lit.",),
                            titles=SUMMARY_TITLES,
                            table_id=f"summary-{task}",
                            row_class=lambda r: "solved" if r["solved"].split("/")[0] != "0" else
                            ("diverged" if r["diverged"].split("/")[0] != "0" else "")))
    parts.append('<p class="note">One row per model, clip setting and T over its seeds: runs solved (test loss '
                 "below 1% of the memoryless baseline), steps to solve and test loss / baseline as median [lowest–"
                 "highest], runs diverged, the BPTT probe's horizon and ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ (test data after "
                 "training; and while training), the measured and predicted decay of ln‖∂ℓ/∂h_t‖ per step, the "
                 "largest Lyapunov exponent λ₁, the fraction of steps clipped"
                 + (" and links to the published results that speak to the row" if literature else "")
                 + " (a header's tooltip defines it).</p>")
    return "".join(parts)


def bptt_section(done: pd.DataFrame, df: pd.DataFrame, runs_dir: Path, figdir: Path,
                 grid: list[tuple[str, int]]) -> str:
    """Why, first the gradient, at each task's longest T (shorter T: the appendix): each model's probes over
    training (one colour scale), the models side by side after training on test data (‖∂ℓ/∂h_t‖ and ‖∂ℓ/∂c_t‖),
    and every clip setting's learning curves beside the gradient norm per step (what clipping cuts)."""
    parts = ['<h2 id="bptt">Why: the gradient through time (BPTT probe)</h2>',
             '<p class="note">‖∂ℓ/∂h_t‖ (every model) and ‖∂ℓ/∂c_t‖ (LSTMs) at every time step t, averaged over the '
             "probe batch, relative to the last step: over training (validation sequences), then after training "
             "(test sequences).</p>"]
    for task in dict.fromkeys(t for t, _ in grid):
        T = int(done[done.task == task].seq_len.max())
        heat = training_heatmaps(done, runs_dir, task, figdir / f"bptt_training_{task}.png")
        items: list[tuple[Path | None, str]] = [
            (heat, f"{task}, T={T}: one run per model (unclipped where there is one, the lowest seed); every "
                   "probe while training, t on x, training step on y")]
        items.append((compare_figure(done, runs_dir, task, T, figdir / f"bptt_compare_{task}-T{T}.png"),
                       f"{task}, T={T}: after training, on test data, every model (unclipped runs where there are "
                       "some; the median over seeds, the band from the lowest to the highest)"))
        parts.append(_figs(items, wide=True))
        parts.append(f"<h3>{html.escape(task)}, T={T}: every clip setting</h3>" + _figs([
            (learning_figure(df, runs_dir, task, T, figdir / f"learning_{task}-T{T}.png"),
             f"{task}, T={T}: learning curves (colour: model; dashes: clipping)"),
            (grad_norm_figure(df, runs_dir, task, T, figdir / f"grad_norm_{task}-T{T}.png"),
             f"{task}, T={T}: ‖g‖ per optimizer step, before clipping")]))
    return "".join(parts)


def geometry_section(done: pd.DataFrame, runs_dir: Path, geometry_dir: Path) -> str:
    """Random vectors against exact theory (the geometry stage), then the networks' own vectors."""
    parts = ['<h2 id="geometry">High-dimensional geometry</h2>']
    ref = geometry_dir / "reference.csv"
    if ref.is_file():
        g = read_csv(ref)
        keep = g[g.statistic.isin(["angle_sd_deg", "cos_var_times_D", "dist_sq_mean_over_D", "shell_fraction_mc",
                                   "relative_contrast", "ball_cube_ratio"])]
        text = [f"{v:.3g}" + (f" ({t:.3g})" if pd.notna(t) else "") for v, t in zip(keep.value, keep.theory,
                                                                                   strict=True)]
        wide = (keep.assign(text=text).pivot_table(index=["distribution", "statistic"], columns="D", values="text",
                                                   aggfunc="first", sort=False)
                .rename(columns=lambda D: f"D={D}").reset_index().fillna(""))
        parts.append('<p class="note">Random vectors: measured (exact theory in brackets, where there is one), '
                     "per dimension D (the geometry stage, results/geometry/reference.csv).</p>")
        parts.append(_table(wide, left=("distribution", "statistic")))
    gfig = geometry_dir / "figures"
    figures = [(gfig / f"{n}.png", n.replace("_", " ")) for n in
               ("angle_histograms", "angle_sd_vs_D", "relative_contrast_vs_D", "distances_vs_D",
                "shell_fraction_vs_D", "ball_cube_ratio_vs_D")]
    parts.append(_figs(figures[:2]))
    if any(p.is_file() for p, _ in figures[2:]):
        parts.append(_fold("Distances, relative contrast and the volume of the shell and the ball against D",
                           _figs(figures[2:])))
    longest = _representatives(done[done.seq_len == done.seq_len.max()]) if len(done) else done
    parts.append(_fold("The networks' own vectors: angles between hidden states, per-step gradients ∂ℓ/∂h_t and "
                       "per-step W_hh contributions, beside random vectors of the same dimension (test data, after "
                       "training; one run per model)",
                       _figs([(RunFolder.of(runs_dir, r["run"]).analysis.figures / "geometry_angles.png", r["run"])
                              for _, r in longest.iterrows()])))
    return "".join(parts)


def dynamics_section(done: pd.DataFrame, runs_dir: Path, cliff_dir: Path, figdir: Path) -> str:
    """Why: the dynamics. λ_1 against the measured decay rate (one point per run), the agreement per model with its
    reading (generated from the numbers), and Pascanu et al.'s cliff (each model's spectrum: the appendix)."""
    import json

    from gradlab.summary import lyapunov_agreement, lyapunov_reading

    parts = ['<h2 id="dynamics">Why: the dynamics</h2>',
             '<p class="note">λ_1: the largest finite-time Lyapunov exponent of the trained net along the test '
             "sequences (ln per step; the state is (h, c) for the LSTMs); beside it the BPTT probe's measured "
             "decay rate of ‖∂ℓ/∂h_t‖. Nothing is fitted to the other.</p>"]
    have = done.dropna(subset=["lyapunov_max", "bptt_decay_rate"])
    if len(have):
        agreement = lyapunov_agreement(done)
        parts.append(f"<p>{html.escape(lyapunov_reading(agreement))}</p>")
        parts.append(_table(agreement, left=("model",)))
        scatter = plots.lyapunov_vs_decay(have, "λ_1 against the measured gradient decay, per run",
                                          figdir / "lyapunov_vs_decay.png")
        figures = [(scatter, "λ_1 vs measured decay rate")]
    else:
        figures = []
    summary = cliff_dir / "summary.json"
    if summary.is_file():
        c = json.loads(summary.read_text())
        wall, steps = c["wall"], c["largest_step"]
        plain, clipped = (steps[k] for k in steps)
        parts.append("<h3>The cliff (Pascanu, Mikolov, Bengio 2013)</h3>"
                     f"<p>One sigmoid unit, x_t = w·σ(x_t−1) + b, T={c['setup']['T']}: on a wall of its loss surface "
                     f"‖∇ℓ‖ reaches {wall['grad_norm_max']:.3g} (w={wall['w']:.6g}, b={wall['b']:g}), "
                     f"{wall['grad_norm_max'] / wall['grad_norm_median']:.2g} times the median along that slice. "
                     f"From the same start, plain SGD's largest step was {plain:.3g} and, with the gradient clipped "
                     f"to norm {c['setup']['clip']:g}, {clipped:.3g} (learning rate {c['setup']['lr']:g}).</p>")
        figures.append((cliff_dir / "figures" / "cliff.png", "the cliff: log10 ‖∇ℓ‖ over (w, b), with both runs"))
    if figures:
        parts.append(_figs(figures))
    return "".join(parts)


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


def _pub_of(source: str, claim: str) -> str:
    """A reproduction row's link to its published result (matched by source and claim)."""
    for i, p in enumerate(PUBLISHED):
        if (p.source, p.claim) == (source, claim):
            return f'<a href="#{_pub_anchor(i)}">[{i + 1}] {html.escape(source)}</a>'
    return html.escape(source)


def literature_section(df: pd.DataFrame, repro: pd.DataFrame | None, runs_dir: Path, figdir: Path) -> str:
    """Each published result once, with its setup (the summary table and the reproduction table link to it); the
    reproduction table (verdicts computed by the summarize stage) and, for the continual stream, the cell-state norm
    and ‖∂ℓ/∂c_t‖ along the stream from each model's last training probe."""
    parts = ['<h2 id="literature">Held against the literature</h2>', "<h3>Published results</h3>",
             '<p class="note">Each with the setup it holds for, the cells of this study it speaks to and every way '
             "their runs' setup differs from it.</p>"]
    pub = published_results(df, runs_dir)
    parts.append(_table(pub, left=tuple(c for c in pub.columns if c != "#"), table_id="published",
                        row_id=lambda r: _pub_anchor(int(r["#"].strip("[]")) - 1)))
    parts.append('<h3 id="reproduction">The reproduction table: the papers\' own setups</h3>')
    if repro is None or repro.empty:
        return "".join(parts + ['<p class="note">No reproduction table (results/summary/reproduction.csv).</p>'])
    parts.append('<p class="note">One row per published claim and (model, T) run in the paper\'s own setup '
                 "(conf/paper/), over seeds; the verdict follows from the numbers: reproduced when most seeds' "
                 "outcome is the paper's. <b>ours differs</b> lists every setup key where our run departs from the "
                 "paper, and what gradlab has no key for.</p>")
    shown = repro.assign(published=[_pub_of(str(s), str(c)) for s, c in zip(repro.source, repro.claim, strict=True)])
    ran = shown[shown.seeds.fillna(0).astype(int) > 0]
    keep = ["published"] + [c for c in shown.columns if c not in ("published", "source", "claim", "their setup",
                                                                  "runs")]
    if len(ran):
        parts.append(_table(ran[keep], left=("published", "setup", "model", "ours differs", "verdict"),
                            raw=("published",)))
    rest = shown[shown.seeds.fillna(0).astype(int) == 0]
    if len(rest):
        parts.append('<p class="note">Not run here: ' + "; ".join(
            f"{r['published']} ({html.escape(str(r['ours differs']))})" for _, r in rest.iterrows()) + ".</p>")
    stream = repro[repro.setup.str.contains("gers00", na=False) & (repro.runs.fillna("") != "")]
    curves: dict[str, pd.DataFrame] = {}
    for _, r in stream.iterrows():
        bptt = RunFolder.of(runs_dir, str(r["runs"]).split()[0]).bptt
        if bptt.is_file():
            d = read_csv(bptt)
            curves[str(r["model"])] = d[d.step == d.step.max()]
    if curves:
        with plt.rc_context(RC):
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.0), layout="constrained")
            for model, d in curves.items():
                for ax, quantity in zip(axes, ("c_norm", "dL_dc_norm"), strict=True):
                    q = d[(d.quantity == quantity) & (d.layer == 0)].sort_values("t")
                    ax.plot(q.t, q.value, lw=1.5, color=_style(model, "none")["color"])
            axes[0].set(xlabel="t (stream step)", ylabel="‖c_t‖", title="cell state along the stream")
            axes[1].set(xlabel="t (stream step)", ylabel="‖∂ℓ/∂c_t‖", yscale="log",
                        title="gradient to the cell state")
            _legend_row(fig, list(curves), {1}, references=False)
            path = plots.save(fig, figdir / "continual_stream.png")
        growth = {m: float(d[d.quantity == "c_norm"].sort_values("t").value.iloc[-1]) for m, d in curves.items()}
        parts.append("<h3>Why the forget gate exists (Gers et al. 2000)</h3><p>At the end of the training stream "
                     + ", ".join(f"{m}: ‖c_t‖ = {v:.3g}" for m, v in growth.items())
                     + " (the last training probe of the lowest seed).</p>")
        parts.append(_figs([(path, "the continual stream: ‖c_t‖ and ‖∂ℓ/∂c_t‖, last training probe")], wide=True))
    return "".join(parts)


def _fold(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def appendix_section(df: pd.DataFrame, done: pd.DataFrame, runs_dir: Path, figdir: Path,
                     grid: list[tuple[str, int]]) -> str:
    """Last, folded: the shorter T (learning curves, gradient norms and the probes after training, every clip
    setting), the per-run figures of one run per model at each task's longest T, and every run's clipping
    statistics."""
    parts = ['<h2 id="appendix">Appendix: every T and clip setting, and the per-run figures</h2>',
             '<p class="note">Folded: click a line to open it.</p>']
    longest = {t: int(done[done.task == t].seq_len.max()) for t, _ in grid}
    for task, T in grid:
        if T == longest[task]:
            continue
        parts.append(_fold(f"{task}, T={T}: learning curves, gradient norms and the probes after training", _figs([
            (learning_figure(df, runs_dir, task, T, figdir / f"learning_{task}-T{T}.png"),
             f"{task}, T={T}: learning curves (colour: model; dashes: clipping)"),
            (grad_norm_figure(df, runs_dir, task, T, figdir / f"grad_norm_{task}-T{T}.png"),
             f"{task}, T={T}: ‖g‖ per optimizer step, before clipping")])
            + _figs([(compare_figure(done, runs_dir, task, T, figdir / f"bptt_compare_{task}-T{T}.png"),
                      f"{task}, T={T}: gradient norms relative to t=T−1 after training")], wide=True)))
    for task in longest:
        sel = done[(done.task == task) & (done.seq_len == longest[task])]
        for _, r in _representatives(sel).iterrows():
            f, a = RunFolder.of(runs_dir, r["run"]).figures, RunFolder.of(runs_dir, r["run"]).analysis.figures
            items: list[tuple[Path | None, str]] = []
            for q in ("dL_dh_norm", "dL_dc_norm"):
                items += [(f / f"bptt_{q}_l0.png", f"{q} vs t over training"),
                          (f / f"bptt_heatmap_{q}_l0.png", f"{q}: heatmap (training step × t)")]
            items += [(a / "lyapunov.png", "Lyapunov spectrum at init and trained")]
            parts.append(_fold(f"{r['run']}: the BPTT probes over training, the Lyapunov spectrum", _figs(items)))
    clip_cols = ["run", "clip", "status", "clip_fraction", "grad_norm_preclip_max", "diverged_at_step"]
    parts.append(_fold("Clipping statistics, every run", _table(done[clip_cols], left=("run", "clip", "status"))))
    return "".join(parts)


def demo_page(df: pd.DataFrame, runs_dir: Path, out: Path, note: str) -> Path:
    """`make demo`'s one page: the headline and its figure, the summary table, the models after training on test
    data and over training; `note` says what was run. Writes out/index.html (figures under out/figures/)."""
    figdir = out / "figures"
    done = df[df.status != "missing"]
    parts = [headline_section(df, runs_dir, figdir, more=False), f'<p class="note">{html.escape(note)}</p>',
             summary_section(df, literature=False)]
    for task, T in done.groupby(["task", "seq_len"], sort=False).size().index:
        parts.append(_figs([(compare_figure(done, runs_dir, task, T, figdir / f"bptt_compare_{task}-T{T}.png"),
                             f"{task}, T={T}: after training, on test data"),
                            (training_heatmaps(done, runs_dir, task, figdir / f"bptt_training_{task}.png"),
                             f"{task}, T={T}: over training (validation data)")], wide=True))
    heading = "gradlab demo: the gradient through time, one seed per model"
    return _write_page(out / "index.html", "gradlab demo", heading, parts)


def _write_page(path: Path, title: str, heading: str, sections: list[str]) -> Path:
    """The self-contained page (styles inline, no scripts), written atomically; its path."""
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><link rel='icon' href='data:,'><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1>" + "\n".join(sections) + "</body></html>\n")
    atomic_write_bytes(path, page.encode())
    return path


def run(df: pd.DataFrame, runs_dir: Path, geometry_dir: Path, out: Path, cliff_dir: Path | None = None,
        repro: pd.DataFrame | None = None) -> Path:
    """Write out/index.html (and the figures it inlines under out/figures/); return the page's path."""
    figdir = out / "figures"
    done = df[df.status != "missing"]
    grid = done.groupby(["task", "seq_len"], sort=False).size().index.tolist()
    nav = (f"<nav class='note'>{len(done)} runs; tasks {', '.join(dict.fromkeys(done.task))}; "
           f"T ∈ {sorted(set(int(t) for t in done.seq_len))}. Sections: <a href='#summary'>summary</a> · "
           "<a href='#bptt'>why: the gradient</a> · <a href='#dynamics'>why: the dynamics</a> · "
           "<a href='#literature'>literature</a> · <a href='#geometry'>geometry</a> · "
           "<a href='#appendix'>appendix</a></nav>")
    sections = [
        headline_section(df, runs_dir, figdir) + nav,
        summary_section(df),
        bptt_section(done, df, runs_dir, figdir, grid),
        dynamics_section(done, runs_dir, cliff_dir or Path("results/cliff"), figdir),
        literature_section(df, repro, runs_dir, figdir),
        geometry_section(done, runs_dir, geometry_dir),
        appendix_section(df, done, runs_dir, figdir, grid),
    ]
    return _write_page(out / "index.html", "gradlab study report", "gradlab: vanishing and exploding gradients",
                       sections)

