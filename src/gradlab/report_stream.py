"""The report's continual-stream figure (Gers et al. 2000): each paper run's test streams position by position, from
its stream.csv (gradlab.stream), the error rate beside ‖c_t‖, one line per run, coloured by model, log position.
gradlab.stages.report places it in the literature section, under the gers00 rows of the reproduction table."""

from __future__ import annotations

import html
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from gradlab import plots  # noqa: E402
from gradlab.report_figures import RC, legend_row, model_style  # noqa: E402
from gradlab.report_html import figs  # noqa: E402
from gradlab.runfolder import RunFolder, read_json  # noqa: E402


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
        return plots.save(fig, path)


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
