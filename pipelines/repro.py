"""Reproduce the study: `python pipelines/repro.py [--jobs N] [--threads K] [stage ...]` (what `make repro` runs).

--jobs 1 is a plain `dvc repro`; more run the independent stages side by side (gradlab.parallel), each stage with K
intra-op threads. Defaults: one job per core (on a GPU: as many as its memory holds) and cores // jobs threads.
--queue starts DVC's experiment queue instead (`dvc queue start -j N`, `make queue`), its workers with K threads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gradlab import parallel


def count(value: str) -> int | None:
    """`auto` (None) or a positive integer; anything else is refused with the choices."""
    if value == "auto" or value == "":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r}: expected a positive integer or 'auto'")


def gpu_jobs(cores: int) -> int | None:
    """Default jobs on a CUDA GPU (None without one): its memory over the largest run of params.yaml's grid."""
    if not Path("/proc/driver/nvidia").exists() and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return None
    import torch
    import yaml

    from gradlab.cli import load
    from gradlab.config import training_memory_bytes

    if not torch.cuda.is_available():
        return None
    p = yaml.safe_load(Path("params.yaml").read_text())
    s, t = p["study"], p["train"]
    model = max(s["models"], key=lambda m: m["hidden_size"])
    cfg = load("config", [f"task={s['tasks'][0]}", f"task.seq_len={max(s['seq_lens'])}", f"model={model['name']}",
                          f"model.hidden_size={model['hidden_size']}", f"trainer.batch_size={t['batch_size']}"])
    jobs = parallel.default_jobs(cores, torch.cuda.get_device_properties(0).total_memory, training_memory_bytes(cfg))
    print(f"GPU: {torch.cuda.get_device_name(0)}, {jobs} runs side by side (memory estimate of the largest run "
          f"{training_memory_bytes(cfg) / 2**20:.0f} MiB + {parallel.GPU_CONTEXT_BYTES >> 20} MiB context)")
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=count, default=None, help="stages at once (default: auto)")
    parser.add_argument("--threads", type=count, default=None, help="intra-op threads per stage (default: auto)")
    parser.add_argument("--queue", action="store_true", help="run `dvc queue start -j N` (queued experiments)")
    parser.add_argument("targets", nargs="*", help="stages or dvc.yaml paths (default: the whole pipeline)")
    args = parser.parse_args(argv)
    cores = parallel.cpu_cores()
    jobs = args.jobs or gpu_jobs(cores) or parallel.default_jobs(cores)
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if args.queue:  # the workers inherit this environment, and each experiment's stages theirs
        threads = args.threads or parallel.default_threads(cores, jobs)
        print(f"dvc queue start -j {jobs}, {threads} threads per experiment ({cores} cores)")
        return subprocess.call([dvc, "queue", "start", "-j", str(jobs)], env=parallel.thread_env(threads))
    if jobs == 1:  # today's `dvc repro`; threads only where asked for
        return subprocess.call([dvc, "repro", *args.targets], env=parallel.thread_env(args.threads))
    threads = args.threads or parallel.default_threads(cores, jobs)
    plan = parallel.plan(Path.cwd(), args.targets)
    if not plan.order:
        print("Data and pipelines are up to date.")
        return 0
    print(f"{len(plan.order)} stages to run, {jobs} at a time, {threads} threads each ({cores} cores)", flush=True)
    return parallel.run_plan(plan, jobs, threads, Path.cwd(), dvc=dvc)


if __name__ == "__main__":
    sys.exit(main())
