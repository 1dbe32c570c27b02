"""One training run from a validated config: data -> model -> Lightning Trainer -> runs/<run_name>/.

Multi-process (DDP, `trainer.devices` x `trainer.num_nodes` > 1): every process runs this same function (Lightning
starts ranks > 0 by re-running the command with LOCAL_RANK set; SLURM/torchrun start them all), takes its share of
every training batch (gradlab.data.StepBatches), evaluates the whole val/test split, and rank 0 alone writes the
run folder (config.yaml, metrics.*, bptt.csv, run_info.json, checkpoints through Lightning) and the wandb run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from gradlab.data import SequenceData
from gradlab.module import RecurrentModule
from gradlab.probes import BPTTProbe, write_probe_outputs
from gradlab.resume import (
    FINAL,
    LAST,
    GracefulStop,
    clear_outputs,
    continue_csv,
    csv_until,
    hold_run_dir,
    resume_from,
)
from gradlab.tasks import SPLITS, atomic_write_bytes, empirical_baseline, ensure_dataset, task_spec
from gradlab.tracking import (
    PlainProgress,
    finish_loggers,
    log_bptt_to_wandb,
    make_loggers,
    wandb_run_dir,
    write_json,
)

# Under DDP every process evaluates the whole val/test split (no distributed sampler), so the epoch-level val/* and
# test/* values are already the same on every rank: there is nothing for sync_dist to add.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def data_sizes(cfg: DictConfig) -> dict[str, int]:
    return {s: int(cfg.data[f"n_{s}"]) for s in SPLITS}


def prepare_data(cfg: DictConfig) -> SequenceData:
    """Make sure data/<task>/T<seq_len>/ exists (generate it if absent) and load it, checking every file."""
    folder, generated = ensure_dataset(cfg.data_dir, cfg.task, data_sizes(cfg), cfg.data.seed)
    if generated:
        print(f"generated data set {folder}", flush=True)
    dm = SequenceData(cfg.data_dir, cfg.task, cfg.trainer.batch_size, cfg.seed)
    dm.setup()
    return dm


def world_size(cfg: DictConfig) -> int:
    return int(cfg.trainer.devices) * int(cfg.trainer.get("num_nodes", 1))


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list[pl.Callback]) -> pl.Trainer:
    t = cfg.trainer
    clip = cfg.clip
    # auto: Lightning's choice for one process; ddp (never ddp_spawn/fork) when there are several
    strategy = t.get("strategy", "auto")
    if strategy == "auto" and world_size(cfg) > 1:
        strategy = "ddp"
    progress_bar = sys.stdout.isatty()
    trainer = pl.Trainer(
        max_steps=t.max_steps, max_epochs=-1, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.get("num_nodes", 1), strategy=strategy, precision=t.precision, deterministic=t.deterministic,
        gradient_clip_val=None if clip.mode == "none" else clip.threshold,
        gradient_clip_algorithm=None if clip.mode == "none" else clip.mode,
        val_check_interval=min(t.val_every_n_steps, t.max_steps), check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=t.log_every_n_steps, logger=loggers, callbacks=callbacks,
        enable_progress_bar=progress_bar, enable_model_summary=False, enable_checkpointing=False,
        # the data module shards the training batches itself; val/test: every rank evaluates the whole split
        use_distributed_sampler=False, default_root_dir=str(run_dir),
    )
    if not progress_bar and trainer.is_global_zero:  # the rank is known here (the strategy has set it)
        trainer.callbacks.append(PlainProgress(max(t.max_steps // 20, t.log_every_n_steps)))
    return trainer


_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def distributed_job(cfg: DictConfig) -> Iterator[None]:
    """What a DDP run needs from the process around it, undone afterwards.

    Who starts the processes: by default Lightning, which re-runs `sys.argv` for ranks > 0. In a Hydra multirun
    job that would be the whole sweep, so for the run's duration sys.argv holds this job's own overrides (the
    re-run is then a single run of the same config). Under the submitit launchers submitit starts them
    (hydra.launcher.tasks_per_node = trainer.devices, checked by `validate`): SLURM's variables are Lightning's
    SLURMEnvironment; submitit_local's are exported as torch.distributed's (RANK, LOCAL_RANK, MASTER_PORT ...).
    Lightning's launcher leaves LOCAL_RANK, WORLD_SIZE, MASTER_PORT ... in os.environ and the process group open;
    the next job of a multirun (same process) would take them for processes that exist already, so both are
    restored/closed when the run ends.
    """
    if world_size(cfg) == 1:
        yield
        return
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    saved_env = {k: os.environ.get(k) for k in _LAUNCHER_ENV}
    launched_here = saved_env["LOCAL_RANK"] is None  # ranks started by Lightning, torchrun or submitit have it
    if launched_here and int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # Lightning picks the GPU by rank
    argv = list(sys.argv)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        sys.argv = [sys.argv[0], *HydraConfig.get().overrides.task]
    try:
        yield
    finally:
        sys.argv = argv
        if launched_here:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()


def _job_overrides() -> list[str] | None:
    """The overrides of this run alone (in a multirun, argv is the whole sweep); None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def run_training(cfg: DictConfig) -> dict[str, Any]:
    """Train, test and write runs/<run_name>/ (config.yaml, metrics.json, metrics.csv, model.ckpt, wandb/)."""
    with distributed_job(cfg):
        return _run_training(cfg)


def _run_training(cfg: DictConfig) -> dict[str, Any]:
    started = time.perf_counter()
    dm = prepare_data(cfg)  # before the run folder exists: a bad data file leaves nothing behind
    spec = task_spec(cfg.task)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    config = OmegaConf.to_container(cfg, resolve=True)
    module = RecurrentModule(config)

    run_dir = Path(cfg.runs_dir) / cfg.run_name
    stop = GracefulStop(run_dir / LAST, run_dir / "metrics.csv")
    callbacks: list[pl.Callback] = [stop]
    probe = None
    if cfg.probe.enabled:
        x_val, y_val = dm.splits["val"].tensors
        probe = BPTTProbe(x_val[: cfg.probe.batch_size], y_val[: cfg.probe.batch_size], cfg.probe.every_n_steps)
        callbacks.append(probe)
    trainer = build_trainer(cfg, run_dir, [], callbacks)  # its loggers come once the run folder is settled
    zero = trainer.is_global_zero  # under DDP only rank 0 writes files and logs; the others train and return
    lock = hold_run_dir(run_dir) if zero else None  # noqa: F841 -- held until this function returns (closed then)
    # (checkpoint, step, metrics.csv rows then) of this run's earlier, interrupted (or shorter) training. Every rank
    # reads the same folder: ranks > 0 start once rank 0 is in fit() and has settled it; SLURM/torchrun ranks
    # start together, and rank 0 only deletes a checkpoint that no rank would resume from.
    resume = resume_from(cfg)
    y_train, y_test = dm.splits["train"].tensors[1], dm.splits["test"].tensors[1]
    baseline = {"baseline/loss": spec.baseline_loss,
                "baseline/loss_empirical": empirical_baseline(spec, y_train, y_test)}
    if zero:
        kept_csv = None
        if resume is None:
            clear_outputs(run_dir)
        else:
            kept_csv = csv_until(run_dir / "metrics.csv", resume[2])
            print(f"resuming {cfg.run_name} from {resume[0]} at step {resume[1]}", flush=True)
        atomic_write_bytes(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
        trainer.loggers = make_loggers(cfg, run_dir, config)
        for lg in trainer.loggers:
            if isinstance(lg, CSVLogger):
                continue_csv(lg, run_dir / "metrics.csv", kept_csv)
        for lg in trainer.loggers if resume is None else []:  # a resumed run's log has them already
            lg.log_metrics(baseline, step=0)
        where = str(trainer.strategy.root_device)
        if trainer.world_size > 1:
            where = f"{trainer.world_size} {trainer.strategy.root_device.type} processes ({cfg.trainer.strategy})"
        print(f"training {cfg.run_name} on {where} for {cfg.trainer.max_steps} steps "
              f"(baseline loss {spec.baseline_loss:.4g})", flush=True)

    trainer.fit(module, datamodule=dm, ckpt_path=str(resume[0]) if resume else None)
    if stop.signum is not None:
        if not zero:  # exit 0: Lightning's process observer would kill rank 0 mid-way on a rank's non-zero exit
            return {"status": "interrupted", "steps": trainer.global_step}
        finish_loggers(trainer.loggers)
        print(f"{cfg.run_name}: interrupted at step {trainer.global_step}; checkpoint {run_dir / LAST}. "
              f"Run the same command again to resume.", flush=True)
        raise SystemExit(128 + stop.signum)
    if module.status == "running":
        module.status = "completed"
    test = trainer.test(module, datamodule=dm, verbose=False)[0]  # every rank, on the whole test split
    trainer.save_checkpoint(run_dir / FINAL)  # atomic (fsspec transaction), by rank 0; every rank must call it
    if zero:  # then the unfinished marker goes
        (run_dir / LAST).unlink(missing_ok=True)

    test_loss = float(test["test/loss"])
    # Optimizer steps applied: Lightning counts the skipped step of a non-finite loss too.
    steps = module.diverged_at_step if module.status == "diverged" else trainer.global_step
    metrics = {
        "status": module.status,
        "steps": steps,
        "test_loss": test_loss,
        "test_acc": float(test["test/acc"]) if "test/acc" in test else None,
        "baseline_loss": spec.baseline_loss,
        "baseline_loss_empirical": baseline["baseline/loss_empirical"],
        "baseline_acc": spec.baseline_accuracy,
        "test_loss_rel_baseline": test_loss / spec.baseline_loss,
        "solved": bool(test_loss < 0.01 * spec.baseline_loss) and module.status == "completed",
        "solved_at_step": module.solved_at_step,
        "diverged_at_step": module.diverged_at_step,
        "diverged_reason": module.diverged_reason,
        "clip_fraction": module.clip_count / steps if steps else 0.0,
        "grad_norm_preclip_max": module.max_norm_preclip,
    }
    if not zero:
        return metrics
    if probe is not None and probe.last_scalars is not None:
        s = probe.last_scalars
        metrics.update({"bptt_decay_rate": s["decay_rate"], "bptt_horizon": s["horizon"],
                        "bptt_decay_rate_predicted": s["decay_rate_predicted"]})
        df, figures = write_probe_outputs(run_dir, probe.rows, cfg.run_name)
        log_bptt_to_wandb(trainer.loggers, df, figures)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "run_info.json", {
        "wall_time_s": round(time.perf_counter() - started, 3), "device": str(module.device),
        "torch": torch.__version__, "argv": " ".join(sys.argv), "overrides": _job_overrides(),
        "processes": trainer.world_size,
        "resumed_from_step": resume[1] if resume else None,
        # offline wandb runs cannot be resumed: each (re)start is its own offline-run-*, oldest first
        "wandb_runs": sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*")),
    })
    wandb_dir = wandb_run_dir(trainer.loggers)
    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.summary.update({f"final/{k}": v for k, v in metrics.items() if v is not None})
    finish_loggers(trainer.loggers)
    print(f"{cfg.run_name}: status={metrics['status']} steps={steps} test_loss={test_loss:.4g} "
          f"(baseline {spec.baseline_loss:.4g}, solved={metrics['solved']})")
    print(f"run folder:  {run_dir}/  (config.yaml, metrics.json, metrics.csv, model.ckpt"
          + (", bptt.csv, figures/)" if probe is not None else ")"))
    if wandb_dir:
        print(f"wandb run:   {wandb_dir}  (view online: wandb sync {wandb_dir})")
    return metrics
