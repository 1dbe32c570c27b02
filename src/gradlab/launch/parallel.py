"""`make repro JOBS=N`: the study's independent DVC stages, N at a time, each reproduced by DVC itself.

DVC runs the stages of one `dvc repro` one after another (treeverse/dvc#755). It does, however, release its repository
lock while a stage's command runs and take it again to record the result (dvc/stage/run.py: `unlocked_repo`), and
`--wait-for-lock` makes a second `dvc` wait for that lock instead of failing. So this module starts one
`dvc --wait-for-lock repro --single-item <stage>` per stage whose upstream stages are done, at most N at once: DVC
checks each stage, runs its command, hashes and caches its outputs and writes its entry of dvc.lock, as in a serial
`dvc repro`; only the order is ours. The order comes from DVC's own graph and status (`Repo.index.graph`,
`Repo.status`): a stage runs when DVC calls it changed or when a stage it depends on runs.

Threads: each stage process gets OMP_NUM_THREADS/MKL_NUM_THREADS = threads (torch sizes its intra-op pool from
them), by default cores // jobs, so that N runs share the cores instead of each starting a pool of every core
(two runs with torch's default threads on 2 cores took 2.7x-10x the serial time; with 1 thread each 0.48x)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


GPU_CONTEXT_BYTES = 1 << 30  # what one CUDA process holds beyond its tensors (context, cuDNN workspaces), generously


def cpu_cores() -> int:
    """The cores this process may use (its affinity mask: a Slurm allocation, taskset, a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_jobs(cores: int, gpu_bytes: int | None = None, run_bytes: int | None = None) -> int:
    """Concurrent stages: one per core on a CPU; on a GPU, as many as its memory holds (each run's estimate plus a CUDA
    context), at most one per core (each process needs a core to launch its kernels)."""
    if gpu_bytes is None or run_bytes is None:
        return max(1, cores)
    return max(1, min(cores, int(0.9 * gpu_bytes) // (run_bytes + GPU_CONTEXT_BYTES)))


def default_threads(cores: int, jobs: int) -> int:
    return max(1, cores // max(1, jobs))


def thread_env(threads: int | None, env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if env is None else env)
    if threads is not None:
        env |= {k: str(threads) for k in THREAD_VARS}
    return env


@dataclass
class Plan:
    """What to reproduce: the stages to run (DVC addressing, e.g. `train@adding-100-model0-clip0-0`) and, for each,
    the stages of that set it waits for."""

    needs: dict[str, set[str]]
    order: list[str] = field(default_factory=list)  # preference among ready stages (see `plan`)


def plan(repo_root: Path, targets: Sequence[str] = ()) -> Plan:
    """DVC's graph and status: the changed stages (of `targets`, or of the whole pipeline) and every stage
    downstream of one of them; each waits for those of its upstream stages that run."""
    import networkx as nx
    from dvc.repo import Repo

    # DVC names a stage relative to the working directory (`dvc.yaml:name` elsewhere): plan from the repository
    with contextlib.chdir(repo_root), Repo(".") as repo:
        graph = repo.index.graph  # an edge a -> b: stage a depends on an output of stage b
        stages = [s for s in graph if s.cmd]  # not the .dvc files of tracked data (those have no command)
        if targets:
            chosen = {s for t in targets for s in repo.stage.collect(t, with_deps=True)}
            stages = [s for s in stages if s in chosen]
        changed = set(repo.status(targets=list(targets), with_deps=True) if targets else repo.status())
        run = {s for s in stages if s.addressing in changed}
        run |= {a for s in run for a in nx.ancestors(graph, s) if a in stages}
        needs = {s.addressing: {d.addressing for d in nx.descendants(graph, s) if d in run} for s in run}
        dependents = {s.addressing: len(nx.ancestors(graph, s)) for s in run}
    # Among ready stages: most dependents first (generate before train before analyze), then the later matrix
    # items of dvc.yaml first: the larger T, so that the longest runs start early and do not end the study alone.
    position = {s.addressing: i for i, s in enumerate(stages)}
    order = sorted(needs, key=lambda a: (-dependents[a], -position[a]))
    return Plan(needs=needs, order=order)


def _pump(proc: subprocess.Popen, name: str, out) -> None:
    """The stage's output, a line at a time, each marked with its stage (interleaved lines stay readable)."""
    for line in proc.stdout:
        out.write(f"[{name}] {line}")
        out.flush()


SRUN_STAGES = ("train", "analyze", "paper")  # the stages `--srun` sends to Slurm: the runs; the rest is seconds of work


def stage_command(stage: str, dvc: str, srun: Sequence[str] | None, threads: int | None) -> list[str]:
    """The command that reproduces one stage: DVC's, and with `srun` (its options) a train or analyze stage's DVC runs
    as a one-task Slurm job step with `threads` CPUs: the runs fill a cluster, and DVC, on the shared file system,
    still checks, runs, caches and records each stage."""
    command = [dvc, "--wait-for-lock", "repro", "--single-item", stage]
    if srun is None or stage.split("@")[0] not in SRUN_STAGES:
        return command
    return ["srun", "--ntasks=1", f"--cpus-per-task={threads or 1}", f"--job-name={stage}", *srun, *command]


def run_plan(p: Plan, jobs: int, threads: int | None, repo_root: Path, dvc: str = "dvc", out=sys.stdout,
             srun: Sequence[str] | None = None) -> int:
    """Run the plan's stages, `jobs` at a time; 0 when every stage succeeded. After a failure no new stage starts,
    the running ones finish (and are recorded), and the exit code is the failed stage's. SIGINT/SIGTERM stop the
    running stages as a signal would stop `dvc repro` (each gets it; what they completed stays recorded). With
    `srun` (a list of srun options, possibly empty) the train and analyze stages run as Slurm job steps
    (stage_command)."""
    env = thread_env(threads)
    pending, running, done = list(p.order), {}, set()
    failed: list[tuple[str, int]] = []
    stopping = threading.Event()
    received: list[int] = []

    def forward(signum, _frame):
        stopping.set()
        received.append(signum)
        for proc, _ in running.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter()
    try:
        while pending or running:
            while not failed and not stopping.is_set() and len(running) < jobs:
                ready = next((a for a in pending if p.needs[a] <= done), None)
                if ready is None:
                    break
                pending.remove(ready)
                proc = subprocess.Popen(stage_command(ready, dvc, srun, threads), cwd=repo_root,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        process_group=0)  # its own group: a forwarded signal reaches its stage too
                pump = threading.Thread(target=_pump, args=(proc, ready, out), daemon=True)
                pump.start()
                running[ready] = (proc, pump)
            if not running:
                break  # a failure or a signal: nothing left to wait for
            time.sleep(0.2)
            for name, (proc, pump) in list(running.items()):
                if proc.poll() is not None:
                    pump.join()
                    del running[name]
                    if proc.returncode == 0:
                        done.add(name)
                    else:
                        failed.append((name, proc.returncode))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    took = time.perf_counter() - started
    print(f"parallel repro: {len(done)} of {len(p.order)} stages in {took:.0f}s ({jobs} jobs, "
          f"{threads or 'default'} threads each)", file=out)
    for name, code in failed:
        print(f"stage {name} failed (exit {code})", file=out)
    if pending or failed:
        print(f"{len(pending)} stages not started; `make repro` again resumes (recorded stages do not rerun)",
              file=out)
    if received:
        return 128 + received[0]
    return failed[0][1] if failed else 0
