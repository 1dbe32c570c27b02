"""Stage `train`: one training run. `python pipelines/train.py model=nfg_lstm task.seq_len=200 clip=norm`."""

from pathlib import Path

from omegaconf import DictConfig

from gradlab.config import entry, validate


def check(cfg: DictConfig) -> None:
    """The config, then (only if the run folder holds a checkpoint) whether it can be resumed: before any work."""
    validate(cfg)
    run_dir = Path(cfg.runs_dir) / cfg.run_name
    if cfg.resume and any((run_dir / name).is_file() for name in ("last.ckpt", "model.ckpt")):
        from gradlab.resume import resume_from

        resume_from(cfg)


@entry("config", check=check)
def main(cfg: DictConfig) -> None:
    from gradlab.experiment import run_training  # torch and Lightning load only once the config is valid
    from gradlab.tasks import DataError

    try:
        run_training(cfg)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
