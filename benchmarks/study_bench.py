"""Study throughput: runs per hour of a fixed small grid through `make repro`'s runner, by jobs and threads.

The grid: adding T=50, rnn and lstm (H=64), clip none and norm 1.0, seeds 0 and 1, 400 steps: 8 train and 8 analyze
stages. Its data is generated once; each variant then reproduces the train and analyze stages in its own copy of
that repository (a copy of the data and the DVC cache), the copies timed one after another on the same machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ("runs/", "data/", "results/", "reports/", "multirun/", "outputs/", ".venv/", "dvc.lock", "benchmarks/")
GRID = {"tasks": ["adding"], "seq_lens": [50], "models": [{"name": "rnn", "hidden_size": 64},
                                                         {"name": "lstm", "hidden_size": 64}],
        "seeds": [0, 1]}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", *("OMP_NUM_THREADS", "MKL_NUM_THREADS"))}
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", "WANDB_MODE": "offline"}


def _base(where: Path) -> Path:
    """The repository's files with the grid in params.yaml (cpu profile otherwise) and its data generated."""
    repo = where / "base"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, text=True,
                           capture_output=True, check=True).stdout.split()
    for f in files:
        if not f.startswith(GENERATED) and (ROOT / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, repo / f)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "pipelines/switch_profile.py", "cpu"], cwd=repo, env=_env(), check=True,
                   capture_output=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["study"] |= GRID
    params["train"]["max_steps"] = 400
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "repro", "generate"], cwd=repo, env=_env(), check=True, capture_output=True)
    return repo


def _timed(base: Path, where: Path, jobs: int, threads: int) -> float:
    repo = where / f"j{jobs}-t{threads}"
    shutil.copytree(base, repo, symlinks=True)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "pipelines/repro.py", "--jobs", str(jobs), "--threads", str(threads),
                           "analyze"], cwd=repo, env=_env(), text=True, capture_output=True)
    took = time.perf_counter() - t0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    shutil.rmtree(repo)
    return took


def run() -> list[dict]:
    from gradlab.launch.parallel import cpu_cores

    cores = cpu_cores()
    n_runs = len(GRID["models"]) * len(GRID["seeds"]) * 2
    variants = [(1, cores), (1, 1), (cores, 1), (cores, cores)]
    group = (f"study throughput: {n_runs} runs (adding T=50, rnn+lstm H=64, 2 clips x 2 seeds, 400 steps) + their "
             f"analyze stages through `make repro`'s runner, {cores} cores")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        base = _base(Path(d))
        seconds = {v: _timed(base, Path(d), *v) for v in variants}
    serial = seconds[(1, cores)]
    for (jobs, threads), s in seconds.items():
        name = f"JOBS={jobs} THREADS={threads}" + (" (a plain dvc repro)" if jobs == 1 else "")
        rows.append({"group": group, "name": name, "seconds": round(s, 1), "runs_per_hour": round(3600 * n_runs / s),
                     "time_vs_jobs1_all_threads": round(s / serial, 3)})
    return rows
