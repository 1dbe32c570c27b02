"""No network, no hang: a 50-step run (default profile) with logger.mode=online while wandb's server is a closed
loopback port (and, where `unshare -n` works, with no network at all), against the same run with wandb disabled.
Whole commands, as a user runs them, interleaved."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP = "no network: 50-step run (default profile, adding T=100), whole command, median s"


def _run(cwd: Path, mode: str, name: str, prefix: list[str], env: dict) -> float:
    cmd = [*prefix, sys.executable, str(ROOT / "pipelines" / "train.py"), "trainer.max_steps=50",
           f"logger.mode={mode}", f"run_name={name}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def run(repeats: int = 5) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_SERVICE")}
    variants = {"wandb disabled": ("disabled", [], env),
                "online, WANDB_BASE_URL=http://127.0.0.1:9 (closed)": ("online", [],
                                                                        {**env, "WANDB_BASE_URL": "http://127.0.0.1:9"})}
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        variants["online, no network at all (unshare -n)"] = ("online", ["unshare", "-n"], env)
    times: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as d:
        cwd = Path(d)
        subprocess.run([sys.executable, str(ROOT / "pipelines" / "generate.py")], cwd=cwd, check=True,
                       capture_output=True)
        for r in range(repeats):
            for i, (name, (mode, prefix, e)) in enumerate(variants.items()):
                times[name].append(_run(cwd, mode, f"v{i}-r{r}", prefix, e))
    base = statistics.median(times["wandb disabled"])
    return [{"group": GROUP, "name": name, "median_s": round(statistics.median(v), 2),
             "runs_s": [round(x, 2) for x in v], "vs_disabled": round(statistics.median(v) / base, 3)}
            for name, v in times.items()]
