"""Probe cost: training with the BPTT probe at its default interval against training without it, and the probe
itself (unrolled forward + one backward + the per-step quantities) on one B=64, T=200, H=128 batch."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from training_bench import WARMUP, B, H, T, gradlab_fit

from gradlab.launch.cli import load
from gradlab.models.net import build_model
from gradlab.probe.bptt import bptt_probe
from gradlab.training.subnormals import flushing

GROUP_TRAIN = ("probe cost in training (CPU, lstm, B=64 T=200 H=128, 300 steps a round; ms/step unless the name "
               "says otherwise)")
GROUP_PROBE = "one probe (CPU, B=64 T=200 H=128)"


def probe_ms(model: str, repeats: int = 5) -> dict[str, list[float]]:
    """ms per probe of a float32 model, computed in float32 and in float64 (probe.dtype), interleaved call by call
    after one warm-up call of each, with subnormals flushed as in training."""
    cfg = load("config", [f"model={model}", f"task.seq_len={T}", f"model.hidden_size={H}"])
    torch.manual_seed(0)
    net = build_model(cfg.model, cfg.task.spec())
    x, y = torch.rand(B, T, 2), torch.rand(B, 1)
    times: dict[str, list[float]] = {"float32": [], "float64": []}
    with flushing(True):
        for _ in range(repeats + 1):
            for name, dtype in (("float32", None), ("float64", torch.float64)):
                t0 = time.perf_counter()
                bptt_probe(net, x, lambda out, traces: F.mse_loss(out, y.to(out.dtype)), dtype=dtype)
                times[name].append(1e3 * (time.perf_counter() - t0))
    return {name: t[1:] for name, t in times.items()}


def run(rounds: int = 5, steps: int = 300) -> list[dict]:
    """The probe's cost in training, two ways from the same runs. End to end: mean ms/step with the probe at its
    default interval against without it, interleaved round by round, as the per-round ratio (a difference of a
    few percent between two noisy figures: the spread says how far it can be trusted). Attributed: the time the
    probe itself took inside the probed runs (the callback times each call) as a share of their training time,
    which noise on the steps does not touch."""
    every = load("config", []).probe.every_n_steps
    probe_on = ("probe.enabled=true", f"probe.batch_size={B}", "data.n_val=64")
    off_ms, on_ms, share = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(rounds):
            off_ms.append(gradlab_fit("lstm", steps, Path(d), ("probe.enabled=false",))[0].mean_ms())
            timer, probe = gradlab_fit("lstm", steps, Path(d), probe_on)
            on_ms.append(timer.mean_ms())
            # the probes between the first and last timed step start (not the ones at the start and the end)
            inside = [ms for s, ms in zip(probe.steps, probe.probe_ms, strict=True) if WARMUP < s < len(timer.starts)]
            share.append(sum(inside) / (timer.mean_ms() * (len(timer.starts) - WARMUP - 1)))
    ratios = [on / off for on, off in zip(on_ms, off_ms, strict=True)]
    rows = [
        {"group": GROUP_TRAIN, "name": "training, probe off", "median": round(statistics.median(off_ms), 2),
         "rounds": [round(x, 2) for x in off_ms]},
        {"group": GROUP_TRAIN, "name": f"training, probe every {every} steps (default)",
         "median": round(statistics.median(on_ms), 2), "rounds": [round(x, 2) for x in on_ms]},
        {"group": GROUP_TRAIN, "name": "end to end: probe on / off, per round (ratio)",
         "median": round(statistics.median(ratios), 3), "rounds": [round(x, 3) for x in ratios]},
        {"group": GROUP_TRAIN, "name": "attributed: probe time / training time in the probed runs (fraction)",
         "median": round(statistics.median(share), 4), "rounds": [round(x, 4) for x in share]},
    ]
    for model in ("rnn", "lstm", "nfg_lstm"):
        times = probe_ms(model)
        f32 = statistics.median(times["float32"])
        for name, t in times.items():
            rows.append({"group": GROUP_PROBE, "name": f"bptt_probe {model}, {name}",
                         "median_ms": round(statistics.median(t), 1), "runs_ms": [round(x, 1) for x in t],
                         "vs_float32": round(statistics.median(t) / f32, 3)})
    return rows
