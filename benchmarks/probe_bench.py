"""Probe cost: training with the BPTT probe at its default interval against training without it, and the probe
itself (unrolled forward + one backward + the per-step quantities) on one B=64, T=200, H=128 batch."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from training_bench import B, H, T, gradlab_step_ms

from gradlab.cli import load
from gradlab.models import build_model
from gradlab.probes import bptt_probe

GROUP_TRAIN = "probe cost in training (CPU, lstm, B=64 T=200 H=128, mean ms/step over 200 steps)"
GROUP_PROBE = "one probe (CPU, B=64 T=200 H=128)"


def probe_ms(model: str, repeats: int = 5) -> list[float]:
    cfg = load("config", [f"model={model}", f"task.seq_len={T}", f"model.hidden_size={H}"])
    torch.manual_seed(0)
    net = build_model(cfg.model, cfg.task.spec())
    x, y = torch.rand(B, T, 2), torch.rand(B, 1)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        bptt_probe(net, x, lambda out, traces: F.mse_loss(out, y))
        times.append(1e3 * (time.perf_counter() - t0))
    return times[1:]


def run(rounds: int = 5, steps: int = 200) -> list[dict]:
    every = load("config", []).probe.every_n_steps
    variants = {
        "training, probe off": ("probe.enabled=false",),
        f"training, probe every {every} steps (default)": ("probe.enabled=true", f"probe.batch_size={B}",
                                                          "data.n_val=64"),
    }
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(rounds):
            for name, extra in variants.items():
                per_round[name].append(gradlab_step_ms("lstm", steps, Path(d), extra=extra, mean=True))
    off = statistics.median(per_round["training, probe off"])
    rows = [{"group": GROUP_TRAIN, "name": name, "mean_ms_per_step": round(statistics.median(v), 2),
             "rounds_ms": [round(x, 2) for x in v], "vs_probe_off": round(statistics.median(v) / off, 3)}
            for name, v in per_round.items()]
    for model in ("rnn", "lstm", "nfg_lstm"):
        times = probe_ms(model)
        rows.append({"group": GROUP_PROBE, "name": f"bptt_probe {model}",
                     "median_ms": round(statistics.median(times), 1),
                     "runs_ms": [round(x, 1) for x in times]})
    return rows
