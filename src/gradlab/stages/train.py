"""Stage `train`: one training run from a checked config: data -> model -> Lightning Trainer -> runs/<run_name>/.

Multi-process (DDP, `trainer.devices` x `trainer.num_nodes` > 1): every process runs this same function (Lightning
starts ranks > 0 by re-running the command with LOCAL_RANK set; SLURM/torchrun start them all), takes its share of
every training batch (gradlab.data.sets.StepBatches), evaluates the whole val/test split, and rank 0 alone writes the
run folder (gradlab.training.bookkeeping.RunRecorder) and the wandb run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.environments import SLURMEnvironment

from gradlab.core.choices import ClipMode, Strategy
from gradlab.core.runfolder import RunFolder
from gradlab.data.sets import SequenceData, ensure_dataset
from gradlab.launch.slurm import use_allocated_cpus
from gradlab.probe.bptt import BPTTProbe
from gradlab.tracking.loggers import PlainProgress
from gradlab.training.bookkeeping import RunRecorder
from gradlab.training.config import TrainConfig
from gradlab.training.module import RecurrentModule
from gradlab.training.resume import AtomicCheckpointIO, GracefulStop
from gradlab.training.subnormals import flushing

# Under DDP every process evaluates the whole val/test split (no distributed sampler), so the epoch-level val/* and
# test/* values are already the same on every rank: there is nothing for sync_dist to add.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train, test and write runs/<run_name>/ (config.yaml, metrics.json, metrics.csv, model.ckpt, bptt.csv, wandb/)."""
    use_allocated_cpus()  # in a Slurm job: the CPUs it was given, not every core of the node
    # trainer.flush_denormal in this process's threads, for this run (run_info.json records what held)
    with distributed_job(cfg), flushing(cfg.trainer.flush_denormal):
        return _run_training(cfg)


def _run_training(cfg: TrainConfig) -> dict[str, Any]:
    dm = prepare_data(cfg)  # before the run folder exists: a bad data file leaves nothing behind
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = RecurrentModule(cfg)
    folder = RunFolder.of(cfg.runs_dir, cfg.run_name)
    stop = GracefulStop(folder.last_ckpt, folder.metrics_csv)
    probe = BPTTProbe.of_validation(dm, cfg.probe) if cfg.probe.enabled else None
    recorder = RunRecorder(cfg, folder, dm, probe)
    trainer = build_trainer(cfg, folder, [stop, recorder, *([probe] if probe else [])])
    with recorder.holding(trainer) as checkpoint:
        trainer.fit(module, datamodule=dm, ckpt_path=checkpoint)
        if stop.signum is not None:
            return recorder.interrupted(trainer, stop)
        module.finish()
        test = trainer.test(module, datamodule=dm, verbose=False)[0]  # every rank, on the whole test split
        trainer.save_checkpoint(folder.final_ckpt)  # atomic (AtomicCheckpointIO), by rank 0; every rank calls it
        return recorder.record(trainer, module, test)


def prepare_data(cfg: TrainConfig) -> SequenceData:
    """Make sure data/<task>/T<seq_len>/ exists (generate it if absent) and load it, checking every file."""
    folder, generated = ensure_dataset(cfg.data_dir, cfg.task, cfg.data.sizes(), cfg.data.seed)
    if generated:
        print(f"generated data set {folder}", flush=True)
    dm = SequenceData(cfg.data_dir, cfg.task, cfg.trainer.batch_size, cfg.seed)
    dm.setup()
    return dm


def build_trainer(cfg: TrainConfig, folder: RunFolder, callbacks: list[pl.Callback],
                  loggers: list | None = None) -> pl.Trainer:
    t, clip = cfg.trainer, cfg.clip
    # auto: Lightning's choice for one process; ddp (never ddp_spawn/fork) when there are several
    strategy = Strategy.ddp if t.strategy == Strategy.auto and t.world_size > 1 else t.strategy
    progress_bar = sys.stdout.isatty()
    plugins: list = [AtomicCheckpointIO()]  # last.ckpt and model.ckpt: a temporary name in the folder, then a rename
    if int(os.environ.get("SLURM_NTASKS", 0)) == t.world_size and "SLURM_PROCID" in os.environ:
        # Slurm started the processes: Lightning's SLURM environment joins them, but without its auto-requeue
        # (SIGUSR1: an HPC checkpoint and `scontrol requeue`): gradlab's GracefulStop owns the signals
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = pl.Trainer(
        max_steps=t.max_steps, max_epochs=-1, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=strategy, precision=t.precision, deterministic=t.deterministic,
        gradient_clip_val=None if clip.mode == ClipMode.none else clip.threshold,
        gradient_clip_algorithm=None if clip.mode == ClipMode.none else clip.mode,
        val_check_interval=min(t.val_every_n_steps, t.max_steps), check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=t.log_every_n_steps, logger=loggers or [], callbacks=callbacks,
        enable_progress_bar=progress_bar, enable_model_summary=False, enable_checkpointing=False,
        # the data module shards the training batches itself; val/test: every rank evaluates the whole split
        use_distributed_sampler=False, default_root_dir=str(folder.path), plugins=plugins,
    )
    if not progress_bar and trainer.is_global_zero:  # the rank is known here (the strategy has set it)
        trainer.callbacks.append(PlainProgress(max(t.max_steps // 20, t.log_every_n_steps)))
    return trainer


_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def distributed_job(cfg: TrainConfig) -> Iterator[None]:
    """What a DDP run needs from the process around it, undone afterwards.

    Who starts the processes: by default Lightning, which re-runs `sys.argv` for ranks > 0. In a Hydra multirun
    job that would be the whole sweep, so for the run's duration sys.argv holds this job's own overrides (the
    re-run is then a single run of the same config). Under the submitit launchers submitit starts them
    (hydra.launcher.tasks_per_node = trainer.devices, checked by `pipelines/train.py`): SLURM's variables are
    Lightning's SLURMEnvironment; submitit_local's are exported as torch.distributed's (RANK, LOCAL_RANK, ...).
    Lightning's launcher leaves LOCAL_RANK, WORLD_SIZE, MASTER_PORT ... in os.environ and the process group open;
    the next job of a multirun (same process) would take them for processes that exist already, so both are
    restored and closed when the run ends.
    """
    if cfg.trainer.world_size == 1:
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
