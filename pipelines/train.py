"""Stage `train`: one training run. `python pipelines/train.py model=nfg_lstm task.seq_len=200 clip=norm`."""

from omegaconf import DictConfig

from gradlab.config import entry, validate


@entry("config", check=validate)
def main(cfg: DictConfig) -> None:
    from gradlab.experiment import run_training  # torch and Lightning load only once the config is valid
    from gradlab.tasks import DataError

    try:
        run_training(cfg)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
