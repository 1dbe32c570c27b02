"""The study's grid: params.yaml (one profile's grid; `make repro PROFILE=...` copies conf/study/<profile>.yaml
there) and the runs it defines.

`params.yaml` is the single place the study is defined; DVC passes its values to the Hydra entry points, and the
summary and report stages read the same file to know which runs belong to the study."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gradlab import cells
from gradlab.core.conf import CONF_DIR
from gradlab.core.errors import ConfigError
from gradlab.core.runfolder import atomic_write_bytes, run_name
from gradlab.tasks import TASKS

STUDY_DIR = CONF_DIR / "study"  # one params file per profile: conf/study/<profile>.yaml


def profiles() -> list[str]:
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class RunKey:
    """One cell of the study grid, and the folder its training run writes."""

    task: str
    seq_len: int
    model: str
    hidden_size: int
    clip: str  # the run-folder tag: none | norm<t> | value<t>
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.task, self.seq_len, self.model, self.clip, self.seed)


def read_params(path: Path) -> dict[str, Any]:
    """params.yaml as a dict; ConfigError naming the file when it is missing or not a study."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the study parameters {path}: {err}") from None
    if not isinstance(params, dict) or "study" not in params:
        raise ConfigError(f"{path} has no `study:` section; restore it with `make repro PROFILE=cpu`")
    return params


def _model(name: str, key: str) -> None:
    if name not in cells.CELLS:
        raise ConfigError(f"{key}={name!r} is not a valid choice; choose one of: {', '.join(cells.CELLS)}")


def study_runs(params: dict[str, Any]) -> list[RunKey]:
    """Every training run of the grid, in the order of dvc.yaml's matrix (task, T, model, clip, seed)."""
    s = params["study"]
    for task in s["tasks"]:
        if task not in TASKS:
            raise ConfigError(f"study.tasks={task!r} is not a valid choice; choose one of: {', '.join(TASKS)}")
    for m in s["models"]:
        _model(m["name"], "study.models name")
    return [RunKey(task, int(T), m["name"], int(m["hidden_size"]), c["tag"], int(seed))
            for task, T, m, c, seed in itertools.product(s["tasks"], s["seq_lens"], s["models"], s["clips"],
                                                         s["seeds"])]


def switch_profile(params_path: Path, profile: str) -> bool:
    """Make params.yaml the study of `profile` (conf/study/<profile>.yaml); False when it already is.

    A params.yaml that already names the profile is left alone, so hand edits survive `make repro`.
    """
    if profile not in profiles():
        raise ConfigError(f"PROFILE={profile!r} is not a valid choice; choose one of: {', '.join(profiles())}")
    current = None
    if params_path.is_file():
        current = (yaml.safe_load(params_path.read_text()) or {}).get("profile")
    if current == profile:
        return False
    atomic_write_bytes(params_path, (STUDY_DIR / f"{profile}.yaml").read_bytes())
    return True


@dataclass(frozen=True)
class PaperRun:
    """One run of a published setup (params.yaml `papers`, dvc.yaml stage `paper`)."""

    paper: str  # conf/paper/<paper>.yaml
    seq_len: int
    model: str
    seed: int

    @property
    def name(self) -> str:
        return f"paper-{self.paper}-T{self.seq_len}-{self.model}-s{self.seed}"


def paper_runs(params: dict[str, Any]) -> list[PaperRun]:
    """Every paper run of the profile, in dvc.yaml's matrix order (setup, seed); none when it has no `papers`."""
    papers = params.get("papers") or {}
    for s in papers.get("setups", []):
        if not (CONF_DIR / "paper" / f"{s['name']}.yaml").is_file():
            choices = sorted(f.stem for f in (CONF_DIR / "paper").glob("*.yaml"))
            raise ConfigError(f"papers.setups name={s['name']!r} is not a valid choice; choose one of: "
                              f"{', '.join(choices)}")
        _model(s["model"], "papers.setups model")
    return [PaperRun(s["name"], int(s["T"]), s["model"], int(seed))
            for s, seed in itertools.product(papers.get("setups", []), papers.get("seeds", []))]
