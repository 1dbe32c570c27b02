"""`make view`: W&B's own viewer (`wandb leet`) on the smoke study's real offline runs, in a real terminal (tmux):
every run listed by name, the reader's charts drawn, and nothing written into the runs (`dvc status` clean)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from gradlab.tracking import view

BIN = Path(sys.executable).parent
TMUX = shutil.which("tmux")
# CI installs tmux (`make tmux`, a prerequisite of `make test`): there a missing tmux fails the test, never skips it
needs_tmux = pytest.mark.skipif(TMUX is None and not os.environ.get("CI"), reason="no tmux (make tmux)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "WANDB_MODE": "offline", **extra}


def _view(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """pipelines/view.py as `make view` runs it, in the study's checkout (with this checkout's gradlab)."""
    return subprocess.run([sys.executable, "pipelines/view.py", *args], cwd=cwd, text=True, capture_output=True,
                          env=_env(PYTHONPATH=str(ROOT / "src")), timeout=120)


def _snapshot(study: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under the study's DVC outputs (runs/, results/), with its size and mtime."""
    return {str(p.relative_to(study)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for top in ("runs", "results") for p in (study / top).rglob("*")}


def _dvc_status(study: Path) -> str:
    done = subprocess.run([str(BIN / "dvc"), "status"], cwd=study, env=_env(), text=True, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture
def study(smoke_study: Path):
    """The session's smoke study; the view folder this test makes is removed afterwards, and so is any leet state a
    failing viewer left in the study's DVC outputs (the next session may reuse the study: GRADLAB_SMOKE_STUDY)."""
    yield smoke_study
    shutil.rmtree(smoke_study / ".view", ignore_errors=True)
    for top in ("runs", "results"):
        for state in (smoke_study / top).rglob(".wandb-leet*"):
            state.unlink()


def _wandb_runs_on_disk(study: Path) -> list[str]:
    """The wandb runs of the study as its folders hold them, counted without gradlab.tracking.view: one per
    offline-run-*
    folder (with its .wandb log) of every training run, analysis and result stage."""
    found = []
    for top in ("runs/*", "runs/*/analysis", "results/*"):
        pattern = f"{top}/wandb/offline-run-*"
        found += [str(d.relative_to(study)) for d in study.glob(pattern) if any(d.glob("run-*.wandb"))]
    return sorted(found)


@needs_tmux
def test_view_lists_every_run_and_draws_the_charts_in_a_terminal_and_writes_nothing_into_the_runs(study, tmp_path):
    assert TMUX, "tmux is missing: `make tmux` installs it (CI must have it)"
    runs = view.find_runs(study)
    assert sorted(str(r.source.relative_to(study)) for r in runs) == _wandb_runs_on_disk(study)
    assert {r.kind for r in runs} == {"train", "analysis", "stage"}, [r.folder for r in runs]
    before, status = _snapshot(study), _dvc_status(study)
    assert status == "Data and pipelines are up to date.", f"the smoke study was not clean before the viewer: {status}"
    socket, session = f"gradlab-view-{os.getpid()}", "view"
    tmux = [TMUX, "-L", socket]  # a tmux server of its own, whatever the user runs
    # leet's own config (grid sizes, colours) goes to WANDB_CONFIG_DIR: a fresh one, as on a first use
    env = {"WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"), "PYTHONPATH": str(ROOT / "src"),
           "WANDB_MODE": "offline", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    # a viewer that fails leaves its error on the screen (and the test shows it)
    # `make view` itself, with this checkout's Makefile and .venv (the study's copy has no .venv of its own)
    venv = BIN.parent
    make = (f"make -f {shlex.quote(str(ROOT / 'Makefile'))} VENV={shlex.quote(str(venv))} "
            f"-o {shlex.quote(str(venv / '.installed'))} view")
    command = ("env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
               + f" {make} || {{ echo exit $?; sleep 120; }}")
    screen = ""
    try:
        # 320 columns: leet gives its run list a fixed share of the width, and the longest smoke-study name needs it
        subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "320", "-y", "60", "-c", str(study),
                        command], check=True, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            done = subprocess.run([*tmux, "capture-pane", "-p", "-t", session], text=True, capture_output=True)
            screen = done.stdout
            if all(r.folder in screen for r in runs) and "train/loss" in screen and "└" in screen:
                break
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], timeout=10)
        time.sleep(2)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)
    print(screen)
    for r in runs:  # every run by the name of its run folder (or result stage), as leet lists it
        assert r.folder in screen, f"{r.folder} not on the screen:\n{screen}"
    for chart in ("bptt/decay_rate", "bptt/horizon", "train/loss", "val/loss"):  # the reader's charts, drawn
        assert chart in screen, f"no {chart} chart:\n{screen}"
    assert "└" in screen and any(c in screen for c in "⠁⠂⠄⡀⠈⠐⠠⢀⣀⠤⠒⠉"), "no chart axes or lines drawn"
    # leet's state is in the view folder, and nothing under runs/ or results/ was written, added or removed
    assert (study / ".view" / "wandb" / ".wandb-leet.json").is_file()
    assert _snapshot(study) == before
    assert not list((study / "runs").rglob(".wandb-leet*")) and not list((study / "results").rglob(".wandb-leet*"))
    assert _dvc_status(study) == status


def test_args_narrow_the_view_to_runs_or_a_pattern(study):
    done = _view(study, "--build-only", "adding-*-lstm-norm1.0-*", "summary")
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder == study / ".view" / "wandb"
    listed = sorted(p.name.split("-", 2)[2] for p in folder.iterdir() if p.is_dir())
    runs = sorted({r.group for r in view.find_runs(study) if r.kind != "stage" and "-lstm-norm1.0-" in r.group})
    assert runs and listed == sorted([*runs, *(f"{r}.analysis" for r in runs if not r.startswith("paper-")),
                                      "summary"]), listed
    for d in folder.iterdir():  # each a leet run folder: its log and figures linked from the run, nothing copied
        if d.is_dir():
            log = d / f"run-{d.name.split('-', 2)[2]}.wandb"
            assert log.is_symlink() and log.resolve().is_file() and log.resolve().is_relative_to(study)
    state = view.json.loads((folder / ".wandb-leet.json").read_text())
    assert state["metrics_filter"]["query"] == view.READER_CHARTS
    assert state["selected_runs"] and all("analysis" not in s and "summary" not in s for s in state["selected_runs"])


def test_no_runs_no_match_or_no_terminal_is_one_line(study, tmp_path):
    done = _view(study)  # its stdin and stdout are pipes: leet has no terminal to draw in
    assert done.returncode == 1 and done.stderr.startswith("error: wandb leet is a terminal viewer and this is not a "
                                                           "terminal; in one, run `make view`"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = _view(study, "no-such-run*")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: no wandb run matches 'no-such-run*'; the study's runs: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    empty = tmp_path / "empty"
    (empty / "pipelines").mkdir(parents=True)
    shutil.copy2(ROOT / "pipelines" / "view.py", empty / "pipelines" / "view.py")
    done = subprocess.run([sys.executable, "pipelines/view.py"], cwd=empty, text=True, capture_output=True,
                          env=_env(PYTHONPATH=str(ROOT / "src")), timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: no wandb runs to view under ") and "`make repro`" in done.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["pipelines"]


def test_each_start_of_a_resumed_run_is_listed_by_the_run_folders_name(tmp_path):
    """A run resumed twice has three offline wandb runs in its folder: leet lists them as <run>, <run>.2, <run>.3
    (oldest first); an analysis as <run>.analysis, a result stage by its name; wandb's `latest-run` link is no run."""
    def wandb_run(folder: Path, stamp: str, run_id: str) -> None:
        d = folder / f"offline-run-{stamp}-{run_id}"
        d.mkdir(parents=True)
        (d / f"run-{run_id}.wandb").write_bytes(b"")

    run = tmp_path / "runs" / "adding-T10-rnn-none-s0"
    for stamp, run_id in (("20260101_120000", "b"), ("20260101_110000", "a"), ("20260101_130000", "c")):
        wandb_run(run / "wandb", stamp, run_id)
    (run / "wandb" / "latest-run").symlink_to(run / "wandb" / "offline-run-20260101_130000-c")
    wandb_run(run / "analysis" / "wandb", "20260101_140000", "d")
    wandb_run(tmp_path / "results" / "summary" / "wandb", "20260101_150000", "e")
    listed = {r.name: (r.kind, r.source.name) for r in view.find_runs(tmp_path)}
    assert listed == {"adding-T10-rnn-none-s0": ("train", "offline-run-20260101_110000-a"),
                      "adding-T10-rnn-none-s0.2": ("train", "offline-run-20260101_120000-b"),
                      "adding-T10-rnn-none-s0.3": ("train", "offline-run-20260101_130000-c"),
                      "adding-T10-rnn-none-s0.analysis": ("analysis", "offline-run-20260101_140000-d"),
                      "summary": ("stage", "offline-run-20260101_150000-e")}
