"""The reproduction table: every published claim beside our runs of the paper's own setup (stage `paper`), over seeds,
with the verdict; and the table as Markdown (results/summary/reproduction.md, docs/literature.md's block).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gradlab.grid import PaperRun
from gradlab.literature import reproduction_rows
from gradlab.runfolder import RunFolder, read_json


def paper_row(runs_dir: Path, run: PaperRun) -> dict[str, Any]:
    """One paper run (stage `paper`) as the reproduction table reads it."""
    folder = RunFolder.of(runs_dir, run.name)
    config = yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else None
    m = read_json(folder.metrics) or {}
    trainer = (config or {}).get("trainer", {})
    return {"paper": run.paper, "model": run.model, "T": run.seq_len, "seed": run.seed, "run": run.name,
            "status": m.get("status", "missing"), "solved": bool(m.get("solved", False)),
            "solved_at_step": m.get("solved_at_step"), "steps": m.get("steps"),
            "batch_size": trainer.get("batch_size"), "max_steps": trainer.get("max_steps"),
            "loss_rel_baseline": m.get("test_loss_rel_baseline"), "test_acc": m.get("test_acc"),
            "stream_error_rate": m.get("stream_error_rate"), "config": config}


def reproduction(papers: list[PaperRun], runs_dir: Path) -> pd.DataFrame:
    """The reproduction table: every published claim, our runs of its setup over seeds, and the verdict."""
    return pd.DataFrame(reproduction_rows([paper_row(runs_dir, r) for r in papers]))


REPRODUCTION_KEYS = ["source", "setup", "model", "T", "seeds", "solved", "sequences to solve", "theirs",
                     "loss/baseline", "verdict", "in the band", "ours differs"]


def reproduction_markdown(table: pd.DataFrame, keys: list[str] = REPRODUCTION_KEYS) -> str:
    """The reproduction table as Markdown (reproduction.md, docs/literature.md's block): the setup as its conf/paper/
    name."""
    def cell(r: pd.Series, key: str) -> str:
        text = str(r.get(key, ""))
        if key == "setup":
            text = f"`{text.removeprefix('conf/paper/').removesuffix('.yaml')}`" if text.startswith("conf/") else "–"
        return text.replace("|", "/")

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r, k) for k in keys) + " |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"
