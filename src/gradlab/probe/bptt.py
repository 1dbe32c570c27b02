"""The BPTT probe: how the gradient of the loss reaches back through time, from ONE backward pass.

`bptt_probe` runs the model's unrolled twin (same parameters as the fused kernel) on a probe batch and returns,
for every layer and time step t = 0..T-1:

- dL_dh_norm[t]  ‖∂ℓ/∂h_t‖, the total derivative through the recurrence, per sample, averaged over the batch
- dL_dc_norm[t]  ‖∂ℓ/∂c_t‖ likewise (cells with a cell state c_t)
- dW_ih_norm[t], dW_hh_norm[t]  ‖(∂L/∂W)^(t)‖_F, the contribution of step t to the ordinary gradient of the batch
  loss L: (∂L/∂W_ih)^(t) = δv_tᵀ x_t and (∂L/∂W_hh)^(t) = δu_tᵀ h_{t-1} with δv_t = ∂L/∂v_t, δu_t = ∂L/∂u_t
  (v_t = W_ih x_t + b_ih, u_t = W_hh h_{t-1} + b_hh); they sum over t to ∂L/∂W (the "components" of
  docs/literature.md's worked LSTM example)
- the cell's own curves (gradlab.cells): forget_gate_mean (LSTMs), update_gate_mean (GRU), act_deriv_mean =
  mean |φ'(a_t)| (the elementwise cells): what predicts the decay
- c_norm[t]  ‖c_t‖ of the forward pass, averaged over the batch (cell state): the NFG's cell state can only grow
  along a stream it never forgets (the continual task), until tanh(c_t) saturates

Per sample means: ℓ_b is sample b's own loss (the training loss is L = mean_b ℓ_b), so the h/c norms do not
depend on the probe batch size. Everything runs on the model's device, in the model's dtype or in float64 on a
cast copy (`dtype`, the default of `probe.dtype`): a tanh RNN's ‖∂ℓ/∂h_t‖ falls below float32's smallest number
(1.4e-45) within a few hundred steps, and float64 keeps it finite down to ~1e-308."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
from torch import Tensor

from gradlab.core.choices import ProbeDtype
from gradlab.core.errors import out_of_range
from gradlab.core.runfolder import Probed, atomic_write_bytes
from gradlab.models.net import LayerTrace, RecurrentNet


@dataclass
class ProbeConfig:
    enabled: bool = True
    every_n_steps: int = 100
    batch_size: int = 32  # the first batch_size validation sequences (test sequences in the analysis stage)
    dtype: ProbeDtype = ProbeDtype.float64  # what the probe computes in (the training itself is unchanged)
    lyapunov_k: int = 16  # the analyze stage's Lyapunov spectrum: its k largest exponents (all, for a smaller state)
    # the memory measurements (gradlab.probe.memory): ‖∂h_t/∂θ_rec‖ along this many directions (exact where θ_rec
    # has no more parameters than that; 0: off), and the Hessian's top eigenvalue in at most this many iterations
    sensitivity_directions: int = 16
    hessian_iters: int = 20
    # while training they cost ~10-40x a probe (docs/probe.md): at the last probe only (0), or also every n steps
    memory_every_n_steps: int = 0

    def __post_init__(self) -> None:
        if self.lyapunov_k < 1:
            raise out_of_range("probe.lyapunov_k", self.lyapunov_k, "an integer >= 1")
        if self.every_n_steps < 1:
            raise out_of_range("probe.every_n_steps", self.every_n_steps, "an integer >= 1")
        if self.batch_size < 1:
            raise out_of_range("probe.batch_size", self.batch_size, "an integer >= 1")
        for key in ("sensitivity_directions", "hessian_iters", "memory_every_n_steps"):
            if getattr(self, key) < 0:
                raise out_of_range(f"probe.{key}", getattr(self, key), "an integer >= 0 (0: off)")


HORIZON_FRACTION = 1e-3  # the horizon ends where ‖∂L/∂h_t‖ falls below this fraction of its last-step value


# and each cell's own curves
QUANTITIES = ("dL_dh_norm", "dL_dc_norm", "dW_hh_norm", "dW_ih_norm", "c_norm", "dh_dtheta_norm")


LossFn = Callable[[Tensor, list[LayerTrace]], Tensor]


@dataclass
class ProbeResult:
    """Per-layer, per-step curves (each a float64 CPU tensor of length T) and the derived scalars."""

    layers: list[dict[str, Tensor]]
    scalars: dict[str, float] = field(default_factory=dict)
    dW: list[dict[str, Tensor]] = field(default_factory=list)  # the contributions themselves, (T, rows, cols)
    vectors: list[dict[str, Tensor]] = field(default_factory=list)  # h_t and per-sample ∂ℓ/∂h_t, (T, B, H)
    theory: list[dict[str, float]] = field(default_factory=list)  # per layer: the cell's theory_scalars


def weight_contributions(trace: LayerTrace, grad_v: list[Tensor], grad_u: list[Tensor]) -> dict[str, Tensor]:
    """(∂L/∂W_ih)^(t) = δv_tᵀ x_t and (∂L/∂W_hh)^(t) = δu_tᵀ h_{t-1}, stacked over t: (T, G·H, ·)."""
    x = torch.stack(trace.x)  # (T, B, D)
    h_prev = torch.stack([trace.h0, *trace.h[:-1]])  # (T, B, H)
    return {"W_ih": torch.einsum("tbg,tbd->tgd", torch.stack(grad_v), x),
            "W_hh": torch.einsum("tbg,tbh->tgh", torch.stack(grad_u), h_prev)}


def bptt_probe(model: RecurrentNet, x: Tensor, loss_fn: LossFn, h0: Tensor | None = None,
               c0: Tensor | None = None, batch_scale: float | None = None, keep_dW: bool = False,
               keep_vectors: bool = False, dtype: torch.dtype | None = None,
               memory: ProbeConfig | None = None) -> ProbeResult:
    """Run the unrolled twin on x, backpropagate loss_fn once, and collect the per-step quantities.

    batch_scale turns ∂L/∂h_t of the batch loss into per-sample ∂ℓ_b/∂h_t (B for a batch-mean loss; default).
    dtype: compute in this dtype on a copy of the model with its current weights cast (float32 -> float64 is exact),
    so that a vanishing gradient stays finite below float32's range; None: the model's own dtype. MPS has no float64:
    there the copy runs on the CPU (loss_fn gets its output there). memory: a ProbeConfig whose
    sensitivity_directions / hessian_iters turn on the memory measurements (gradlab.probe.memory); None: off.
    """
    weight = next(model.parameters())
    if dtype is not None and dtype != weight.dtype:
        device = torch.device("cpu") if weight.device.type == "mps" and dtype == torch.float64 else weight.device
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
        x, h0, c0 = (None if v is None else v.to(device, dtype) if v.is_floating_point() else v.to(device)
                     for v in (x, h0, c0))
    with torch.enable_grad():
        out, traces = model.forward_unrolled(x, h0=h0, c0=c0, record=True)
        loss = loss_fn(out, traces)
        wanted = [t for tr in traces for t in (*tr.v, *tr.u, *tr.h, *tr.c)]
        grads = iter(torch.autograd.grad(loss, wanted, allow_unused=True))
    scale = x.shape[0] if batch_scale is None else batch_scale
    result = ProbeResult(layers=[])
    for layer, trace in enumerate(traces):
        g_v, g_u, g_h, g_c = ([_zero_if_none(next(grads), t) for t in ts]
                              for ts in (trace.v, trace.u, trace.h, trace.c))
        dW = weight_contributions(trace, g_v, g_u)
        curves = {
            "dL_dh_norm": (torch.stack(g_h).norm(dim=-1) * scale).mean(1),
            "dW_hh_norm": dW["W_hh"].flatten(1).norm(dim=1),
            "dW_ih_norm": dW["W_ih"].flatten(1).norm(dim=1),
        }
        v, u = torch.stack(trace.v).detach(), torch.stack(trace.u).detach()  # (T, B, G·H)
        curves |= model.cell.curves(model, layer, v, u)
        if trace.c:
            curves["dL_dc_norm"] = (torch.stack(g_c).norm(dim=-1) * scale).mean(1)
            curves["c_norm"] = torch.stack(trace.c).detach().norm(dim=-1).mean(1)
        result.layers.append({k: t.detach().double().cpu() for k, t in curves.items()})
        result.theory.append(model.cell.theory_scalars(model, layer, v, u))
        if keep_dW:
            result.dW.append({k: t.detach() for k, t in dW.items()})
        if keep_vectors:
            result.vectors.append({"h": torch.stack(trace.h).detach(), "dL_dh": torch.stack(g_h).detach() * scale})
    result.scalars = derived_scalars(result)
    if memory is not None:
        result.scalars |= measure_memory(model, x, loss_fn, result, memory)
    return result


def measure_memory(model: RecurrentNet, x: Tensor, loss_fn: LossFn, result: ProbeResult,
                   cfg: ProbeConfig) -> dict[str, float]:
    """Adds each layer's dh_dtheta_norm curve to `result` and returns the memory scalars of the top layer (and the
    Hessian's, over every layer's θ_rec): sensitivity (S_{T-1}), sensitivity_per_parameter (S_{T-1}/√P: for one
    unit and one λ the theory's √E[(∂h/∂λ)²]), sensitivity_rel_se (0: exact), hessian_top, hessian_iters."""
    from gradlab.probe.memory import hessian_top, recurrent_parameters, state_sensitivity

    scalars: dict[str, float] = {}
    if cfg.sensitivity_directions:
        for layer, curves in enumerate(result.layers):
            curve, rel_se = state_sensitivity(model, x, layer, cfg.sensitivity_directions)
            curves["dh_dtheta_norm"] = curve
            P = sum(p.numel() for p in recurrent_parameters(model, layer).values())
            scalars |= {"sensitivity": float(curve[-1]), "sensitivity_per_parameter": float(curve[-1]) / math.sqrt(P),
                        "sensitivity_rel_se": rel_se}
    if cfg.hessian_iters:
        top, iters = hessian_top(model, x, loss_fn, cfg.hessian_iters)
        scalars |= {"hessian_top": top, "hessian_iters": float(iters)}
    return scalars


def probe_dtype(probe: ProbeConfig) -> torch.dtype | None:
    """probe.dtype as the dtype bptt_probe computes in: float64, or None (the model's own, float32 by default)."""
    return torch.float64 if probe.dtype == ProbeDtype.float64 else None


def _zero_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    """A step that does not reach the loss (e.g. after the last output) has exactly zero gradient."""
    return torch.zeros_like(like) if grad is None else grad


def decay_rate(norms: Tensor) -> float:
    """Least-squares slope of ln‖∂L/∂h_t‖ against the distance back in time T-1-t (ln per step; < 0: vanishing).

    Steps whose norm underflowed to 0 are left out; NaN when fewer than two steps remain.
    """
    T = len(norms)
    back = torch.arange(T - 1, -1, -1, dtype=torch.float64)
    ok = torch.isfinite(norms) & (norms > 0)
    if ok.sum() < 2:
        return math.nan
    xs, ys = back[ok], norms[ok].log()
    xs = xs - xs.mean()
    return float((xs * (ys - ys.mean())).sum() / (xs * xs).sum())


def horizon(norms: Tensor, fraction: float = HORIZON_FRACTION) -> int:
    """Steps back from t=T-1 until the norm first falls below fraction x its last-step value; T if it never does."""
    T = len(norms)
    last = norms[-1]
    below = (norms < fraction * last).flip(0).nonzero()
    return int(below[0]) if len(below) else T


def derived_scalars(result: ProbeResult) -> dict[str, float]:
    """Decay rate, horizon and the cell's theory numbers (decay_rate_predicted, …) of the top layer (the one the
    loss reads), plus per-layer values (<name>_l<layer>)."""
    scalars: dict[str, float] = {}
    top = len(result.layers) - 1
    for layer, (curves, theory) in enumerate(zip(result.layers, result.theory, strict=True)):
        s = {"decay_rate": decay_rate(curves["dL_dh_norm"]), "horizon": float(horizon(curves["dL_dh_norm"])), **theory}
        if "dL_dc_norm" in curves:
            s["decay_rate_c"] = decay_rate(curves["dL_dc_norm"])
        for k, v in s.items():
            scalars[f"{k}_l{layer}"] = v
            if layer == top:
                scalars[k] = v
    return scalars


def probe_rows(step: int, result: ProbeResult) -> list[tuple[int, int, int, str, float]]:
    """The tidy rows (step, layer, t, quantity, value) of one probe."""
    rows = []
    for layer, curves in enumerate(result.layers):
        for quantity in [*QUANTITIES, *sorted(set(curves) - set(QUANTITIES))]:
            if quantity in curves and not quantity.startswith("_"):
                rows += [(step, layer, t, quantity, float(v)) for t, v in enumerate(curves[quantity].tolist())]
    return rows


class BPTTProbe(pl.Callback):
    """Runs `bptt_probe` on a fixed batch every `every_n_steps` optimizer steps, at the start and at the end.

    Keeps every probe's rows (for bptt.csv) and the last probe's scalars, also across a resume (state_dict), and
    logs the derived scalars as bptt/<name> at the probe's step. A probe whose gradients are not finite (a
    diverging run) is kept as data: its rows hold NaN/inf, the non-finite scalars are left out of the loggers.

    Under DDP it probes on rank 0 only (which writes bptt.csv and the checkpoints): every rank holds the same
    weights, and the probe runs the bare model (no DDP wrapper, no collective), so the other ranks need not wait.
    """

    def __init__(self, x: Tensor, y: Tensor, every_n_steps: int, dtype: torch.dtype | None = torch.float64,
                 memory: ProbeConfig | None = None):
        self.x, self.y, self.every, self.dtype = x, y, every_n_steps, dtype
        self.memory = memory if memory is not None and (memory.sensitivity_directions or memory.hessian_iters) else None
        self.rows: list[tuple[int, int, int, str, float]] = []
        self.steps: list[int] = []
        self.last_scalars: dict[str, float] | None = None
        self.probe_ms: list[float] = []
        self.memory_measured = False  # whether the latest probe took the memory measurements

    @classmethod
    def of_validation(cls, dm: Any, probe: ProbeConfig) -> BPTTProbe:
        """Probing the first probe.batch_size validation sequences of a SequenceData."""
        x_val, y_val = dm.splits["val"].tensors
        return cls(x_val[:probe.batch_size], y_val[:probe.batch_size], probe.every_n_steps, probe_dtype(probe), probe)

    def _memory_due(self, step: int, last: bool) -> bool:
        if self.memory is None:
            return False
        return last or (self.memory.memory_every_n_steps > 0 and step % self.memory.memory_every_n_steps == 0)

    def run(self, trainer: pl.Trainer, module: pl.LightningModule, last: bool = False) -> ProbeResult:
        """One probe at the current step; the memory measurements at the last probe (`last`, or the step budget's
        end) and every probe.memory_every_n_steps. A second probe of one step (the end of training, with the memory
        measurements, after the schedule's probe of that step without them) replaces the first one's rows."""
        step = trainer.global_step
        last = last or (trainer.max_steps is not None and step >= trainer.max_steps)
        x, y = self.x.to(module.device), self.y.to(module.device)
        started = time.perf_counter()
        memory = self.memory if self._memory_due(step, last) else None
        result = bptt_probe(module.model, x, lambda out, traces: module.loss_and_accuracy(out, y.to(out.device))[0],
                            dtype=self.dtype, memory=memory)
        self.probe_ms.append(1e3 * (time.perf_counter() - started))
        if self.steps and self.steps[-1] == step:
            self.rows = [r for r in self.rows if r[0] != step]
            self.steps.pop()
        self.steps.append(step)
        self.memory_measured = memory is not None
        self.last_scalars = result.scalars
        self.rows += probe_rows(step, result)
        scalars = {f"bptt/{k}": v for k, v in result.scalars.items() if math.isfinite(v)}
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
        return result

    def _due(self, step: int) -> bool:
        return not self.steps or self.steps[-1] != step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step  # > 0 when resumed: then only a probe that is on the schedule
        if trainer.is_global_zero and (step == 0 or step % self.every == 0) and self._due(step):
            self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every == 0 and self._due(trainer.global_step):
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        interrupted = any(getattr(cb, "signum", None) is not None for cb in trainer.callbacks)  # GracefulStop
        wants_memory = self.memory is not None and not self.memory_measured  # stopped early, on a scheduled probe
        if trainer.is_global_zero and not interrupted and (self._due(trainer.global_step) or wants_memory):
            self.run(trainer, pl_module, last=True)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows), "steps": list(self.steps), "last_scalars": self.last_scalars}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [tuple(r) for r in state["rows"]]
        self.steps, self.last_scalars = list(state["steps"]), state["last_scalars"]


def write_probe_outputs(out: Probed, rows: list[tuple], title: str) -> tuple[pd.DataFrame, dict[str, Path]]:
    """bptt.csv (step, layer, t, quantity, value) and the figures: norm vs t per probe, heatmap over training."""
    from gradlab.probe import figures as plots

    df = pd.DataFrame(rows, columns=["step", "layer", "t", "quantity", "value"])
    atomic_write_bytes(out.bptt, df.to_csv(index=False).encode())
    figures: dict[str, Path] = {}
    for layer in sorted(df.layer.unique()):
        for quantity in ("dL_dh_norm", "dL_dc_norm"):
            if not (df.quantity == quantity).any():
                continue
            name = f"{quantity}_l{layer}"
            figures[f"bptt_{name}"] = plots.norm_vs_t(df, quantity, layer, f"{title}: {quantity}, layer {layer}",
                                                      out.figures / f"bptt_{name}.png")
            figures[f"bptt_heatmap_{name}"] = plots.heatmap(df, quantity, layer, f"{title}: {quantity}",
                                                            out.figures / f"bptt_heatmap_{name}.png")
    return df, figures
