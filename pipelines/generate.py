"""Stage `generate`: data/<task>/T<seq_len>/{train,val,test}.pt + manifest.json. `python pipelines/generate.py`."""

from gradlab.data.config import GenerateConfig
from gradlab.launch.cli import hydra_entry


def rerun(cfg: GenerateConfig) -> tuple[str, str]:
    """After a full disk: the folder it writes (a set without its manifest.json is made again on the next use)."""
    from gradlab.data.sets import data_dir

    return "rerun", str(data_dir(cfg.data_dir, cfg.task))


@hydra_entry("generate", rerun=rerun)
def main(cfg: GenerateConfig) -> None:
    from gradlab.stages import generate  # torch loads once the config is checked

    generate.run(cfg)


if __name__ == "__main__":
    main()
