"""`make view`: the study's wandb runs in W&B's own terminal viewer, `wandb leet`, offline, without writing into them.

leet opens a wandb directory and lists every `run-<YYYYMMDD_HHMMSS>-<id>` (or `offline-run-…`) folder in it, reading
`<folder>/run-<id>.wandb`; it writes how that directory was last viewed (`.wandb-leet.json`: the metrics and runs
filters, the selected and pinned runs) into the directory itself. Pointed at `runs/<run>/wandb/`, a DVC output,
that file would make `dvc status` dirty; and each run folder holds one wandb directory, so leet could show one
study run at a time. So `build` makes `.view/wandb/` (ignored by git and DVC), afresh on every call: one folder per
wandb run, named `run-<the run's own timestamp>-<name>` so that leet's list shows the study's names, holding two
symlinks into the run (its `.wandb` log, and `files/`, where the logged figures are for leet's media pane), and a
`.wandb-leet.json` that opens with the study's runs selected and the charts a reader wants filtered to the front.
leet reads through the links and writes only into `.view/wandb/` (and its own config, `wandb leet config`)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from gradlab.core.errors import ConfigError, DataError
from gradlab.tracking.wandb_online import WANDB_DIRS

VIEW_DIR = Path(".view") / "wandb"


RUN_DIR = re.compile(r"^(?:offline-)?run-(?P<ts>\d{8}_\d{6})-(?P<id>[^/]+)$")


# leet orders charts by name and pins none; its per-directory filter is the one way to put some first. These are
# the charts the study is read by: the losses, the gradient norm before and after clipping, the probe's measured
# decay rate of ‖∂ℓ/∂h_t‖ and its horizon (`/` in leet edits the filter, ctrl+l clears it to show every chart).
READER_CHARTS = r"^((train|val)/loss|grad/norm_(pre|post)clip|bptt/(decay_rate|horizon))$"


@dataclass(frozen=True)
class ViewRun:
    """One wandb run of the study as leet will list it. `name`: the run folder's name for its training run,
    `<run>.analysis` for its analysis, `.2`, `.3`… appended for the later starts of a resumed run (each start is its
    own offline wandb run); `summary`, `geometry`, `cliff` for the result stages. `group`: the run folder or result
    stage it belongs to (`ARGS=` patterns match it too), `kind`: train, analysis or stage; `timestamp`: its wandb
    folder's; `source`: that folder."""

    name: str
    group: str
    kind: str
    timestamp: str
    source: Path

    @property
    def folder(self) -> str:
        """The folder name leet lists; leet reads `<folder>/run-<name>.wandb`."""
        return f"run-{self.timestamp}-{self.name}"

    @property
    def log(self) -> Path:
        return next(self.source.glob("run-*.wandb"))


def _starts(wandb_dir: Path) -> list[Path]:
    """The wandb runs in one wandb directory, oldest first (the `latest-run` link and wandb's logs left out)."""
    runs = [d for d in wandb_dir.iterdir() if RUN_DIR.match(d.name) and d.is_dir() and not d.is_symlink()
            and any(d.glob("run-*.wandb"))]
    return sorted(runs, key=lambda d: (RUN_DIR.match(d.name)["ts"], d.name))


def find_runs(root: Path) -> list[ViewRun]:
    """Every wandb run of the study under root, in the order leet lists them (newest first)."""
    found: list[ViewRun] = []
    for kind, pattern in WANDB_DIRS.items():  # the folders `make sync` uploads (training: one run per start)
        for wandb_dir in sorted(root.glob(pattern)):
            group = wandb_dir.parent.parent.name if kind == "analysis" else wandb_dir.parent.name
            base = f"{group}.analysis" if kind == "analysis" else group
            for i, d in enumerate(_starts(wandb_dir)):
                found.append(ViewRun(base if i == 0 else f"{base}.{i + 1}", group, kind,
                                     RUN_DIR.match(d.name)["ts"], d))
    return sorted(found, key=lambda r: (r.timestamp, r.name), reverse=True)


def select(runs: list[ViewRun], patterns: list[str]) -> list[ViewRun]:
    """The runs whose name or group matches one of the glob patterns (all runs without patterns); ConfigError for a
    pattern that matches none."""
    if not patterns:
        return runs
    for p in patterns:
        if not any(fnmatch.fnmatchcase(r.name, p) or fnmatch.fnmatchcase(r.group, p) for r in runs):
            groups = sorted({r.group for r in runs})
            shown = ", ".join(groups[:6]) + (f", … ({len(groups)} in all)" if len(groups) > 6 else "")
            raise ConfigError(f"no wandb run matches {p!r}; the study's runs: {shown}")
    return [r for r in runs if any(fnmatch.fnmatchcase(r.name, p) or fnmatch.fnmatchcase(r.group, p)
                                   for p in patterns)]


def build(runs: list[ViewRun], view_dir: Path) -> Path:
    """view_dir made afresh: a leet-style folder of symlinks per run, and the view's opening state."""
    if view_dir.is_symlink() or view_dir.is_file():
        view_dir.unlink()
    elif view_dir.exists():
        shutil.rmtree(view_dir)
    view_dir.mkdir(parents=True)
    for r in runs:
        folder = view_dir / r.folder
        folder.mkdir()
        (folder / f"run-{r.name}.wandb").symlink_to(r.log.resolve())
        if (r.source / "files").is_dir():
            (folder / "files").symlink_to((r.source / "files").resolve(), target_is_directory=True)
    training = [r.folder for r in runs if r.kind == "train"]
    state = {"metrics_filter": {"query": READER_CHARTS},
             "selected_runs": training or [r.folder for r in runs],
             "latest_run": runs[0].folder}
    (view_dir / ".wandb-leet.json").write_text(json.dumps(state, indent=2) + "\n")
    return view_dir


def leet_command(view_dir: Path) -> list[str]:
    """W&B's own viewer on view_dir, with the wandb of this Python."""
    return [sys.executable, "-m", "wandb", "leet", "run", str(view_dir)]


def prepare(root: Path, patterns: list[str], view_dir: Path | None = None) -> tuple[Path, list[ViewRun]]:
    """Find the study's runs under root, narrow them to patterns and build the view folder; DataError when there
    are none."""
    runs = find_runs(root)
    if not runs:
        raise DataError(f"no wandb runs to view under {root / 'runs'} or {root / 'results'}: train one "
                        "(`make experiment`) or run the study (`make repro`) first")
    chosen = select(runs, patterns)
    return build(chosen, view_dir or root / VIEW_DIR), chosen


def launch(view_dir: Path, runs: int) -> None:
    """Hand the terminal to leet (offline, no telemetry: WANDB_MODE=offline unless the environment says otherwise);
    ConfigError where there is no terminal to hand over."""
    if not (os.isatty(0) and os.isatty(1)):
        raise ConfigError(f"wandb leet is a terminal viewer and this is not a terminal; in one, run `make view` or "
                          f"`wandb leet {view_dir}`")
    print(f"wandb leet: {runs} runs in {view_dir} (q quits, h helps)", file=sys.stderr)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    cmd = leet_command(view_dir)
    os.execv(cmd[0], cmd)
