"""Stage `report`: the study as one self-contained HTML page (images inlined as data: URIs, no scripts, no network).

In the order of a reader's questions. What happens: a one-line headline and the headline figure (how much of the
gradient reaches each step, the learning curves, and loss against T) on the first screen, then the summary table.
Why: the gradient through time over training and after it, its norm per step (what clipping cuts), the dynamics
(Lyapunov exponents) and Pascanu et al.'s cliff. Then the literature (each published result once, with its setup,
and the reproduction table), the geometry of high-dimensional vectors, and last, folded, every T and clip setting
and the per-run figures.

The sections are here; the figures in gradlab.report.figures, the summary and published-results tables in
gradlab.report.tables, the HTML pieces and the page writer in gradlab.report.html.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from gradlab.core.runfolder import RunFolder
from gradlab.report.figures import (
    compare_figure,
    grad_norm_figure,
    headline_figure,
    learning_figure,
    lyapunov_vs_decay,
    representatives,
    training_heatmaps,
)
from gradlab.report.forest import forest_figure
from gradlab.report.html import figs, fold, html_table, write_page
from gradlab.report.memory import memory_section
from gradlab.report.stream import last_probe_along_the_stream, stream_section
from gradlab.report.tables import SUMMARY_TITLES, pub_anchor, pub_of, published_results, summary_table
from gradlab.study.judging import VERDICT_RULE
from gradlab.study.summary import headline, headline_line, headline_task, read_csv


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


def summary_section(df: pd.DataFrame, literature: bool = True) -> str:
    """The pooled table per task (numbers only), explained in one sentence; the published results it links to are
    in the literature section (literature=False: a page without one, no links)."""
    parts = ['<h2 id="summary">Summary: which model learns which T</h2>']
    tasks = list(dict.fromkeys(df.task))
    for task in tasks:
        if len(tasks) > 1:
            parts.append(f"<h3>{html.escape(task)}</h3>")
        parts.append(html_table(summary_table(df, task, literature), left=("model", "clip"), raw=("lit.",),
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
        parts.append(figs(items, wide=True))
        parts.append(f"<h3>{html.escape(task)}, T={T}: every clip setting</h3>" + figs([
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
        parts.append(html_table(wide, left=("distribution", "statistic")))
    gfig = geometry_dir / "figures"
    figures = [(gfig / f"{n}.png", n.replace("_", " ")) for n in
               ("angle_histograms", "angle_sd_vs_D", "relative_contrast_vs_D", "distances_vs_D",
                "shell_fraction_vs_D", "ball_cube_ratio_vs_D")]
    parts.append(figs(figures[:2]))
    if any(p.is_file() for p, _ in figures[2:]):
        parts.append(fold("Distances, relative contrast and the volume of the shell and the ball against D",
                           figs(figures[2:])))
    longest = representatives(done[done.seq_len == done.seq_len.max()]) if len(done) else done
    parts.append(fold("The networks' own vectors: angles between hidden states, per-step gradients ∂ℓ/∂h_t and "
                       "per-step W_hh contributions, beside random vectors of the same dimension (test data, after "
                       "training; one run per model)",
                       figs([(RunFolder.of(runs_dir, r["run"]).analysis.figures / "geometry_angles.png", r["run"])
                              for _, r in longest.iterrows()])))
    return "".join(parts)


def dynamics_section(done: pd.DataFrame, runs_dir: Path, cliff_dir: Path, figdir: Path) -> str:
    """Why: the dynamics. λ_1 against the measured decay rate (one point per run), the agreement per model with its
    reading (generated from the numbers), and Pascanu et al.'s cliff (each model's spectrum: the appendix)."""
    import json

    from gradlab.study.summary import lyapunov_agreement, lyapunov_reading

    parts = ['<h2 id="dynamics">Why: the dynamics</h2>',
             '<p class="note">λ_1: the largest finite-time Lyapunov exponent of the trained net along the test '
             "sequences (ln per step; the state is (h, c) for the LSTMs); beside it the BPTT probe's measured "
             "decay rate of ‖∂ℓ/∂h_t‖. Nothing is fitted to the other.</p>"]
    have = done.dropna(subset=["lyapunov_max", "bptt_decay_rate"])
    if len(have):
        agreement = lyapunov_agreement(done)
        parts.append(f"<p>{html.escape(lyapunov_reading(agreement))}</p>")
        parts.append(html_table(agreement, left=("model",)))
        scatter = lyapunov_vs_decay(have, "λ_1 against the measured gradient decay, per run",
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
        parts.append(figs(figures))
    return "".join(parts)


def literature_section(df: pd.DataFrame, repro: pd.DataFrame | None, runs_dir: Path, figdir: Path) -> str:
    """Each published result once, with its setup (the summary table and the reproduction table link to it); the
    reproduction table (verdicts computed by the summarize stage) and, for the continual stream, the cell-state norm
    and ‖∂ℓ/∂c_t‖ along the stream from each model's last training probe."""
    parts = ['<h2 id="literature">Held against the literature</h2>']
    forest = forest_figure(repro, figdir / "forest.png") if repro is not None else None
    if forest is not None:
        caption = ("Each judged claim: the paper's number against our interval over the seeds, coloured by the "
                   "verdict (the reproduction table below)")
        parts.append('<div id="forest">' + figs([(forest, caption)], wide=True) + "</div>")
    parts += ["<h3>Published results</h3>",
             '<p class="note">Each with the setup it holds for, the cells of this study it speaks to and every way '
             "their runs' setup differs from it.</p>"]
    pub = published_results(df, runs_dir)
    parts.append(html_table(pub, left=tuple(c for c in pub.columns if c != "#"), table_id="published",
                        row_id=lambda r: pub_anchor(int(r["#"].strip("[]")) - 1)))
    parts.append('<h3 id="reproduction">The reproduction table: the papers\' own setups</h3>')
    if repro is None or repro.empty:
        return "".join(parts + ['<p class="note">No reproduction table (results/summary/reproduction.csv).</p>'])
    parts.append('<p class="note">One row per published claim and (model, T) run in the paper\'s own setup '
                 "(conf/paper/), over seeds. " + html.escape(VERDICT_RULE) + " Under the table: each row's band, "
                 "every seed's value, and every way our setup departs from the paper's.</p>")
    shown = repro.assign(published=[pub_of(str(s), str(c)) for s, c in zip(repro.source, repro.claim, strict=True)])
    ran = shown[shown.seeds.fillna(0).astype(int) > 0]
    keep = [c for c in ("published", "model", "T", "seeds", "solved", "theirs", "ours", "verdict", "would decide",
                        "in the band") if c in shown.columns]
    if len(ran):
        parts.append(html_table(ran[keep], left=("published", "model", "verdict"), raw=("published",)))
        parts.append(fold("Each row's band, seed values and setup differences", "<ul>" + "".join(
            f"<li>{r['published']} {html.escape(str(r['model']))} T={r['T']}: {html.escape(str(r.get('band', '')))}. "
            f"{html.escape(str(r.get('seed values', '')))}. <b>Ours differs</b>: "
            f"{html.escape(str(r['ours differs']))} (<code>{html.escape(str(r['setup']))}</code>).</li>"
            for _, r in ran.iterrows()) + "</ul>"))
    rest = shown[shown.seeds.fillna(0).astype(int) == 0]
    if len(rest):
        parts.append('<p class="note">Not run here: ' + "; ".join(
            f"{r['published']} ({html.escape(str(r['ours differs']))})" for _, r in rest.iterrows()) + ".</p>")
    stream = repro[repro.setup.str.contains("gers00", na=False) & (repro.runs.fillna("") != "")]
    parts.append(last_probe_along_the_stream(stream, runs_dir, figdir))
    # the test streams, never reset: errors and ‖c_t‖ against position (the runs' stream.csv; gradlab.report.stream)
    parts.append(stream_section({str(r["model"]): str(r["runs"]).split() for _, r in stream.iterrows()}, runs_dir,
                                figdir))
    return "".join(parts)


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
        parts.append(fold(f"{task}, T={T}: learning curves, gradient norms and the probes after training", figs([
            (learning_figure(df, runs_dir, task, T, figdir / f"learning_{task}-T{T}.png"),
             f"{task}, T={T}: learning curves (colour: model; dashes: clipping)"),
            (grad_norm_figure(df, runs_dir, task, T, figdir / f"grad_norm_{task}-T{T}.png"),
             f"{task}, T={T}: ‖g‖ per optimizer step, before clipping")])
            + figs([(compare_figure(done, runs_dir, task, T, figdir / f"bptt_compare_{task}-T{T}.png"),
                      f"{task}, T={T}: gradient norms relative to t=T−1 after training")], wide=True)))
    for task in longest:
        sel = done[(done.task == task) & (done.seq_len == longest[task])]
        for _, r in representatives(sel).iterrows():
            f, a = RunFolder.of(runs_dir, r["run"]).figures, RunFolder.of(runs_dir, r["run"]).analysis.figures
            items: list[tuple[Path | None, str]] = []
            for q in ("dL_dh_norm", "dL_dc_norm"):
                items += [(f / f"bptt_{q}_l0.png", f"{q} vs t over training"),
                          (f / f"bptt_heatmap_{q}_l0.png", f"{q}: heatmap (training step × t)")]
            items += [(a / "lyapunov.png", "Lyapunov spectrum at init and trained")]
            parts.append(fold(f"{r['run']}: the BPTT probes over training, the Lyapunov spectrum", figs(items)))
    clip_cols = ["run", "clip", "status", "clip_fraction", "grad_norm_preclip_max", "diverged_at_step"]
    parts.append(fold("Clipping statistics, every run", html_table(done[clip_cols], left=("run", "clip", "status"))))
    return "".join(parts)


def demo_page(df: pd.DataFrame, runs_dir: Path, out: Path, note: str) -> Path:
    """`make demo`'s one page: the headline and its figure, the summary table, the models after training on test
    data and over training; `note` says what was run. Writes out/index.html (figures under out/figures/)."""
    figdir = out / "figures"
    done = df[df.status != "missing"]
    parts = [headline_section(df, runs_dir, figdir, more=False), f'<p class="note">{html.escape(note)}</p>',
             summary_section(df, literature=False)]
    for task, T in done.groupby(["task", "seq_len"], sort=False).size().index:
        parts.append(figs([(compare_figure(done, runs_dir, task, T, figdir / f"bptt_compare_{task}-T{T}.png"),
                             f"{task}, T={T}: after training, on test data"),
                            (training_heatmaps(done, runs_dir, task, figdir / f"bptt_training_{task}.png"),
                             f"{task}, T={T}: over training (validation data)")], wide=True))
    heading = "gradlab demo: the gradient through time, one seed per model"
    return write_page(out / "index.html", "gradlab demo", heading, parts)


def run(df: pd.DataFrame, runs_dir: Path, geometry_dir: Path, out: Path, cliff_dir: Path | None = None,
        repro: pd.DataFrame | None = None, memory_dir: Path | None = None) -> Path:
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
        memory_section(done, runs_dir, memory_dir or Path("results/memory"), figdir, grid),
        literature_section(df, repro, runs_dir, figdir),
        geometry_section(done, runs_dir, geometry_dir),
        appendix_section(df, done, runs_dir, figdir, grid),
    ]
    return write_page(out / "index.html", "gradlab study report", "gradlab: vanishing and exploding gradients",
                       sections)

