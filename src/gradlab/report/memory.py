"""The report's "Why: memory" section: the curse of memory measured against its closed forms (the memory stage,
results/memory/) and, per model, the state's sensitivity to its recurrent parameters beside ‖∂ℓ/∂h_t‖ (the probe's
dh_dtheta_norm and dL_dh_norm, test data after training where the analyze stage ran)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from gradlab.core.figures import plt, save
from gradlab.report.figures import RC, _band, _headline_clip, _models, legend_row, model_style
from gradlab.report.html import figs
from gradlab.study.curves import probe_last, probe_ratio

QUANTITY = {"h_sq": "E[h²]", "sens_sq": "E[(∂h/∂λ)²] (plain), E[(∂h/∂ν)²] (normalised)"}


def sensitivity_figure(done: pd.DataFrame, runs_dir: Path, task: str, T: int, path: Path) -> Path | None:
    """Two panels, every model at (task, T), one clip setting: ‖∂ℓ/∂h_t‖ relative to t=T−1 and S_t =
    √E‖∂h_t/∂θ_rec‖², median over seeds with the lowest-to-highest band."""
    sel = done[(done.task == task) & (done.seq_len == T)]
    if sel.empty:
        return None
    clip = _headline_clip(sel)
    at = sel[sel["clip"] == clip]
    models, seeds = [], set()
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.0), layout="constrained")
        panels = ((lambda run: probe_ratio(runs_dir, run, "dL_dh_norm")[0], "‖∂ℓ/∂h_t‖ / its value at t=T−1"),
                  (lambda run: probe_last(runs_dir, run, "dh_dtheta_norm")[0], "‖∂h_t/∂θ_rec‖ (sensitivity)"))
        for ax, (curve, label) in zip(axes, panels, strict=True):
            for model in _models(at):
                curves = [c for c in (curve(r) for r in at.run[at.model == model]) if c is not None]
                if curves:
                    seeds.add(_band(ax, curves, model, color=model_style(model, clip)["color"]))
                    models += [model] if model not in models else []
            ax.set(yscale="log", xlabel="time step t", title=f"{task}, T={T}, clip {clip}: {label}")
            ax.grid(alpha=0.3, which="both")
        if not models:
            plt.close(fig)
            return None
        legend_row(fig, models, seeds, references=False)
        return save(fig, path)


def slopes_text(memory_dir: Path) -> str:
    """The memory stage's fitted slopes against the theory's, as one paragraph (empty without the stage)."""
    path = memory_dir / "slopes.json"
    if not path.is_file():
        return ""
    s = json.loads(path.read_text())
    fits = [f"{r['model']} {QUANTITY.get(r['quantity'], r['quantity']).split(' (')[0]} at ρ = {r['rho']:g}: "
            f"{r['measured']:.3f} ± {r['stderr']:.3f} (theory {r['expected']:g})"
            for r in s.get("slopes", []) if r["model"] == "plain"]
    limits = [f"ρ = {r['rho']:g}: {r['measured']:.4g} ± {r['stderr']:.2g} (limit {r['limit']:g})"
              for r in s.get("normalised_sensitivity_limit", []) if r.get("limit") is not None]
    return (f"<p>One unit h ← λh + x against its closed forms (the memory stage, {s.get('n_sequences', '?')} "
            f"sequences a point; the worst measured point lies {s.get('max_abs_z', float('nan')):.2f} standard "
            "errors from its formula). Log-log slopes against the memory 1/(1 − λ): "
            + html.escape("; ".join(fits)) + ". With the LRU's normalisation γ = √(1 − λ²) and λ = exp(−exp ν) the "
            "sensitivity at λ = 0.999 stays at its finite limit, " + html.escape("; ".join(limits))
            + ", while constant inputs (ρ = 1) make it grow again.</p>")


def memory_section(done: pd.DataFrame, runs_dir: Path, memory_dir: Path, figdir: Path,
                   grid: list[tuple[str, int]]) -> str:
    parts = ['<h2 id="memory">Why: memory (the curse of memory)</h2>',
             '<p class="note">Zucchet &amp; Orvieto 2024: as a recurrence\'s memory grows, its state becomes ever more '
             "sensitive to the recurrent parameters, even where the gradient through time neither vanishes nor "
             "explodes (docs/theory.md, \"The curse of memory\").</p>", slopes_text(memory_dir)]
    items: list[tuple[Path | None, str]] = [
        (memory_dir / "curse_of_memory.png", "the curse of memory: E[h²] and the sensitivity against 1/(1 − λ), "
                                              "exact lines and measured points")]
    for task in dict.fromkeys(t for t, _ in grid):
        T = int(done[done.task == task].seq_len.max())
        items.append((sensitivity_figure(done, runs_dir, task, T, figdir / f"sensitivity_{task}-T{T}.png"),
                      f"{task}, T={T}: per model, the gradient through time beside the state's sensitivity to its "
                      "recurrent parameters (median over seeds)"))
    parts.append(figs(items, wide=True))
    return "".join(parts)
