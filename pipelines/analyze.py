"""Stage `analyze`: the BPTT probe on a trained run's checkpoint, on test data.

`python pipelines/analyze.py <the overrides the run was trained with>` -> runs/<run_name>/analysis/.
"""

from omegaconf import DictConfig

from gradlab.config import ConfigError, entry, validate


@entry("config", check=validate)
def main(cfg: DictConfig) -> None:
    from gradlab.analysis import run_analysis  # torch and Lightning load only once the config is valid
    from gradlab.tasks import DataError

    try:
        run_analysis(cfg)
    except (ConfigError, DataError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
