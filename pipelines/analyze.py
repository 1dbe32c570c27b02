"""Stage `analyze`: the BPTT probe on a trained run's checkpoint, on test data.

`python pipelines/analyze.py <the overrides the run was trained with>` -> runs/<run_name>/analysis/.
"""

from gradlab.launch.cli import hydra_entry
from gradlab.training.config import TrainConfig


def rerun(cfg: TrainConfig) -> tuple[str, str]:
    """After a full disk: the analysis is made again from model.ckpt; the folder it writes."""
    from gradlab.core.runfolder import RunFolder

    return "rerun", str(RunFolder.of(cfg.runs_dir, cfg.run_name).analysis.path)


@hydra_entry("config", rerun=rerun)
def main(cfg: TrainConfig) -> None:
    from gradlab.stages import analyze  # torch loads once the config is checked

    analyze.run(cfg)


if __name__ == "__main__":
    main()
