"""Reproduce the study: `python pipelines/repro.py [--jobs N] [--threads K] [stage ...]` (what `make repro` runs).

--jobs 1 is a plain `dvc repro`; more run the independent stages side by side (gradlab.launch.parallel), each stage
with K
intra-op threads. Defaults: one job per core (on a GPU: as many as its memory holds) and cores // jobs threads.
--queue starts DVC's experiment queue instead (`dvc queue start -j N`, `make queue`), its workers with K threads.
--srun OPTIONS (`make repro SRUN="-p debug"`) runs the train and analyze stages as Slurm job steps, JOBS at a time,
from a machine of the cluster (gradlab.launch.parallel.stage_command); srun checks the request first (--test-only).
A study that ran and succeeded leaves results/repro.json: its wall time (and, with --started, the time since `make`
started, set-up included), jobs, threads, profile and machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gradlab.launch import parallel


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

    from gradlab.launch.cli import load
    from gradlab.launch.machine import training_memory_bytes

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
    parser.add_argument("--srun", default=None, metavar="OPTIONS",
                        help="run the train and analyze stages as Slurm job steps: `srun OPTIONS --cpus-per-task="
                             "THREADS dvc repro --single-item <stage>` (e.g. '-p debug'; '' for srun's defaults)")
    parser.add_argument("--started", type=float, default=None,
                        help="when the command that runs this began (unix time; `make repro` passes its own)")
    parser.add_argument("targets", nargs="*", help="stages or dvc.yaml paths (default: the whole pipeline)")
    args = parser.parse_args(argv)
    began = time.time()
    cores = parallel.cpu_cores()
    jobs = args.jobs or gpu_jobs(cores) or parallel.default_jobs(cores)
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if args.queue:  # the workers inherit this environment, and each experiment's stages theirs
        threads = args.threads or parallel.default_threads(cores, jobs)
        print(f"dvc queue start -j {jobs}, {threads} threads per experiment ({cores} cores)")
        return subprocess.call([dvc, "queue", "start", "-j", str(jobs)], env=parallel.thread_env(threads))
    srun = None if args.srun is None else shlex.split(args.srun)
    if srun is not None and not shutil.which("srun"):
        print(f"error: --srun {args.srun!r}: there is no srun here (run from a machine of the Slurm cluster)",
              file=sys.stderr)
        return 2
    if srun is not None:  # the request checked by Slurm before any stage starts: one line naming what is wrong
        test = subprocess.run(["srun", "--test-only", "--ntasks=1", f"--cpus-per-task={args.threads or 1}", *srun,
                               "true"], capture_output=True, text=True)
        if test.returncode != 0:
            print(f"error: --srun {args.srun!r}: {' '.join(test.stderr.split())}", file=sys.stderr)
            return 2
    if jobs == 1 and srun is None:  # today's `dvc repro`; threads only where asked for
        stages = len(parallel.plan(Path.cwd(), args.targets).order)
        rc = subprocess.call([dvc, "repro", *args.targets], env=parallel.thread_env(args.threads))
        threads = args.threads
    else:
        # on a cluster the runs are Slurm's to place: 1 thread each unless asked (one core per run is fastest here)
        threads = args.threads or (1 if srun is not None else parallel.default_threads(cores, jobs))
        plan = parallel.plan(Path.cwd(), args.targets)
        stages = len(plan.order)
        if not stages:
            print("Data and pipelines are up to date.")
            return 0
        where = f"train/analyze through srun {args.srun}".rstrip() if srun is not None else f"{cores} cores"
        print(f"{stages} stages to run, {jobs} at a time, {threads} threads each ({where})", flush=True)
        rc = parallel.run_plan(plan, jobs, threads, Path.cwd(), dvc=dvc, srun=srun)
    if rc == 0 and stages:
        record(Path("results/repro.json"), began, args.started, stages, jobs, threads, cores, args.targets,
               args.srun)
    return rc


def record(path: Path, began: float, started: float | None, stages: int, jobs: int, threads: int | None,
           cores: int, targets: list[str], srun: str | None = None) -> None:
    """results/repro.json: how long this reproduction took, and with what (written whole or not at all)."""
    import json

    import yaml

    from gradlab.core.runfolder import atomic_write_bytes
    from gradlab.pages.recording import machine

    now = time.time()
    profile = yaml.safe_load(Path("params.yaml").read_text()).get("profile")
    data = {"profile": profile, "targets": targets, "stages": stages, "jobs": jobs,
            "threads": threads or "torch default", "cores": cores, "srun": srun, "wall_s": round(now - began, 1),
            "wall_s_since_make": None if started is None else round(now - started, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "machine": machine()}
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    print(f"{stages} stages in {data['wall_s']:.0f} s"
          + (f" ({data['wall_s_since_make']:.0f} s since make started)" if started is not None else "")
          + f"; recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
