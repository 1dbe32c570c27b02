"""Shared fixtures: compose the real Hydra config and run the real pipeline in a temporary folder; the entry points
in-process (`run_entry`) or as a user runs them (`run_cli`); the smoke study, made once per session (`smoke_study`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

os.environ.setdefault("WANDB_MODE", "offline")  # never the network from tests
# wandb's list of installed packages (requirements.txt in every run's files): ~0.15 s of metadata parsing a run, left
# out of the suite's runs; a user's runs keep it
os.environ.setdefault("WANDB__SAVE_REQUIREMENTS", "false")
# One intra-op thread for the tests and every process they start (before torch is imported): the smoke study builds
# beside them on the same cores (2 stages of 1 thread each), and OpenMP pools of every core on top of that spin
# against each other. A test that is about threads sets its own (tests/test_subnormals.py).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# The code under test is this checkout's src/, in this process (pyproject's pythonpath) and in every process a test
# starts: an editable install made from another checkout would otherwise be what the children import.
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])


def compose_cfg(overrides: list[str], tmp: Path):
    """The config `python pipelines/train.py <overrides>` would run, with data and runs under tmp."""
    from gradlab.launch.cli import load

    return load("config", [f"data_dir={tmp / 'data'}", f"runs_dir={tmp / 'runs'}", *overrides])


@pytest.fixture
def train(tmp_path):
    """Run one training in-process; returns (metrics, run_dir)."""
    from gradlab.stages.train import run_training

    def _train(*overrides: str, tmp: Path = tmp_path):
        cfg = compose_cfg(list(overrides), tmp)
        metrics = run_training(cfg)
        return metrics, tmp / "runs" / cfg.run_name

    return _train


def run_cli(script: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a pipeline entry point as a user would, from `cwd`."""
    # WANDB_SERVICE: wandb runs made in this (pytest) process leave their service's address in os.environ; a
    # child that inherits it logs through the parent's service, and its files may land after it exits.
    base = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / script), *args], cwd=cwd, text=True,
                          capture_output=True, env={**base, **(env or {})}, timeout=600)


def _entry_point(script: str):
    """pipelines/<script> as a module (loaded once per session), for calling its main() in this process."""
    name = f"pipelines_{Path(script).stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "pipelines" / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def run_entry(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python pipelines/<script> <args>` run in this process, from `cwd`: its exit code, stdout and stderr as the
    process would have them (a `sys.exit("error: …")` prints its message on stderr and exits 1). Without the ~4 s of
    imports a fresh interpreter pays; where the fresh interpreter, a signal or the real exit status is the point,
    tests use run_cli."""
    main = _entry_point(script).main
    out, err = io.StringIO(), io.StringIO()
    argv, here, raising = sys.argv, Path.cwd(), logging.raiseExceptions
    code: int | str | None = 0
    # What else a process prints on its stderr, caught too: file descriptor 2 (C code, children, os.write), the root
    # logger (Python's last-resort handler prints a WARNING and above where nothing is configured) and warnings.
    fd_err, saved_fd = tempfile.TemporaryFile(), os.dup(2)
    root_log = logging.StreamHandler(err)
    root_log.setLevel(logging.WARNING)
    try:
        os.chdir(cwd)
        sys.argv = [str(ROOT / "pipelines" / script), *args]
        sys.stderr.flush()
        os.dup2(fd_err.fileno(), 2)
        logging.getLogger().addHandler(root_log)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as warned:
            try:
                code = main()  # Hydra's and argparse's entry points both read sys.argv; some return their status
            except SystemExit as stop:
                code = stop.code
        for w in warned:
            err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
    finally:
        logging.getLogger().removeHandler(root_log)
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        fd_err.seek(0)
        err.write(fd_err.read().decode(errors="replace"))
        fd_err.close()
        sys.argv = argv
        os.chdir(here)
        logging.raiseExceptions = raising  # an entry point ending on a full disk turns it off for its process
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().cfg = None  # a Hydra run leaves its config set: later in-process runs would see it
        GlobalHydra.instance().clear()
        if "wandb" in sys.modules:  # wandb's service keeps the folder it started in; relative run dirs follow it
            sys.modules["wandb"].teardown()
    if isinstance(code, str):
        err.write(code + "\n")
        code = 1
    return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------ the smoke study, once per session

GENERATED = ("runs/", "data/", "results/", "reports/", "multirun/", "outputs/", ".venv/", "dvc.lock")


def study_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "WANDB_MODE": "offline"}


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=study_env(), text=True, capture_output=True,
                          timeout=900)
    if check:
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done


def repro(cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """`make repro`'s runner (pipelines/repro.py) in a copy of the repository."""
    return subprocess.run([sys.executable, "pipelines/repro.py", *args], cwd=cwd, env=study_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900, **kw)


def copy_repository(repo: Path, profile: str = "smoke") -> None:
    """The repository's files as a clone has them, in a git repository of their own, on `profile`."""
    for f in _repository_files():
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, repo / f)
    git = ["git", "-c", "user.name=gradlab-test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "pipelines/switch_profile.py", profile], cwd=repo, env=study_env(), check=True,
                   capture_output=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=repo, check=True)


def pytest_collection_modifyitems(config, items):
    """The smoke study's readers run last, so that it builds in the background while the other tests run
    (`_smoke_study_build`); the order within each group is kept."""
    readers = [item for item in items if "smoke_study" in getattr(item, "fixturenames", ())]
    if readers:
        first = set(map(id, readers))
        items[:] = [item for item in items if id(item) not in first] + readers


@pytest.fixture(scope="session", autouse=True)
def _smoke_study_build(request, tmp_path_factory):
    """Starts `make repro`'s runner on the smoke study as the session starts, where a test of the session reads it
    (and no kept study fits): it runs beside the tests that do not need it, and `smoke_study` waits for it. Stopped
    with the session if it is still running."""
    build: dict = {}
    if any("smoke_study" in getattr(item, "fixturenames", ()) for item in request.session.items):
        build.update(_start_smoke_study(tmp_path_factory))
    yield build
    proc = build.get("proc")
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _start_smoke_study(tmp_path_factory) -> dict:
    keep = os.environ.get("GRADLAB_SMOKE_STUDY")
    if keep:
        repo, stamp_file = Path(keep) / "study", Path(keep) / "stamp"
        stamp = _repository_stamp()
        if stamp_file.is_file() and stamp_file.read_text() == stamp and (repo / "dvc.lock").is_file():
            return {"repo": repo, "kept": True}
        shutil.rmtree(repo, ignore_errors=True)
        stamp_file.unlink(missing_ok=True)
        repo.mkdir(parents=True)
    else:
        repo, stamp_file, stamp = tmp_path_factory.mktemp("study"), None, None
    copy_repository(repo)
    log = (repo.parent / f"{repo.name}.repro.log").open("w")
    # niced: the tests that run meanwhile keep their core, the study takes what they leave (its runs' numbers do not
    # depend on it: each stage has its 1 thread)
    proc = subprocess.Popen(["nice", "-n", "10", sys.executable, "pipelines/repro.py", "--jobs", "2", "--threads", "1"],
                            cwd=repo, env=study_env(), text=True, stdout=log, stderr=subprocess.STDOUT)
    return {"repo": repo, "proc": proc, "log": log, "started": time.perf_counter(), "stamp": (stamp_file, stamp)}


@pytest.fixture(scope="session")
def smoke_study(_smoke_study_build) -> Path:
    """A fresh copy of the repository's files (as a clone would have them) with the smoke study reproduced by
    `make repro`'s runner (2 jobs, 1 thread each: the same study as the cluster test's srun one): runs/, results/
    (summary, geometry, cliff), reports/index.html, dvc.lock. One per test session, shared by every file that reads
    it (tests/test_study.py, tests/test_report.py, ...); a test that changes it restores what it changed, or works
    on a copy (`copy_study`). Started as the session starts (`_smoke_study_build`); its readers run last.

    GRADLAB_SMOKE_STUDY=<folder> keeps it there for the next session (CI: `make test` makes it, `make test-cluster`
    compares the srun study with it): reused only while the repository's files are byte for byte those it was made
    from, and the Python that made it is this one."""
    build = _smoke_study_build
    repo = build["repo"]
    if build.get("kept"):
        print(f"smoke study: the one in {repo}, made from these files")
        return repo
    proc = build["proc"]
    proc.wait(timeout=900)
    build["log"].close()
    output = Path(build["log"].name).read_text()
    assert proc.returncode == 0, output[-5000:]
    print(f"smoke study: make repro's runner, 2 jobs, ready {time.perf_counter() - build['started']:.0f}s after "
          f"the session started it")
    stamp_file, stamp = build["stamp"]
    if stamp_file is not None:
        stamp_file.write_text(stamp)
    return repo


def _repository_files() -> list[str]:
    """The files a clone has (tracked, and new ones not ignored), less what the study generates."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, text=True,
                           capture_output=True, check=True).stdout.split()
    return [f for f in files if not f.startswith(GENERATED) and (ROOT / f).is_file()]


def _repository_stamp() -> str:
    import hashlib

    digest = hashlib.sha256(sys.executable.encode())
    for f in _repository_files():
        digest.update(f.encode() + b"\0" + (ROOT / f).read_bytes() + b"\0")
    return digest.hexdigest()


def copy_study(study: Path, to: Path) -> Path:
    """A copy of a reproduced study (its git repository, DVC cache and outputs) for a test that changes it."""
    shutil.copytree(study, to, symlinks=True)
    return to


@pytest.fixture(autouse=True)
def no_wandb_run_left_open():
    """A test that leaves a wandb run open in this process fails: the next wandb.init would reuse that run, and the
    next run_entry's wandb.teardown would leave every later wandb run of the session failing (AlreadyJoinedError)."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        name = wandb.run.name
        wandb.run.finish()
        pytest.fail(f"the test left wandb run {name!r} open (finish it, or set WANDB_MODE=disabled)")
