"""Training-step speed, like for like: gradlab's Lightning step against the same training in plain PyTorch.

For each model the plain loop trains the same nn.RNN/nn.LSTM and head (the weights gradlab's module starts from),
on the same batches (the data module's step-indexed batches of the adding task), with the same optimizer and the
same number of steps, with subnormals flushed or not as the gradlab run beside it; a Python loop over
nn.LSTMCell (what many public repos do) starts from the same LSTM weights. All variants are interleaved round by
round so that they share the machine's state; each round's figure is the median ms/step after warm-up, and the
table reports the median over rounds.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.cli import load
from gradlab.config import TrainConfig
from gradlab.data import SequenceData
from gradlab.module import RecurrentModule
from gradlab.probes import BPTTProbe
from gradlab.runfolder import RunFolder
from gradlab.stages.train import build_trainer, prepare_data
from gradlab.subnormals import flushing
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


def bench_config(model: str, steps: int, tmp: Path, extra: tuple[str, ...]) -> TrainConfig:
    return load("config", ["trainer.accelerator=cpu", f"model={model}", f"task.seq_len={T}", f"model.hidden_size={H}",
                           f"trainer.batch_size={B}",
                           f"trainer.max_steps={steps + WARMUP + 1}", "trainer.val_every_n_steps=100000",
                           "data.n_train=1024", "data.n_val=64", "data.n_test=64", f"data_dir={tmp / 'data'}",
                           f"runs_dir={tmp / 'runs'}", *extra])


def starting_point(cfg: TrainConfig) -> tuple[SequenceData, RecurrentModule]:
    """The data module and the freshly initialised module of a run: what both sides of a comparison start from."""
    dm = prepare_data(cfg)
    pl.seed_everything(0, verbose=False)
    return dm, RecurrentModule(cfg)


def gradlab_fit(model: str, steps: int, tmp: Path,
                extra: tuple[str, ...] = ("probe.enabled=false",)) -> tuple[StepTimer, BPTTProbe | None]:
    """`steps` optimizer steps (after warm-up) of `pipelines/train.py`'s trainer for this model, with CSV + wandb
    offline logging, trainer.flush_denormal, and, when the overrides enable it, the BPTT probe on its validation
    batch, as a run has them."""
    cfg = bench_config(model, steps, tmp, extra)
    dm, module = starting_point(cfg)
    run_dir = tmp / "runs" / f"{cfg.run_name}-{time.monotonic_ns()}"
    timer = StepTimer()
    probe = BPTTProbe.of_validation(dm, cfg.probe) if cfg.probe.enabled else None
    callbacks = [timer, *([probe] if probe else [])]
    trainer = build_trainer(cfg, RunFolder(run_dir), callbacks, make_loggers(cfg.logger, cfg.run_name, run_dir, {}))
    with flushing(cfg.trainer.flush_denormal):
        trainer.fit(module, datamodule=dm)
    for lg in trainer.loggers:
        if hasattr(lg, "experiment") and hasattr(lg.experiment, "finish"):
            lg.experiment.finish()
    return timer, probe


def gradlab_step_ms(model: str, steps: int, tmp: Path, flush: bool) -> float:
    """Median ms per optimizer step of `pipelines/train.py`'s trainer for this model."""
    extra = ("probe.enabled=false", f"trainer.flush_denormal={flush}")
    return statistics.median(gradlab_fit(model, steps, tmp, extra)[0].step_ms())


def plain_step_ms(model: str, steps: int, tmp: Path, flush: bool, cell_loop: bool = False) -> float:
    """The same training in plain PyTorch: the module's own nn.RNN/nn.LSTM and head (copied before any step), its
    optimizer's settings, the same batches; `cell_loop`: an nn.LSTMCell loop with the same LSTM weights."""
    cfg = bench_config(model, steps, tmp, ("probe.enabled=false",))
    dm, module = starting_point(cfg)
    rnn, head = copy.deepcopy(module.model.rnn), copy.deepcopy(module.model.head)
    if cell_loop:
        cell = nn.LSTMCell(rnn.input_size, H)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(rnn, f"{name}_l0"))
        rnn = cell
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=cfg.optim.lr)
    batches = iter(dm.train_dataloader())

    def step():
        x, y = next(batches)
        opt.zero_grad()
        if cell_loop:
            h = c = x.new_zeros(len(x), H)
            for t in range(x.shape[1]):
                h, c = rnn(x[:, t], (h, c))
        else:
            h = rnn(x)[0][:, -1]
        F.mse_loss(head(h), y).backward()
        opt.step()

    with flushing(flush):
        return _time_loop(step, steps)


def _time_loop(step, steps: int) -> float:
    times = []
    for i in range(steps + WARMUP):
        t0 = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def subnormal_multiply_ms(subnormal: bool, n: int = 1 << 22, repeats: int = 21) -> float:
    """Median ms of x * 0.5 over n float32 numbers, subnormal or normal, without flushing: the CPU's own penalty."""
    bits = 1 if subnormal else 0x3F800000  # 1.4e-45 or 1.0, written as integer bits (no float conversion)
    x = torch.full((n,), bits, dtype=torch.int32).view(torch.float32)
    out = torch.empty_like(x)
    with flushing(False):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mul(x, 0.5, out=out)
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def run(rounds: int = 7, steps: int = 30) -> list[dict]:
    """Rows of the results table: each variant with subnormals flushed and not, median ms/step over rounds, the
    per-round figures, the ratio to plain PyTorch with the same model and flushing (median of the per-round
    ratios: each round's pair ran side by side), and flushed / not flushed (likewise)."""
    variants = {}  # each pair that a ratio compares runs next to each other
    for model in ("rnn", "lstm"):
        for flush in (True, False):
            variants[("plain PyTorch", model, flush)] = lambda tmp, m=model, f=flush: plain_step_ms(m, steps, tmp, f)
            variants[("gradlab", model, flush)] = lambda tmp, m=model, f=flush: gradlab_step_ms(m, steps, tmp, f)
    for flush in (True, False):
        variants[("gradlab", "nfg_lstm", flush)] = lambda tmp, f=flush: gradlab_step_ms("nfg_lstm", steps, tmp, f)
    for flush in (True, False):
        variants[("nn.LSTMCell Python loop", "lstm", flush)] = (
            lambda tmp, f=flush: plain_step_ms("lstm", steps, tmp, f, cell_loop=True))
    per_round: dict[tuple, list[float]] = {key: [] for key in variants}
    with tempfile.TemporaryDirectory() as d:
        for i in range(rounds):
            order = list(variants.items())
            for key, fn in order if i % 2 == 0 else order[::-1]:  # every other round in reverse: no slot favoured
                per_round[key].append(fn(Path(d)))

    def paired(a: tuple, b: tuple) -> float:
        return round(statistics.median(x / y for x, y in zip(per_round[a], per_round[b], strict=True)), 3)

    group = f"training step (CPU, adding task, B={B} T={T} H={H}, Adam, same data and init, {steps} steps a round)"
    rows = []
    for (impl, model, flush), ms in sorted(per_round.items(), key=lambda kv: not kv[0][2]):
        plain = ("plain PyTorch", model, flush)
        rows.append({"group": group, "name": f"{impl} {model}", "flush_denormal": flush,
                     "median_ms": round(statistics.median(ms), 2), "rounds_ms": [round(v, 2) for v in ms],
                     "vs_plain_pytorch": paired((impl, model, flush), plain) if plain in per_round else "",
                     "flushed_vs_not": paired((impl, model, True), (impl, model, False)) if flush else ""})
    sub, normal = (subnormal_multiply_ms(s) for s in (True, False))
    cpu = "this CPU's subnormal penalty (x * 0.5 over 4M float32, not flushed; median ms of 21)"
    rows += [{"group": cpu, "name": "subnormal inputs", "median_ms": round(sub, 3),
              "vs_normal": round(sub / normal, 2)},
             {"group": cpu, "name": "normal inputs", "median_ms": round(normal, 3), "vs_normal": 1.0}]
    return rows
