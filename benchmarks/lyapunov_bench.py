"""Lyapunov spectrum cost: the analyze stage's spectrum (k=16 largest, float64, forward-mode Jacobian products and a
QR per step) against its BPTT probe (float64) on the same batch: adding T=100, H=64, the probe batch of 32 test
sequences. Both timed call by call, interleaved, after one warm-up call of each."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from gradlab.analysis.lyapunov import lyapunov_spectrum
from gradlab.launch.cli import load
from gradlab.models.net import build_model
from gradlab.probe.bptt import bptt_probe
from gradlab.training.subnormals import flushing

T, H, B, K = 100, 64, 32, 16
GROUP = f"Lyapunov spectrum vs BPTT probe (CPU, adding T={T} H={H}, batch {B}, both float64; k={K} exponents)"


def run(repeats: int = 3) -> list[dict]:
    rows = []
    for model in ("rnn", "lstm", "nfg_lstm"):
        cfg = load("config", [f"model={model}", f"task.seq_len={T}", f"model.hidden_size={H}"])
        torch.manual_seed(0)
        net = build_model(cfg.model, cfg.task.spec())
        x, y = torch.rand(B, T, 2), torch.rand(B, 1)
        calls = {"bptt_probe": lambda net=net, x=x, y=y: bptt_probe(
                     net, x, lambda out, tr: F.mse_loss(out, y.to(out.dtype)), dtype=torch.float64),
                 "lyapunov_spectrum": lambda net=net, x=x: lyapunov_spectrum(net, x, k=K, dtype=torch.float64)}
        times: dict[str, list[float]] = {name: [] for name in calls}
        with flushing(True):
            for _ in range(repeats + 1):
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    call()
                    times[name].append(1e3 * (time.perf_counter() - t0))
        probe = statistics.median(times["bptt_probe"][1:])
        for name, t in times.items():
            rows.append({"group": GROUP, "name": f"{name} {model}", "median_ms": round(statistics.median(t[1:]), 1),
                         "runs_ms": [round(v, 1) for v in t[1:]],
                         "vs_probe": round(statistics.median(t[1:]) / probe, 3)})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
