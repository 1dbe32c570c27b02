"""Stage `report`: the study as one self-contained HTML page (images inlined as data: URIs, no scripts, no network).

Sections: the headline and summary table (published results beside ours), learning curves, the BPTT probe per
model (norm vs t, heatmaps over training, the models side by side on test data), clipping statistics, and the
geometry figures with their theory (random vectors, then the networks' own vectors).
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from gradlab import plots  # noqa: E402
from gradlab.literature import published_table  # noqa: E402
from gradlab.runfolder import RunFolder, atomic_write_bytes  # noqa: E402
from gradlab.summary import MODELS, cells, headline, read_csv, val_curve  # noqa: E402

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.solved td{background:#eaf7ea}tr.diverged td{background:#fbeaea}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;flex:0 1 calc(50% - 6px);max-width:calc(50% - 6px)}
.figs img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:12px;color:#555}
.headline{font-size:1.1em;background:#f6f8fa;padding:.6em 1em;border-left:4px solid #4a7}
.note{font-size:12px;color:#555}
"""


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _figs(items: list[tuple[Path, str]]) -> str:
    present = [(p, c) for p, c in items if Path(p).is_file()]
    if not present:
        return '<p class="note">(no figures: the runs have not produced them)</p>'
    return '<div class="figs">' + "".join(_img(p, c) for p, c in present) + "</div>"


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, left: tuple[str, ...] = (), row_class=None) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = f' class="{row_class(r)}"' if row_class else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{"l" if c in left else ""}">{_cell(r[c])}</td>'
                                            for c in df.columns) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _style(model: str, clip: str) -> dict:
    color = {m: f"C{i}" for i, m in enumerate(MODELS)}.get(model, "C4")
    return {"color": color, "ls": "-" if clip == "none" else ("--" if clip.startswith("norm") else ":")}


def _runs_figure(df: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path, curve, ylabel: str,
                 title: str, lines: tuple[tuple[float, dict], ...] = ()) -> Path | None:
    """One line per (model, clip) of (task, T) (colour = model, dashes = clipping), y on a log scale: the median over
    its seeds, with the band from the lowest to the highest seed where there are several. `curve(run_dir)` gives a
    run's series (index = x) or None; None when no run has one."""
    sel = df[(df.task == task) & (df.seq_len == T) & (df.status != "missing")]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    drawn = 0
    for (model, clip), g in sel.groupby(["model", "clip"], sort=False):
        series = [y for y in (curve(runs_dir / r) for r in g["run"]) if y is not None]
        if not series:
            continue
        table = pd.concat(series, axis=1).sort_index()
        style = _style(model, clip)
        n = table.shape[1]
        ax.plot(table.index, table.median(axis=1).to_numpy(), lw=1.3,
                label=f"{model} {clip}" + (f" (median of {n} seeds, band: min-max)" if n > 1 else " (n=1)"),
                **style)
        if n > 1:
            ax.fill_between(table.index, table.min(axis=1).to_numpy(), table.max(axis=1).to_numpy(),
                            color=style["color"], alpha=0.15, lw=0)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    for value, style in lines:
        ax.axhline(value, lw=0.8, **style)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{task}, T={T}: {title}", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return plots.save(fig, path)


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


def _representatives(runs: pd.DataFrame) -> pd.DataFrame:
    """One run per (task, model): unclipped where there is one, else the first clip; the lowest seed."""
    if runs.empty:
        return runs
    order = runs.assign(_clipped=runs["clip"] != "none").sort_values(["_clipped", "seed"], kind="stable")
    return order.drop_duplicates(["task", "seq_len", "model"]).drop(columns="_clipped")


def summary_section(df: pd.DataFrame) -> str:
    """The headline, the pooled table per task and the published results with their setups."""
    parts = [f'<p class="headline">{html.escape(headline(df))}</p>']
    missing = df[df.status == "missing"]
    if len(missing):
        parts.append(f'<p class="note">{len(missing)} of {len(df)} runs are missing: '
                     f"{html.escape(', '.join(missing.run.head(8)))}</p>")
    parts.append('<h2 id="summary">Summary: which model learns which T</h2>')
    for task, g in cells(df).groupby("task", sort=False):
        parts.append(f"<h3>{html.escape(task)}</h3>")
        parts.append(_table(g.drop(columns="task"), left=("model", "clip", "published"),
                            row_class=lambda r: "solved" if r["solved"].split("/")[0] != "0" else
                            ("diverged" if r["diverged"].split("/")[0] != "0" else "")))
    parts.append('<p class="note">solved: test loss below 1% of the memoryless baseline (k of n seeds). '
                 "horizon: steps back from t=T−1 until ‖∂ℓ/∂h_t‖ is below 1e-3 of its value there. "
                 "h_0/h_T−1: ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ on test data after training; (training): its median over the "
                 "probes while training. decay_rate: slope of ln‖∂ℓ/∂h_t‖ per step on test data after training; "
                 "predicted: rnn mean field (W_hh, tanh'), lstm mean ln f_t, nfg 0.</p>")
    pub = pd.DataFrame(published_table())
    parts.append("<h3>Published results</h3>"
                 '<p class="note">Each with the setup it holds for; the summary table says, per cell, where ours '
                 "differs.</p>" + _table(pub, left=tuple(pub.columns)))
    return "".join(parts)


def bptt_section(done: pd.DataFrame, runs_dir: Path, figdir: Path, grid: list[tuple[str, int]]) -> str:
    """Per (task, T): the last test probe of every model side by side; at each task's longest T also each model's
    probes over training (norm vs t and the heat map)."""
    parts = ['<h2 id="bptt">Gradients through time (BPTT probe)</h2>',
             '<p class="note">‖∂ℓ/∂h_t‖ (all models) and ‖∂ℓ/∂c_t‖ (LSTMs) for every time step t, per sample, '
             "averaged over the probe batch. Left: the last probe on test sequences, the models side by side; then "
             "each model's probes over training (validation sequences).</p>"]
    for task, T in grid:
        sel = done[(done.task == task) & (done.seq_len == T)]
        tables = {}
        for _, r in sel.iterrows():
            csv = RunFolder.of(runs_dir, r["run"]).analysis.bptt
            if csv.is_file() and (r["clip"] == "none" or not (sel["clip"] == "none").any()):
                tables[f"{r['model']} {r['clip']} s{r['seed']}"] = read_csv(csv)
        items: list[tuple[Path, str]] = []
        if tables:
            items.append((plots.compare_final_probes(tables, f"{task}, T={T}: after training, test data",
                                                     figdir / f"bptt_compare_{task}-T{T}.png"),
                          f"{task} T={T}: gradient norms relative to t=T−1, all models"))
        if T == done[done.task == task].seq_len.max():
            for _, r in _representatives(sel).iterrows():
                f = RunFolder.of(runs_dir, r["run"]).figures
                for q in ("dL_dh_norm", "dL_dc_norm"):
                    items += [(f / f"bptt_{q}_l0.png", f"{r['run']}: {q} vs t over training"),
                              (f / f"bptt_heatmap_{q}_l0.png", f"{r['run']}: {q}, heatmap (training step × t)")]
        parts.append(f"<h3>{html.escape(task)}, T={T}</h3>" + _figs(items))
    return "".join(parts)


def geometry_section(done: pd.DataFrame, runs_dir: Path, geometry_dir: Path) -> str:
    """Random vectors against exact theory (the geometry stage), then the networks' own vectors."""
    parts = ['<h2 id="geometry">High-dimensional geometry</h2>']
    ref = geometry_dir / "reference.csv"
    if ref.is_file():
        g = read_csv(ref)
        keep = g[g.statistic.isin(["angle_sd_deg", "cos_var_times_D", "dist_sq_mean_over_D", "shell_fraction_mc",
                                   "relative_contrast", "ball_cube_ratio"])]
        keep = keep.assign(rel_gap=(keep.value / keep.theory - 1).where(keep.theory.notna()))
        parts.append('<p class="note">Random vectors against exact theory (seed 004; science.md §4).</p>')
        parts.append(_table(keep, left=("distribution", "statistic")))
    gfig = geometry_dir / "figures"
    parts.append(_figs([(gfig / f"{n}.png", n.replace("_", " ")) for n in
                        ("angle_histograms", "angle_sd_vs_D", "relative_contrast_vs_D", "distances_vs_D",
                         "shell_fraction_vs_D", "ball_cube_ratio_vs_D")]))
    parts.append("<h3>The networks' own vectors</h3>"
                 '<p class="note">Angles between hidden states, per-step gradients ∂ℓ/∂h_t and per-step W_hh '
                 "contributions, beside random vectors of the same dimension (test data, after training).</p>")
    longest = _representatives(done[done.seq_len == done.seq_len.max()]) if len(done) else done
    parts.append(_figs([(RunFolder.of(runs_dir, r["run"]).analysis.figures / "geometry_angles.png", r["run"])
                        for _, r in longest.iterrows()]))
    return "".join(parts)


def dynamics_section(done: pd.DataFrame, runs_dir: Path, cliff_dir: Path, figdir: Path) -> str:
    """Why: the dynamics. λ_1 against the measured decay rate (one point per run), the agreement per model with its
    reading (generated from the numbers), a spectrum per model, and Pascanu et al.'s cliff."""
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
        longest = _representatives(have[have.seq_len == have.seq_len.max()])
        parts.append(_figs([(scatter, "λ_1 vs measured decay rate")]
                           + [(RunFolder.of(runs_dir, r["run"]).analysis.figures / "lyapunov.png",
                               f"{r['run']}: spectrum at init and trained") for _, r in longest.iterrows()]))
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
        parts.append(_figs([(cliff_dir / "figures" / "cliff.png", "log10 ‖∇ℓ‖ over (w, b), with both runs")]))
    return "".join(parts)


def literature_section(repro: pd.DataFrame | None, runs_dir: Path, figdir: Path) -> str:
    """The reproduction table (verdicts computed by the summarize stage) and, for the continual stream, the
    cell-state norm and ‖∂ℓ/∂c_t‖ along the stream from each model's last training probe."""
    parts = ['<h2 id="literature">Held against the literature: the reproduction table</h2>']
    if repro is None or repro.empty:
        return "".join(parts + ['<p class="note">No reproduction table (results/summary/reproduction.csv).</p>'])
    parts.append('<p class="note">One row per published claim and (model, T) run in the paper\'s own setup '
                 "(conf/paper/), over seeds; the verdict follows from the numbers: reproduced when most seeds' "
                 "outcome is the paper's. <b>ours differs</b> lists every setup key where our run departs from the "
                 "paper, and what gradlab has no key for.</p>")
    parts.append(_table(repro.drop(columns=["runs", "setup"], errors="ignore"),
                        left=("source", "claim", "their setup", "model", "ours differs", "verdict")))
    stream = repro[repro.setup.str.contains("gers00", na=False) & (repro.runs.fillna("") != "")]
    curves: dict[str, pd.DataFrame] = {}
    for _, r in stream.iterrows():
        bptt = RunFolder.of(runs_dir, str(r["runs"]).split()[0]).bptt
        if bptt.is_file():
            d = read_csv(bptt)
            curves[str(r["model"])] = d[d.step == d.step.max()]
    if curves:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for model, d in curves.items():
            for ax, quantity in zip(axes, ("c_norm", "dL_dc_norm"), strict=True):
                q = d[(d.quantity == quantity) & (d.layer == 0)].sort_values("t")
                ax.plot(q.t, q.value, label=model, **_style(model, "none"))
        axes[0].set(xlabel="t (stream step)", ylabel="‖c_t‖", title="cell state along the stream")
        axes[1].set(xlabel="t (stream step)", ylabel="‖∂ℓ/∂c_t‖", yscale="log", title="gradient to the cell state")
        axes[0].legend()
        fig.tight_layout()
        figdir.mkdir(parents=True, exist_ok=True)
        path = figdir / "continual_stream.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        growth = {m: float(d[d.quantity == "c_norm"].sort_values("t").value.iloc[-1]) for m, d in curves.items()}
        parts.append("<h3>Why the forget gate exists (Gers et al. 2000)</h3><p>At the end of the training stream "
                     + ", ".join(f"{m}: ‖c_t‖ = {v:.3g}" for m, v in growth.items())
                     + " (the last training probe of seed 0).</p>")
        parts.append(_figs([(path, "the continual stream: ‖c_t‖ and ‖∂ℓ/∂c_t‖, last training probe")]))
    return "".join(parts)


def run(df: pd.DataFrame, runs_dir: Path, geometry_dir: Path, out: Path, cliff_dir: Path | None = None,
        repro: pd.DataFrame | None = None) -> Path:
    """Write out/index.html (and the figures it inlines under out/figures/); return the page's path."""
    figdir = out / "figures"
    done = df[df.status != "missing"]
    grid = done.groupby(["task", "seq_len"], sort=False).size().index.tolist()
    clip_cols = ["run", "clip", "status", "clip_fraction", "grad_norm_preclip_max", "diverged_at_step"]
    sections = [
        summary_section(df),
        '<h2 id="learning">Learning curves</h2>'
        + _figs([(learning_figure(df, runs_dir, t, T, figdir / f"learning_{t}-T{T}.png") or Path(""), f"{t}, T={T}")
                 for t, T in grid]),
        bptt_section(done, runs_dir, figdir, grid),
        '<h2 id="clipping">Clipping statistics</h2>' + _table(done[clip_cols], left=("run", "clip", "status"))
        + _figs([(grad_norm_figure(df, runs_dir, t, T, figdir / f"grad_norm_{t}-T{T}.png") or Path(""),
                  f"{t}, T={T}: ‖g‖ per optimizer step") for t, T in grid]),
        literature_section(repro, runs_dir, figdir),
        dynamics_section(done, runs_dir, cliff_dir or Path("results/cliff"), figdir),
        geometry_section(done, runs_dir, geometry_dir),
    ]
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>gradlab study report</title>"
            f"<link rel='icon' href='data:,'><style>{CSS}</style></head><body>"
            "<h1>gradlab: vanishing and exploding gradients</h1>"
            f"<p class='note'>{len(done)} runs; tasks {', '.join(sorted(set(done.task)))}; "
            f"T ∈ {sorted(set(int(t) for t in done.seq_len))}. Sections: <a href='#summary'>summary</a> · "
            "<a href='#learning'>learning curves</a> · <a href='#bptt'>BPTT</a> · <a href='#clipping'>clipping</a> · "
            "<a href='#literature'>literature</a> · "
            "<a href='#dynamics'>dynamics</a> · <a href='#geometry'>geometry</a></p>" + "\n".join(sections)
            + "</body></html>\n")
    path = out / "index.html"
    atomic_write_bytes(path, page.encode())
    return path
