"""A training run's bookkeeping in its folder: what rank 0 writes around `trainer.fit` and `trainer.test`.

`RunRecorder` claims runs/<run_name>/ (a lock), settles it before training (a fresh start clears the old run's
files; a resumed one keeps the CSV rows logged before its checkpoint), writes config.yaml, starts the loggers, and
at the end writes the probe's outputs, metrics.json, run_info.json and the wandb summary. Under DDP only rank 0
writes; every rank reads where to resume from."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from gradlab.core.conf import as_dict
from gradlab.core.runfolder import RunFolder, atomic_write_bytes, write_json
from gradlab.data.sets import SequenceData
from gradlab.probe.bptt import BPTTProbe, write_probe_outputs
from gradlab.probe.stream import write_stream
from gradlab.tasks.base import empirical_baseline
from gradlab.tracking.loggers import finish_loggers, log_bptt_to_wandb, make_loggers, wandb_run_dir
from gradlab.training.config import TrainConfig
from gradlab.training.module import RecurrentModule
from gradlab.training.resume import GracefulStop, Resume, continue_csv, csv_until, resume_from
from gradlab.training.subnormals import flush_state

# the last probe's memory measurements (gradlab.probe.memory) that metrics.json keeps, where the probe made them
MEMORY_SCALARS = ("sensitivity", "sensitivity_per_parameter", "hessian_top")


class RunRecorder(pl.Callback):
    """Rank 0's records of one run; `setup` (before fit) starts them, `record` ends them."""

    def __init__(self, cfg: TrainConfig, folder: RunFolder, dm: SequenceData, probe: BPTTProbe | None):
        self.cfg, self.folder, self.dm, self.probe = cfg, folder, dm, probe
        self.started = time.perf_counter()
        self.resume: Resume | None = None
        spec = cfg.task.spec()
        y_train, y_test = dm.splits["train"].tensors[1], dm.splits["test"].tensors[1]
        self.baseline = {"baseline/loss": spec.baseline_loss,
                         "baseline/loss_empirical": empirical_baseline(spec, y_train, y_test)}

    @contextlib.contextmanager
    def holding(self, trainer: pl.Trainer) -> Iterator[str | None]:
        """Rank 0 holds the folder's lock for the run; yields the checkpoint every rank resumes from (or None).

        Every rank reads the same folder: ranks > 0 start once rank 0 is in fit() and has settled it; SLURM and
        torchrun start them together, and rank 0 only deletes a checkpoint that no rank would resume from."""
        lock = self.folder.hold() if trainer.is_global_zero else None
        try:
            self.resume = resume_from(self.cfg)
            yield str(self.resume.checkpoint) if self.resume else None
        finally:
            if lock is not None:
                lock.close()

    @rank_zero_only
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        cfg, folder, resume = self.cfg, self.folder, self.resume
        kept_csv = None
        if resume is None:
            folder.clear()
        else:
            kept_csv = csv_until(folder.metrics_csv, resume.csv_rows)
            print(f"resuming {cfg.run_name} from {resume.checkpoint} at step {resume.step}", flush=True)
        config = as_dict(cfg)
        atomic_write_bytes(folder.config, OmegaConf.to_yaml(OmegaConf.create(config)).encode())
        trainer.loggers = make_loggers(cfg.logger, cfg.run_name, folder.path, config)
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                continue_csv(logger, folder.metrics_csv, kept_csv)
            if resume is None:  # a resumed run's log has them already
                logger.log_metrics(self.baseline, step=0)
        where = str(trainer.strategy.root_device)
        if trainer.world_size > 1:
            where = f"{trainer.world_size} {trainer.strategy.root_device.type} processes ({cfg.trainer.strategy})"
        print(f"training {cfg.run_name} on {where} for {cfg.trainer.max_steps} steps "
              f"(baseline loss {self.baseline['baseline/loss']:.4g})", flush=True)

    def interrupted(self, trainer: pl.Trainer, stop: GracefulStop) -> dict[str, Any]:
        """A run stopped by a signal: its last.ckpt is written; the loggers are closed (a wandb run whose service the
        same signal stopped, as Slurm's SIGTERM to the whole job does, is left as its offline files have it), the
        signal's owner gets it (submitit requeues a timed-out job), and the process exits 128 + signal. Ranks > 0
        return: a non-zero exit of theirs would make Lightning's process observer kill rank 0 mid-way."""
        if not trainer.is_global_zero:
            return {"status": "interrupted", "steps": trainer.global_step}
        finish_loggers(trainer.loggers, abandon_wandb=True)
        print(f"{self.cfg.run_name}: interrupted at step {trainer.global_step}; checkpoint {self.folder.last_ckpt}. "
              f"Run the same command again to resume.", flush=True)
        stop.hand_over()
        raise SystemExit(128 + stop.signum)

    def record(self, trainer: pl.Trainer, module: RecurrentModule, test: dict[str, Any]) -> dict[str, Any]:
        """The finished run's metrics (every rank); rank 0 writes them with the probe's outputs and the run info."""
        metrics = module.summary(float(test["test/loss"]), test.get("test/acc"), self.baseline)
        if not trainer.is_global_zero:
            return metrics
        self.folder.last_ckpt.unlink(missing_ok=True)  # model.ckpt is written: the unfinished marker goes
        if self.probe is not None and self.probe.last_scalars is not None:
            metrics.update({f"bptt_{k}": self.probe.last_scalars[k]
                            for k in ("decay_rate", "horizon", "decay_rate_predicted", *MEMORY_SCALARS)
                            if k in self.probe.last_scalars})
            df, figures = write_probe_outputs(self.folder, self.probe.rows, self.cfg.run_name)
            log_bptt_to_wandb(trainer.loggers, df, figures)
        if module.spec.continual:  # the test streams position by position: stream.csv, stream_* in metrics.json
            metrics.update(write_stream(self.folder.stream, module.model, *self.dm.splits["test"].tensors))
        write_json(self.folder.metrics, metrics)
        write_json(self.folder.run_info, self.run_info(trainer, module))
        wandb_dir = wandb_run_dir(trainer.loggers)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update({f"final/{k}": v for k, v in metrics.items() if v is not None})
        finish_loggers(trainer.loggers)
        spec = module.spec
        print(f"{self.cfg.run_name}: status={metrics['status']} steps={metrics['steps']} "
              f"test_loss={metrics['test_loss']:.4g} (baseline {spec.baseline_loss:.4g}, solved={metrics['solved']})")
        print(f"run folder:  {self.folder.path}/  (config.yaml, metrics.json, metrics.csv, model.ckpt"
              + (", bptt.csv, figures/)" if self.probe is not None else ")"))
        if wandb_dir:
            print(f"wandb run:   {wandb_dir}  (view online: wandb sync {wandb_dir})")
        return metrics

    def run_info(self, trainer: pl.Trainer, module: RecurrentModule) -> dict[str, Any]:
        """What is true of this process, not of the result: kept out of metrics.json so reruns compare bytewise."""
        from hydra.core.hydra_config import HydraConfig

        return {
            "wall_time_s": round(time.perf_counter() - self.started, 3), "device": str(module.device),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "argv": " ".join(sys.argv),
            "processes": trainer.world_size,
            "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None,
            "resumed_from_step": self.resume.step if self.resume else None,
            # trainer.flush_denormal as it held: the share of the intra-op threads that flush subnormals (1.0: all)
            "subnormals_flushed": flush_state(),
            # offline wandb runs cannot be resumed: each (re)start is its own offline-run-*, oldest first
            "wandb_runs": sorted(p.name for p in self.folder.wandb.glob("offline-run-*")),
        }
