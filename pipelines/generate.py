"""Stage `generate`: data/<task>/T<seq_len>/{train,val,test}.pt + manifest.json. Run: `python pipelines/generate.py`."""

from omegaconf import DictConfig

from gradlab.config import entry, validate_data, validate_task
from gradlab.tasks import SPLITS, write_dataset


def check(cfg: DictConfig) -> None:
    validate_task(cfg.task)
    validate_data(cfg.data)


@entry("generate", check=check)
def main(cfg: DictConfig) -> None:
    sizes = {s: int(cfg.data[f"n_{s}"]) for s in SPLITS}
    out = write_dataset(cfg.data_dir, cfg.task, sizes, cfg.data.seed)
    print(f"wrote {out}/ ({', '.join(f'{s}={n}' for s, n in sizes.items())}, data seed {cfg.data.seed})")


if __name__ == "__main__":
    main()
