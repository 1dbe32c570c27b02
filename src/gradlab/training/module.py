"""One LightningModule for every task x model: loss, metrics, optimizer, clipping statistics, divergence."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from gradlab.core.choices import ClipMode, OptimizerName, RegulariserName
from gradlab.core.conf import as_dict
from gradlab.models.net import build_model
from gradlab.models.regulariser import pascanu_omega
from gradlab.training.config import OptimConfig, TrainConfig

OPTIMIZERS: dict[OptimizerName, Callable[[Iterable[Tensor], OptimConfig], torch.optim.Optimizer]] = {
    OptimizerName.adam: lambda params, o: torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay),
    OptimizerName.adamw: lambda params, o: torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay),
    OptimizerName.sgd: lambda params, o: torch.optim.SGD(params, lr=o.lr, momentum=o.momentum,
                                                         weight_decay=o.weight_decay),
    OptimizerName.rmsprop: lambda params, o: torch.optim.RMSprop(params, lr=o.lr, alpha=o.alpha, momentum=o.momentum,
                                                                 weight_decay=o.weight_decay),
}


class RecurrentModule(pl.LightningModule):
    """Trains a RecurrentNet on a synthetic task and logs train/*, val/*, test/* and grad/* per optimizer step."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.save_hyperparameters(as_dict(cfg))  # the resolved run config: checkpoints can rebuild the model from it
        self.cfg = cfg
        self.spec = cfg.task.spec()
        self.model = build_model(cfg.model, self.spec)
        self.status = "running"
        self.diverged_at_step: int | None = None
        self.diverged_reason: str | None = None
        self.solved_at_step: int | None = None
        self.clip_count = 0
        self.max_norm_preclip = 0.0
        self.stream_errors: deque[float] = deque(maxlen=(self.spec.stream_rule or (1, 0.0))[0])
        self.step_metrics: dict[str, Tensor | float] = {}  # this step's train/*, grad/* (on_train_batch_end)

    # ------------------------------------------------------------------------------------------ loss

    def loss_and_accuracy(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """MSE for regression (over the steps that have a target: NaN marks none), with the fraction of predictions
        within the task's tolerance where it has one; BCE for multilabel targets, with the fraction of steps whose
        every unit is right; cross-entropy averaged over samples (and steps, for the copy task)."""
        if self.spec.kind == "regression":
            y = y.to(out.dtype)
            if self.spec.per_step:
                has_target = ~torch.isnan(y)
                out, y = out[has_target], y[has_target]
            loss = F.mse_loss(out, y)
            tol = self.spec.tolerance
            return loss, None if tol is None else ((out - y).abs() < tol).to(out.dtype).mean()
        # a 0/1 target per unit (the legal next symbols, gradlab.tasks.reber): BCE on the logits, mean over units
        # and steps; a step is right when every unit is on the right side of 0.5
        if self.spec.kind == "multilabel":
            y = y.to(out.dtype)
            right = ((out > 0) == (y > 0.5)).all(-1)
            return F.binary_cross_entropy_with_logits(out, y), right.to(out.dtype).mean()
        if self.spec.per_step:
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return F.cross_entropy(out, y), (out.argmax(-1) == y).to(out.dtype).mean()

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        loss, acc = self.loss_and_accuracy(self.model(x), y)
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=len(x))
        if acc is not None:
            self.log(f"{stage}/acc", acc, on_epoch=True, batch_size=len(x))
        return loss

    # ------------------------------------------------------------------------------------------ training

    def diverge(self, reason: str) -> None:
        """Record a non-finite loss or gradient as the run's result and stop training cleanly."""
        if self.status != "diverged":
            self.status, self.diverged_at_step, self.diverged_reason = "diverged", self.global_step, reason
        self.trainer.should_stop = True

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        regularised = self.cfg.regulariser.name == RegulariserName.pascanu  # E + alpha·Ω, on the unrolled twin
        out, traces = self.model.forward_unrolled(x, record=True) if regularised else (self.model(x), None)
        loss, acc = self.loss_and_accuracy(out, y)
        if self.spec.stream_rule is not None:
            self.stream_rule((out.detach() - y).abs().flatten().tolist())
        if not torch.isfinite(loss):  # logged as it is; configure_gradient_clipping then skips the step
            self.diverge("non-finite loss")
        loss_ = loss.detach()
        self.step_metrics = {"train/loss": loss_, "train/loss_rel_baseline": loss_ / self.spec.baseline_loss}
        if acc is not None:
            self.step_metrics["train/acc"] = acc
        if traces is not None:  # train/loss stays the task's E
            omega = pascanu_omega(self.model, traces, loss)
            self.step_metrics["train/omega"] = omega.detach()
            return loss + self.cfg.regulariser.alpha * omega
        return loss

    def stream_rule(self, errors: list[float]) -> None:
        """The task's rule on the training stream (TaskSpec.stream_rule): solved at this step when each of the last
        `window` sequences was within the tolerance and their mean |error| is below `mean`."""
        window, mean = self.spec.stream_rule
        self.stream_errors.extend(errors)
        if self.solved_at_step is None and len(self.stream_errors) == window:
            if max(self.stream_errors) < self.spec.tolerance and sum(self.stream_errors) < mean * window:
                self.solved_at_step = self.global_step + 1  # the steps taken, this one included
                if self.cfg.trainer.stop_when_solved:
                    self.trainer.should_stop = True

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """The step's train/* and grad/* go to the loggers as one row, at the step and with the epoch that
        Lightning's `self.log(on_step=True)` gives them, every trainer.log_every_n_steps steps and when training stops
        early (Lightning's own rule).

        Written here rather than through `self.log`: Lightning's result collection costs ~1 ms per `self.log` call
        on a CPU (measured: 0.84-1.0 ms, 5 calls a step, 8-11% of a B=64 T=200 rnn step), and these values are
        read once, per step, by the loggers and the progress line; nothing aggregates them."""
        step = self.global_step - 1  # the optimizer step this batch took (Lightning's logging step)
        if self.step_metrics and ((step + 1) % self.trainer.log_every_n_steps == 0 or self.trainer.should_stop):
            row = {k: float(v) for k, v in self.step_metrics.items()} | {"epoch": self.current_epoch}
            for logger in self.loggers:
                logger.log_metrics(row, step=step)
                logger.save()

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Clip through Lightning, and log the total gradient norm before and after, and whether clipping fired."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        pre = torch.nn.utils.get_total_norm(grads).item()
        if not math.isfinite(pre) or self.status == "diverged":
            self.step_metrics |= {"grad/norm_preclip": pre, "grad/norm_postclip": pre, "grad/clipped": 0.0}
            for p in self.parameters():
                p.grad = None  # the optimizer skips parameters without gradient: the weights stay finite
            self.diverge("non-finite gradient")
            return
        clipped = False
        if gradient_clip_val is not None:
            if gradient_clip_algorithm == ClipMode.norm:
                clipped = pre > gradient_clip_val
            else:
                clipped = max(g.abs().max().item() for g in grads) > gradient_clip_val
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        post = torch.nn.utils.get_total_norm(grads).item() if clipped else pre
        self.clip_count += int(clipped)
        self.max_norm_preclip = max(self.max_norm_preclip, pre)
        self.step_metrics |= {"grad/norm_preclip": pre, "grad/norm_postclip": post, "grad/clipped": float(clipped)}
        limit = self.cfg.trainer.explode_threshold
        if limit is not None and post > limit:  # exploded: the step that would be applied is this large
            for p in self.parameters():
                p.grad = None
            self.diverge(f"gradient norm {post:.3g} > trainer.explode_threshold={limit:g}")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = OPTIMIZERS[self.cfg.optim.name](self.parameters(), self.cfg.optim)
        # A cell's constraint (the NFG's f == 1 exactly, also under weight decay) is restored by a step post-hook
        # inside optimizer.step(), before any callback (the probe, a checkpoint) can see the weights the step left.
        optimizer.register_step_post_hook(lambda *_: self.model.constrain())
        return optimizer

    def finish(self) -> None:
        """Training is over (before test and the final checkpoint, which records it): a run that did not diverge
        completed."""
        if self.status == "running":
            self.status = "completed"

    def summary(self, test_loss: float, test_acc: float | None, baseline: dict[str, float]) -> dict[str, Any]:
        """The run's metrics.json: how it ended, its test loss against the memoryless baseline, clipping."""
        # optimizer steps applied: Lightning counts the skipped step of a non-finite loss too
        steps = self.diverged_at_step if self.status == "diverged" else self.global_step
        return {
            "status": self.status, "steps": steps, "test_loss": test_loss,
            "test_acc": None if test_acc is None else float(test_acc),
            "baseline_loss": self.spec.baseline_loss, "baseline_loss_empirical": baseline["baseline/loss_empirical"],
            "baseline_acc": self.spec.baseline_accuracy, "test_loss_rel_baseline": test_loss / self.spec.baseline_loss,
            "solved": self.spec.solved(test_loss, test_acc) and self.status == "completed",
            "solved_at_step": self.solved_at_step, "diverged_at_step": self.diverged_at_step,
            "diverged_reason": self.diverged_reason, "clip_fraction": self.clip_count / steps if steps else 0.0,
            "grad_norm_preclip_max": self.max_norm_preclip,
        }

    # ------------------------------------------------------------------------------------------ evaluation

    def _scheduled_validation(self) -> bool:
        """Lightning also validates when training stops early (a signal, a divergence); gradlab validates on its
        schedule only (every trainer.val_every_n_steps), so that a stopped and resumed run logs what an
        uninterrupted one does."""
        every = self.trainer.val_check_batch
        return not isinstance(every, int) or self.global_step % every == 0

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        if self._scheduled_validation():
            self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._scheduled_validation():
            return
        metrics = self.trainer.callback_metrics
        val_loss = float(metrics["val/loss"])
        solved = self.spec.solved(val_loss, float(metrics["val/acc"]) if "val/acc" in metrics else None)
        if self.solved_at_step is None and solved and self.spec.stream_rule is None:
            self.solved_at_step = self.global_step
            if self.cfg.trainer.stop_when_solved:
                self.trainer.should_stop = True
        self.log_dict({"val/loss_rel_baseline": val_loss / self.spec.baseline_loss, "val/solved": float(solved)})

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    # ------------------------------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gradlab_state"] = {k: getattr(self, k) for k in _RUN_STATE}
        checkpoint["gradlab_state"]["stream_errors"] = list(self.stream_errors)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for k, v in checkpoint.get("gradlab_state", {}).items():
            setattr(self, k, deque(v, maxlen=self.stream_errors.maxlen) if k == "stream_errors" else v)


_RUN_STATE = ("status", "diverged_at_step", "diverged_reason", "solved_at_step", "clip_count", "max_norm_preclip",
              "stream_errors")
