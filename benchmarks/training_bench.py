"""Training-step speed: the gradlab Lightning step against plain PyTorch and a Python LSTMCell loop.

All variants train on the same batch shape (B=64, T=200, H=128, adding task, Adam), interleaved round by round
so that they share the machine's state; each round's figure is the median ms/step after warm-up, and the table
reports the median over rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.cli import load
from gradlab.module import RecurrentModule
from gradlab.probes import BPTTProbe
from gradlab.runfolder import RunFolder
from gradlab.stages.train import build_trainer, prepare_data
from gradlab.tracking import make_loggers

B, T, H = 64, 200, 128
WARMUP = 5


class StepTimer(pl.Callback):
    """Wall time between consecutive training-batch starts: everything Lightning does per step included."""

    def __init__(self):
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def mean_ms(self) -> float:
        """Mean ms per step after warm-up: what a periodic extra (the probe every N steps) costs on average."""
        window = self.starts[WARMUP:]
        return 1e3 * (window[-1] - window[0]) / (len(window) - 1)

    def step_ms(self) -> list[float]:
        return [1e3 * (b - a) for a, b in zip(self.starts[WARMUP:-1], self.starts[WARMUP + 1:], strict=True)]


def gradlab_fit(model: str, steps: int, tmp: Path,
                extra: tuple[str, ...] = ("probe.enabled=false",)) -> tuple[StepTimer, BPTTProbe | None]:
    """`steps` optimizer steps (after warm-up) of `pipelines/train.py`'s trainer for this model, with CSV + wandb
    offline logging and, when the overrides enable it, the BPTT probe on its validation batch, as a run has it."""
    cfg = load("config", [f"model={model}", f"task.seq_len={T}", f"model.hidden_size={H}",
                          f"trainer.batch_size={B}", f"trainer.max_steps={steps + WARMUP + 1}",
                          "trainer.val_every_n_steps=100000", "data.n_train=1024", "data.n_val=64",
                          "data.n_test=64", f"data_dir={tmp / 'data'}", f"runs_dir={tmp / 'runs'}", *extra])
    dm = prepare_data(cfg)
    pl.seed_everything(0, verbose=False)
    module = RecurrentModule(cfg)
    run_dir = tmp / "runs" / f"{cfg.run_name}-{time.monotonic_ns()}"
    timer = StepTimer()
    probe = BPTTProbe.of_validation(dm, cfg.probe) if cfg.probe.enabled else None
    callbacks = [timer, *([probe] if probe else [])]
    trainer = build_trainer(cfg, RunFolder(run_dir), callbacks, make_loggers(cfg.logger, cfg.run_name, run_dir, {}))
    trainer.fit(module, datamodule=dm)
    for lg in trainer.loggers:
        if hasattr(lg, "experiment") and hasattr(lg.experiment, "finish"):
            lg.experiment.finish()
    return timer, probe


def gradlab_step_ms(model: str, steps: int, tmp: Path, extra: tuple[str, ...] = ("probe.enabled=false",)) -> float:
    """Median ms per optimizer step of `pipelines/train.py`'s trainer for this model."""
    return statistics.median(gradlab_fit(model, steps, tmp, extra)[0].step_ms())


def _time_loop(step, steps: int) -> float:
    times = []
    for i in range(steps + WARMUP):
        t0 = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def plain_lstm_step_ms(steps: int) -> float:
    """The practical limit: nn.LSTM + linear head + MSE + Adam, a bare PyTorch loop on one batch."""
    torch.manual_seed(0)
    lstm, head = nn.LSTM(2, H, batch_first=True), nn.Linear(H, 1)
    params = [*lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x, y = torch.rand(B, T, 2), torch.rand(B, 1)

    def step():
        opt.zero_grad()
        out, _ = lstm(x)
        F.mse_loss(head(out[:, -1]), y).backward()
        opt.step()

    return _time_loop(step, steps)


def lstmcell_loop_step_ms(steps: int) -> float:
    """What peer repos do: a Python loop over nn.LSTMCell."""
    torch.manual_seed(0)
    cell, head = nn.LSTMCell(2, H), nn.Linear(H, 1)
    opt = torch.optim.Adam([*cell.parameters(), *head.parameters()], lr=1e-3)
    x, y = torch.rand(B, T, 2), torch.rand(B, 1)

    def step():
        opt.zero_grad()
        h = c = x.new_zeros(B, H)
        for t in range(T):
            h, c = cell(x[:, t], (h, c))
        F.mse_loss(head(h), y).backward()
        opt.step()

    return _time_loop(step, steps)


def run(rounds: int = 5, steps: int = 20) -> list[dict]:
    """Rows of the results table: name, median ms/step over rounds, the per-round figures, ratio to plain PyTorch."""
    variants = {
        "plain PyTorch nn.LSTM loop": lambda tmp: plain_lstm_step_ms(steps),
        "gradlab lstm (Lightning step)": lambda tmp: gradlab_step_ms("lstm", steps, tmp),
        "gradlab nfg_lstm (Lightning step)": lambda tmp: gradlab_step_ms("nfg_lstm", steps, tmp),
        "gradlab rnn (Lightning step)": lambda tmp: gradlab_step_ms("rnn", steps, tmp),
        "nn.LSTMCell Python loop": lambda tmp: lstmcell_loop_step_ms(steps),
    }
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(rounds):
            for name, fn in variants.items():
                per_round[name].append(fn(Path(d)))
    medians = {name: statistics.median(v) for name, v in per_round.items()}
    plain = medians["plain PyTorch nn.LSTM loop"]
    lstm = medians["gradlab lstm (Lightning step)"]
    rows = []
    for name, ms in medians.items():
        rows.append({"group": "training step (CPU, B=64 T=200 H=128)", "name": name, "median_ms": round(ms, 2),
                     "rounds_ms": [round(v, 2) for v in per_round[name]], "vs_plain_pytorch": round(ms / plain, 3),
                     "vs_gradlab_lstm": round(ms / lstm, 3)})
    return rows
