"""Stage `generate`: data/<task>/T<seq_len>/{train,val,test}.pt + manifest.json for one task config."""

from __future__ import annotations

from pathlib import Path

from gradlab.data.config import GenerateConfig
from gradlab.data.sets import write_dataset


def run(cfg: GenerateConfig) -> Path:
    sizes = cfg.data.sizes()
    out = write_dataset(cfg.data_dir, cfg.task, sizes, cfg.data.seed)
    print(f"wrote {out}/ ({', '.join(f'{s}={n}' for s, n in sizes.items())}, data seed {cfg.data.seed})")
    return out
