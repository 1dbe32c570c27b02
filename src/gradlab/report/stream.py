"""The report's continual-stream figure (Gers et al. 2000): each paper run's test streams position by position, from
its stream.csv (gradlab.probe.stream), the error rate beside ‖c_t‖, one line per run, coloured by model, log position.
gradlab.stages.report places it in the literature section, under the gers00 rows of the reproduction table."""

from __future__ import annotations

import html
import statistics
from pathlib import Path

import pandas as pd

from gradlab.core.figures import plt, save
from gradlab.core.runfolder import RunFolder, read_json
from gradlab.report.figures import RC, legend_row, model_style
from gradlab.report.html import figs
from gradlab.study.summary import read_csv


def stream_figure(tables: dict[str, list[pd.DataFrame]], path: Path) -> Path:
    """Error rate (symlog: 0 at the bottom) and ‖c_t‖ (log) against stream position (log), one line per run."""
    with plt.rc_context(RC):
        fig, (err, c) = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
        for model, runs in tables.items():
            style = model_style(model, "none")
            for d in runs:
                x = (d.bin_start + d.bin_end) / 2
                err.plot(x, d.error_rate, lw=1.3, alpha=0.8, **style)
                if d.c_norm.notna().any():
                    c.plot(x, d.c_norm, lw=1.3, alpha=0.8, **style)
        err.set(xscale="log", xlabel="position in the test stream (symbols)",
                ylabel="error rate (steps with a wrong unit)", title="prediction errors along the stream")
        err.set_yscale("symlog", linthresh=1e-4)
        err.set_ylim(bottom=0)
        c.set(xscale="log", yscale="log", xlabel="position in the test stream (symbols)", ylabel="‖c_t‖",
              title="cell state along the stream")
        legend_row(fig, list(tables), {1}, references=False)
        return save(fig, path)


def _span(records: list[dict], key: str, fmt: str) -> str:
    """median [lowest–highest] of a metrics.json key over runs ("–" where none has it)."""
    v = [m[key] for m in records if m.get(key) is not None]
    return f"{statistics.median(v):{fmt}} [{min(v):{fmt}}–{max(v):{fmt}}]" if v else "–"


def stream_section(runs: dict[str, list[str]], runs_dir: Path, figdir: Path) -> str:
    """The figure and, per model, the headline numbers over its runs (median [lowest-highest]); "" when no run has
    a stream.csv. runs: model -> its run names."""
    tables: dict[str, list[pd.DataFrame]] = {}
    numbers: dict[str, list[dict]] = {}
    for model, names in runs.items():
        for name in names:
            folder = RunFolder.of(runs_dir, name)
            if folder.stream.is_file():
                tables.setdefault(model, []).append(pd.read_csv(folder.stream))
                numbers.setdefault(model, []).append(read_json(folder.metrics) or {})
    if not tables:
        return ""
    path = stream_figure(tables, figdir / "continual_stream_errors.png")
    lines = []
    for model, ms in numbers.items():
        first = ms[0]
        runs_text = f"{len(ms)} run{'s' * (len(ms) != 1)}"
        lines.append(f"{model} ({runs_text}): {_span(ms, 'stream_symbols_before_first_error', ',.0f')} symbols "
                     f"before the first error (mean over the {first.get('stream_streams')} test streams of "
                     f"{first.get('stream_length'):,} symbols), error rate {_span(ms, 'stream_error_rate', '.2g')} "
                     f"(last bin {_span(ms, 'stream_error_rate_last_bin', '.2g')}), ‖c_t‖ at the end "
                     f"{_span(ms, 'stream_c_norm_end', '.3g')}")
    return ("<h3>Along the test stream, never reset</h3><p>" + "; ".join(html.escape(s) for s in lines)
            + " (median [lowest–highest] over seeds).</p>"
            + figs([(path, "the test streams position by position: the error rate and ‖c_t‖, one line per run")],
                   wide=True))


def last_probe_along_the_stream(stream: pd.DataFrame, runs_dir: Path, figdir: Path) -> str:
    """Why the forget gate exists: ‖c_t‖ and ‖∂ℓ/∂c_t‖ along the training stream, from each model's last training
    probe (the reproduction table's gers00 rows, `stream`); "" where no run has a bptt.csv."""
    parts = []
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
                    ax.plot(q.t, q.value, lw=1.5, color=model_style(model, "none")["color"])
            axes[0].set(xlabel="t (stream step)", ylabel="‖c_t‖", title="cell state along the stream")
            axes[1].set(xlabel="t (stream step)", ylabel="‖∂ℓ/∂c_t‖", yscale="log",
                        title="gradient to the cell state")
            legend_row(fig, list(curves), {1}, references=False)
            path = save(fig, figdir / "continual_stream.png")
        growth = {m: float(d[d.quantity == "c_norm"].sort_values("t").value.iloc[-1]) for m, d in curves.items()}
        parts.append("<h3>Why the forget gate exists (Gers et al. 2000)</h3><p>At the end of the training stream "
                     + ", ".join(f"{m}: ‖c_t‖ = {v:.3g}" for m, v in growth.items())
                     + " (the last training probe of the lowest seed).</p>")
        parts.append(figs([(path, "the continual stream: ‖c_t‖ and ‖∂ℓ/∂c_t‖, last training probe")], wide=True))
    return "".join(parts)
