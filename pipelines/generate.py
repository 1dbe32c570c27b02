"""Stage `generate`: data/<task>/T<seq_len>/{train,val,test}.pt + manifest.json. `python pipelines/generate.py`."""

from gradlab.cli import hydra_entry
from gradlab.config import GenerateConfig


@hydra_entry("generate")
def main(cfg: GenerateConfig) -> None:
    from gradlab.stages import generate  # torch loads once the config is checked

    generate.run(cfg)


if __name__ == "__main__":
    main()
