"""Stage `train`: one training run. `python pipelines/train.py model=nfg_lstm task.seq_len=200 clip=norm`.

A Hydra entry point (it composes conf/config.yaml with the overrides); every override is checked before any work,
and the folder is checked for a run of another config.
"""

from gradlab.core.errors import ConfigError
from gradlab.launch.cli import hydra_entry
from gradlab.launch.machine import check_machine
from gradlab.training.config import TrainConfig


def check(cfg: TrainConfig) -> None:
    """What a training run needs beyond its schema, before any work: the machine (a GPU asked for, its memory),
    the launcher (a submitit job starts one task per process), and a run folder it may resume into. Cheap on the
    common path: torch and Lightning load only if a GPU may be used or the folder holds a checkpoint."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gradlab.core.runfolder import RunFolder

    check_machine(cfg)
    t = cfg.trainer
    hc = HydraConfig.get() if HydraConfig.initialized() else None
    if t.world_size > 1 and hc and hc.mode == RunMode.MULTIRUN and "submitit" in str(hc.launcher.get("_target_")):
        launcher = hc.launcher
        if (launcher.tasks_per_node, launcher.nodes) != (t.devices, t.num_nodes):
            raise ConfigError(f"trainer.devices={t.devices} x trainer.num_nodes={t.num_nodes} under the submitit "
                              f"launcher needs one task per process: hydra.launcher.tasks_per_node={t.devices} "
                              f"hydra.launcher.nodes={t.num_nodes} (have {launcher.tasks_per_node} x {launcher.nodes})")
    folder = RunFolder.of(cfg.runs_dir, cfg.run_name)
    if cfg.resume and (folder.last_ckpt.is_file() or folder.final_ckpt.is_file()):
        from gradlab.training.resume import resume_from

        resume_from(cfg)


def rerun(cfg: TrainConfig) -> tuple[str, str]:
    """After a full disk: a rerun resumes from the run's last.ckpt when it has one; the run folder."""
    from gradlab.core.runfolder import RunFolder

    folder = RunFolder.of(cfg.runs_dir, cfg.run_name)
    return ("rerun: it resumes from last.ckpt" if folder.last_ckpt.is_file() and cfg.resume else "rerun"), str(
        folder.path)


@hydra_entry("config", check=check, rerun=rerun)
def main(cfg: TrainConfig) -> None:
    from gradlab.stages.train import run_training  # torch and Lightning load once the config is checked

    run_training(cfg)


if __name__ == "__main__":
    main()
