"""The documented run (docs/probe.md): the three models on the adding task at T=100, trained, then probed on test
data.

`make documented-run` runs it and writes docs/results/documented_run.json (the figures docs/probe.md quotes, and the
machine), docs/bptt_adding_T100.png and docs/bptt_heatmap_rnn_T100.png; `make test-slow` runs it again and holds
the new figures against that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gradlab import cells
from gradlab.core.runfolder import RunFolder, atomic_write_bytes, read_json
from gradlab.launch.cli import load
from gradlab.pages.recording import write_result
from gradlab.probe.figures import compare_final_probes
from gradlab.stages import analyze
from gradlab.stages.train import run_training

MODELS = cells.CLASSIC
SETUP = {"seq_len": 100, "hidden_size": 64, "batch_size": 64, "lr": 1e-3, "max_steps": 2000, "seed": 0,
         "probe_every": 250, "probe_batch": 32, "probe_dtype": "float64"}


def overrides(model: str, work: Path) -> list[str]:
    s = SETUP
    return ["task=adding", f"task.seq_len={s['seq_len']}", f"model={model}", f"model.hidden_size={s['hidden_size']}",
            f"trainer.batch_size={s['batch_size']}", f"optim.lr={s['lr']}", f"trainer.max_steps={s['max_steps']}",
            f"seed={s['seed']}", f"probe.every_n_steps={s['probe_every']}", f"probe.batch_size={s['probe_batch']}",
            f"probe.dtype={s['probe_dtype']}",
            "logger.mode=disabled", f"data_dir={work / 'data'}", f"runs_dir={work / 'runs'}"]


def last_probe(bptt_csv: Path, quantity: str) -> pd.Series:
    """The last probe's per-step norms of layer 0, indexed by t."""
    df = pd.read_csv(bptt_csv)
    sel = df[(df.quantity == quantity) & (df.layer == 0)]
    return sel[sel.step == sel.step.max()].sort_values("t").set_index("t").value


def figures_of(run: RunFolder, model: str) -> dict[str, Any]:
    """The numbers docs/probe.md quotes for one model, from its run folder."""
    a, m = read_json(run.analysis.metrics), read_json(run.metrics)
    h = last_probe(run.analysis.bptt, "dL_dh_norm")
    out = {"test_loss": m["test_loss"], "solved": m["solved"], "h_ratio": float(h.iloc[0] / h.iloc[-1]),
           "decay_rate": a["bptt_decay_rate"], "decay_rate_predicted": a["bptt_decay_rate_predicted"]}
    if "bptt_decay_rate_bound" in a:  # an elementwise cell (the tanh RNN): its bound and horizons
        from gradlab.probe.bptt import horizon

        training = pd.read_csv(run.bptt)
        h_train = training[(training.quantity == "dL_dh_norm") & (training.layer == 0)]
        first, last = (h_train[h_train.step == step].sort_values("t").value for step in
                       (h_train.step.min(), h_train.step.max()))
        out.update(decay_rate_bound=a["bptt_decay_rate_bound"], h_min_training=float(h_train.value.min()),
                   horizon_at_start=horizon(torch.tensor(first.to_numpy())),
                   horizon_at_end=horizon(torch.tensor(last.to_numpy())))
    else:
        c = last_probe(run.analysis.bptt, "dL_dc_norm")
        out.update(c_ratio=float(c.iloc[0] / c.iloc[-1]), c_max_over_min=float(c.max() / c.min()),
                   decay_rate_c=a["bptt_decay_rate_c"])
    geo = pd.read_csv(run.analysis.geometry).set_index("set")
    out.update(hidden_angle_mean_deg=float(geo.loc["hidden_across_samples", "angle_mean_deg"]),
               hidden_random_sd_deg=float(geo.loc["hidden_across_samples", "random_angle_sd_deg"]),
               dW_hh_angle_mean_deg=float(geo.loc["dW_hh_across_time", "angle_mean_deg"]),
               dW_hh_angle_sd_deg=float(geo.loc["dW_hh_across_time", "angle_sd_deg"]),
               dW_hh_random_sd_deg=float(geo.loc["dW_hh_across_time", "random_angle_sd_deg"]),
               dW_hh_dim=int(geo.loc["dW_hh_across_time", "dim"]))
    return out


def run(work: Path, results_dir: Path, figures_dir: Path) -> dict[str, Any]:
    """Train and analyse the three models under work/, write the result file and the two figures in docs/."""

    runs: dict[str, RunFolder] = {}
    baseline = None
    for model in MODELS:
        cfg = load("config", overrides(model, work))
        baseline = run_training(cfg)["baseline_loss"]
        analyze.run(cfg)
        runs[model] = RunFolder.of(cfg.runs_dir, cfg.run_name)
    result = {"setup": SETUP, "baseline_loss": baseline,
              "models": {model: figures_of(run, model) for model, run in runs.items()}}
    tables = {f"{m} (step {SETUP['max_steps']})": pd.read_csv(run.analysis.bptt) for m, run in runs.items()}
    title = f"adding T={SETUP['seq_len']}: per-step gradient norms after training, test data"
    compare_final_probes(tables, title, figures_dir / "bptt_adding_T100.png")
    heatmap = runs[MODELS[0]].figures / "bptt_heatmap_dL_dh_norm_l0.png"
    atomic_write_bytes(figures_dir / "bptt_heatmap_rnn_T100.png", heatmap.read_bytes())
    write_result("documented_run", result, results_dir)
    return result
