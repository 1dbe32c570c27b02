"""Training-step speed, like for like: gradlab's Lightning step against the same training in plain PyTorch.

For each model the plain loop trains the same nn.RNN/nn.LSTM/nn.GRU and head (the weights gradlab's module starts
from), on the same batches (the data module's step-indexed batches of the adding task), with the same optimizer and
the same number of steps, with subnormals flushed or not as the gradlab run beside it; a Python loop over
nn.LSTMCell (what many public repos do) starts from the same LSTM weights. rnn and lstm run flushed and not; gru,
irnn (nn.RNN, relu) and exprnn run flushed only (trainer.flush_denormal's default), to keep `make bench` short.

expRNN has no fused kernel: gradlab runs its cell's step in a Python loop, and the plain side is `PlainExpRNN`, the
same model written out (the same orthogonal(matrix_exp) parametrization of W_hh, modReLU, a loop over time, the
same weights). Beside them: W_hh = exp(A) forward + backward once (what the parametrization adds to a step, if it
is evaluated once a step: `exp_a_evaluations` counts it in gradlab's step) and the ratio to the fused nn.RNN (tanh)
of the same size (the plain rnn above): what the missing kernel costs.

All variants are interleaved round by round so that they share the machine's state; each round's figure is the
median ms/step after warm-up, and the table reports the median over rounds.
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
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal

from gradlab.core.runfolder import RunFolder
from gradlab.data.sets import SequenceData
from gradlab.launch.cli import load
from gradlab.models.net import RecurrentNet
from gradlab.probe.bptt import BPTTProbe
from gradlab.stages.train import build_trainer, prepare_data
from gradlab.tracking.loggers import make_loggers
from gradlab.training.config import TrainConfig
from gradlab.training.module import RecurrentModule
from gradlab.training.subnormals import flushing

B, T, H = 64, 200, 128
WARMUP = 5
EXP_A = ("W_hh = exp(A) forward + backward", "exprnn", True)  # the parametrization alone (a variant, not a row)


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


class ParametrizationCalls(pl.Callback):
    """How many times each training step (forward, backward, clipping, optimizer step) evaluates the module's
    parametrizations (expRNN's W_hh = exp(A)): once a step is all it needs."""

    def __init__(self):
        self.per_step: list[int] = []
        self._calls = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for m in pl_module.modules():
            if isinstance(m, parametrize.ParametrizationList):
                m.register_forward_hook(self._count)

    def _count(self, *args) -> None:
        self._calls += 1

    def on_train_batch_start(self, *args) -> None:
        self._calls = 0

    def on_train_batch_end(self, *args) -> None:
        self.per_step.append(self._calls)


class PlainExpRNN(nn.Module):
    """expRNN in plain PyTorch with a gradlab net's weights: W_hh = exp(A − Aᵀ) by the same
    orthogonal(matrix_exp, use_trivialization=False) on an nn.Linear, computed once per forward, and
    h_t = modReLU(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) in a Python loop; returns the last h."""

    def __init__(self, net: RecurrentNet):
        super().__init__()
        w_ih, _, b_ih, b_hh = net.weights(0)
        self.ih = nn.Linear(w_ih.shape[1], net.hidden_size)
        self.hh = orthogonal(nn.Linear(net.hidden_size, net.hidden_size), orthogonal_map="matrix_exp",
                             use_trivialization=False)
        self.modrelu_bias = nn.Parameter(net.acts[0].bias.detach().clone())
        with torch.no_grad():
            for mine, theirs in ((self.ih.weight, w_ih), (self.ih.bias, b_ih), (self.hh.bias, b_hh),
                                 (self.hh.parametrizations.weight.original,
                                  net.rnn.parametrizations.weight_hh_l0.original)):
                mine.copy_(theirs)

    def forward(self, x: Tensor, w_hh: Tensor | None = None) -> Tensor:
        w_hh = self.hh.weight if w_hh is None else w_hh
        v = self.ih(x)
        h = v.new_zeros(len(x), w_hh.shape[0])
        for t in range(x.shape[1]):
            a = v[:, t] + F.linear(h, w_hh, self.hh.bias)
            h = torch.sign(a) * torch.relu(a.abs() + self.modrelu_bias)
        return h


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


def gradlab_fit(model: str, steps: int, tmp: Path, extra: tuple[str, ...] = ("probe.enabled=false",),
                callbacks: tuple[pl.Callback, ...] = ()) -> tuple[StepTimer, BPTTProbe | None]:
    """`steps` optimizer steps (after warm-up) of `pipelines/train.py`'s trainer for this model, with CSV + wandb
    offline logging, trainer.flush_denormal, and, when the overrides enable it, the BPTT probe on its validation
    batch, as a run has them; `callbacks` ride along."""
    cfg = bench_config(model, steps, tmp, extra)
    dm, module = starting_point(cfg)
    run_dir = tmp / "runs" / f"{cfg.run_name}-{time.monotonic_ns()}"
    timer = StepTimer()
    probe = BPTTProbe.of_validation(dm, cfg.probe) if cfg.probe.enabled else None
    everything = [timer, *([probe] if probe else []), *callbacks]
    trainer = build_trainer(cfg, RunFolder(run_dir), everything, make_loggers(cfg.logger, cfg.run_name, run_dir, {}))
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


def exp_a_evaluations(steps: int, tmp: Path) -> tuple[int, int]:
    """W_hh = exp(A) evaluations in a training step of gradlab's exprnn: the fewest and the most in any step, and
    the number of steps counted (warm-up included)."""
    calls = ParametrizationCalls()
    gradlab_fit("exprnn", steps, tmp, callbacks=(calls,))
    return min(calls.per_step), max(calls.per_step), len(calls.per_step)


def plain_step_ms(model: str, steps: int, tmp: Path, flush: bool, cell_loop: bool = False) -> float:
    """The same training in plain PyTorch: the module's own nn.RNN/nn.LSTM/nn.GRU and head (copied before any
    step), its optimizer's settings, the same batches; `cell_loop`: an nn.LSTMCell loop with the same LSTM weights;
    exprnn (no fused kernel): `PlainExpRNN` with the module's weights."""
    cfg = bench_config(model, steps, tmp, ("probe.enabled=false",))
    dm, module = starting_point(cfg)
    rnn = PlainExpRNN(module.model) if model == "exprnn" else copy.deepcopy(module.model.rnn)
    head = copy.deepcopy(module.model.head)
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
        elif isinstance(rnn, PlainExpRNN):
            h = rnn(x)
        else:
            h = rnn(x)[0][:, -1]
        F.mse_loss(head(h), y).backward()
        opt.step()

    with flushing(flush):
        return _time_loop(step, steps)


def exp_a_ms(steps: int, tmp: Path) -> float:
    """Median ms of W_hh = exp(A) forward + backward, once, as a step of PlainExpRNN does it (subnormals flushed),
    with the dL/dW_hh of the first batch: what the parametrization adds to each training step."""
    cfg = bench_config("exprnn", steps, tmp, ("probe.enabled=false",))
    dm, module = starting_point(cfg)
    rnn, head = PlainExpRNN(module.model), module.model.head
    x, y = next(iter(dm.train_dataloader()))
    with flushing(True):
        w_hh = rnn.hh.weight.detach().requires_grad_(True)
        grad = torch.autograd.grad(F.mse_loss(head(rnn(x, w_hh)), y), w_hh)[0]
        original = rnn.hh.parametrizations.weight.original

        def step():
            original.grad = None  # as opt.zero_grad() leaves it
            rnn.hh.weight.backward(grad)

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
    """Rows of the results table: each variant (rnn, lstm and their kin with subnormals flushed and not; gru, irnn
    and exprnn flushed), median ms/step over rounds, the per-round figures, the ratio to plain PyTorch with the
    same model and flushing (median of the per-round ratios: each round's pair ran side by side), and flushed / not
    flushed (likewise); then expRNN's step priced: exp(A) alone, its share of each exprnn step (per round), how
    often gradlab's step evaluates it, and each exprnn step over the fused nn.RNN's (per round)."""
    variants = {}  # each pair that a ratio compares runs next to each other
    for model, flushes in (("rnn", (True, False)), ("lstm", (True, False)), ("gru", (True,)), ("irnn", (True,)),
                           ("exprnn", (True,))):
        for flush in flushes:
            variants[("plain PyTorch", model, flush)] = lambda tmp, m=model, f=flush: plain_step_ms(m, steps, tmp, f)
            variants[("gradlab", model, flush)] = lambda tmp, m=model, f=flush: gradlab_step_ms(m, steps, tmp, f)
    variants[EXP_A] = lambda tmp: exp_a_ms(steps, tmp)
    for flush in (True, False):
        variants[("gradlab", "nfg_lstm", flush)] = lambda tmp, f=flush: gradlab_step_ms("nfg_lstm", steps, tmp, f)
    for flush in (True, False):
        variants[("nn.LSTMCell Python loop", "lstm", flush)] = (
            lambda tmp, f=flush: plain_step_ms("lstm", steps, tmp, f, cell_loop=True))
    per_round: dict[tuple, list[float]] = {key: [] for key in variants}
    with tempfile.TemporaryDirectory() as d:
        evaluations = exp_a_evaluations(5, Path(d))
        for i in range(rounds):
            order = list(variants.items())
            for key, fn in order if i % 2 == 0 else order[::-1]:  # every other round in reverse: no slot favoured
                per_round[key].append(fn(Path(d)))

    def paired(a: tuple, b: tuple) -> float:
        return round(statistics.median(x / y for x, y in zip(per_round[a], per_round[b], strict=True)), 3)

    group = f"training step (CPU, adding task, B={B} T={T} H={H}, Adam, same data and init, {steps} steps a round)"
    rows = []
    for (impl, model, flush), ms in sorted(per_round.items(), key=lambda kv: not kv[0][2]):
        if (impl, model, flush) == EXP_A:
            continue
        plain = ("plain PyTorch", model, flush)
        rows.append({"group": group, "name": f"{impl} {model}", "flush_denormal": flush,
                     "median_ms": round(statistics.median(ms), 2), "rounds_ms": [round(v, 2) for v in ms],
                     "vs_plain_pytorch": paired((impl, model, flush), plain) if plain in per_round else "",
                     "flushed_vs_not": paired((impl, model, True), (impl, model, False))
                     if flush and (impl, model, False) in per_round else ""})
    exp_group = (f"expRNN's step, priced (CPU, adding task, B={B} T={T} H={H}, flushed, {steps} steps a round; the "
                 "steps as above)")
    shares = {"its share of gradlab's exprnn step (fraction)": ("gradlab", "exprnn", True),
              "its share of the plain PyTorch exprnn step (fraction)": ("plain PyTorch", "exprnn", True)}
    fused = ("plain PyTorch", "rnn", True)  # nn.RNN, tanh: the fused kernel, same B, T, H, input and head
    ratios = {"gradlab exprnn / fused nn.RNN tanh (plain PyTorch rnn) (ratio)": ("gradlab", "exprnn", True),
              "plain PyTorch exprnn / fused nn.RNN tanh (ratio)": ("plain PyTorch", "exprnn", True)}

    def exp_row(name: str, values: list[float], digits: int) -> dict:
        return {"group": exp_group, "name": name, "median": round(statistics.median(values), digits),
                "rounds": [round(v, digits) for v in values]}

    rows += [exp_row("W_hh = exp(A) forward + backward, once (ms)", per_round[EXP_A], 3),
             *(exp_row(name, [a / b for a, b in zip(per_round[EXP_A], per_round[key], strict=True)], 4)
               for name, key in shares.items()),
             {"group": exp_group, "name": f"W_hh = exp(A) evaluations per gradlab training step (count: the "
              f"most in any of {evaluations[2]} steps; rounds: the fewest, the most)", "median": evaluations[1],
              "rounds": list(evaluations[:2])},
             *(exp_row(name, [a / b for a, b in zip(per_round[key], per_round[fused], strict=True)], 3)
               for name, key in ratios.items())]
    sub, normal = (subnormal_multiply_ms(s) for s in (True, False))
    cpu = "this CPU's subnormal penalty (x * 0.5 over 4M float32, not flushed; median ms of 21)"
    rows += [{"group": cpu, "name": "subnormal inputs", "median_ms": round(sub, 3),
              "vs_normal": round(sub / normal, 2)},
             {"group": cpu, "name": "normal inputs", "median_ms": round(normal, 3), "vs_normal": 1.0}]
    return rows
