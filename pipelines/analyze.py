"""Stage `analyze`: the BPTT probe on a trained run's checkpoint, on test data.

`python pipelines/analyze.py <the overrides the run was trained with>` -> runs/<run_name>/analysis/.
"""

from gradlab.cli import hydra_entry
from gradlab.config import TrainConfig


@hydra_entry("config")
def main(cfg: TrainConfig) -> None:
    from gradlab.stages import analyze  # torch loads once the config is checked

    analyze.run(cfg)


if __name__ == "__main__":
    main()
