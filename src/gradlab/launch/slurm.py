"""The Slurm side of gradlab: what a partition offers, a launcher request checked against it before anything is
submitted, and the CPUs a job was given.

`sinfo` answers for the partitions of the cluster this machine submits to. Where it does not answer (no Slurm here,
no controller) nothing is checked: sbatch would fail on its own, with Slurm's message."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gradlab.core.errors import ConfigError


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    cpus: int  # the most CPUs one of its nodes has
    mem_mb: int  # the most memory one of its nodes has
    gpus: int  # the most GPUs (gres gpu) one of its nodes has
    max_minutes: int | None  # its time limit; None: none


def _minutes(limit: str) -> int | None:
    """sinfo's %l ([days-]hours:minutes:seconds, or infinite) in minutes."""
    if limit in ("infinite", "UNLIMITED", "n/a"):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def _gpus(gres: str) -> int:
    """The GPU count of a gres string: `gpu:2`, `gpu:a100:4(S:0-1)`, `(null)`."""
    total = 0
    for item in gres.split(","):
        fields = item.split("(")[0].split(":")
        if fields[0] == "gpu":
            total += int(fields[-1]) if fields[-1].isdigit() else 1
    return total


def partitions(timeout: float = 10.0) -> dict[str, Partition] | None:
    """The cluster's partitions as sinfo reports them (one line per node group); None when sinfo does not answer."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None
    try:
        out = subprocess.run([sinfo, "-h", "-o", "%P|%c|%m|%G|%l"], capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    found: dict[str, Partition] = {}
    for line in out.stdout.splitlines():
        name, cpus, mem, gres, limit = line.strip().split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        p = Partition(name, default, int(cpus.rstrip("+")), int(mem.rstrip("+")), _gpus(gres), _minutes(limit))
        if name in found:  # several node groups: what its largest node offers
            q = found[name]
            p = Partition(name, default or q.default, max(p.cpus, q.cpus), max(p.mem_mb, q.mem_mb),
                          max(p.gpus, q.gpus), p.max_minutes)
        found[name] = p
    return found


def chosen(parts: dict[str, Partition], name: str | None) -> Partition | None:
    """The partition a job goes to: the one named, else the cluster's default."""
    if name:
        return parts.get(name)
    return next((p for p in parts.values() if p.default), None)


def gpus_per_node(accelerator: str, devices: int, partition: str | None) -> int | None:
    """The launcher's default GPU request (the resolver `gradlab_slurm_gpus`): one per process when the run asks for a
    GPU (trainer.accelerator=gpu/cuda), none for trainer.accelerator=cpu, and for `auto` one per process only where
    the partition has GPUs (a CPU-only partition gets none; when sinfo does not answer, one per process)."""
    if accelerator in ("gpu", "cuda"):
        return devices
    if accelerator != "auto":
        return None
    parts = partitions()
    if parts is None:
        return devices
    p = chosen(parts, partition)
    return devices if p is None or p.gpus else None


def check_request(launcher: Any, accelerator: str) -> None:
    """The launcher's request (hydra.launcher of hydra/launcher=slurm) against the partition it goes to; one line
    naming the value and what the partition offers, before anything is submitted. Nothing is checked when sinfo
    does not answer."""
    parts = partitions()
    if parts is None:
        return
    name = launcher.get("partition")
    p = chosen(parts, name)
    if p is None:
        choices = ", ".join(sorted(parts)) or "none"
        if name:
            raise ConfigError(f"hydra.launcher.partition={name!r} is not a partition of this cluster; "
                              f"choose one of: {choices}")
        raise ConfigError(f"this cluster has no default partition: set hydra.launcher.partition= one of: {choices}")
    offers = (f"partition {p.name!r} offers {p.cpus} CPUs, {p.mem_mb // 1024} GB and {p.gpus or 'no'} GPUs per "
              f"node")
    gpus = launcher.get("gpus_per_node") or 0
    if gpus and accelerator == "cpu":
        raise ConfigError(f"hydra.launcher.gpus_per_node={gpus} with trainer.accelerator=cpu: the run would not use "
                          f"them; set hydra.launcher.gpus_per_node=null")
    if gpus > p.gpus:
        hint = "; on a CPU-only partition: hydra.launcher.gpus_per_node=null" if not p.gpus else ""
        raise ConfigError(f"hydra.launcher.gpus_per_node={gpus} but {offers}{hint}")
    tasks = launcher.get("tasks_per_node") or 1
    cpus = (launcher.get("cpus_per_task") or 1) * tasks
    if cpus > p.cpus:
        raise ConfigError(f"hydra.launcher.cpus_per_task={launcher.get('cpus_per_task')} x tasks_per_node={tasks} "
                          f"= {cpus} CPUs but {offers}: the job would wait forever")
    mem_gb = launcher.get("mem_gb")
    if mem_gb and mem_gb * 1024 > p.mem_mb:
        raise ConfigError(f"hydra.launcher.mem_gb={mem_gb} but {offers} ({p.mem_mb} MB): the job would wait forever")
    minutes = launcher.get("timeout_min")
    if minutes and p.max_minutes is not None and minutes > p.max_minutes:
        raise ConfigError(f"hydra.launcher.timeout_min={minutes} but partition {p.name!r} allows {p.max_minutes} min")


def allocated_cpus() -> int | None:
    """The CPUs Slurm gave this task (SLURM_CPUS_PER_TASK), or None outside a Slurm allocation that names them."""
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def use_allocated_cpus() -> int | None:
    """In a Slurm job, torch's intra-op threads = the CPUs Slurm gave the task, unless OMP_NUM_THREADS says
    otherwise (a node has more cores than the job may use: torch's default of every core would oversubscribe them).
    Returns the thread count set, or None."""
    cpus = allocated_cpus()
    if cpus is None or os.environ.get("OMP_NUM_THREADS"):
        return None
    import torch

    torch.set_num_threads(cpus)
    return cpus


_ELSEWHERE: list[str] = []  # while a sweep is checked for a cluster: the machine it runs on is not this one


@contextlib.contextmanager
def machine_elsewhere(where: str) -> Iterator[None]:
    """Within: check_machine checks nothing (the runs go to `where`; each job checks its own machine as it starts)."""
    _ELSEWHERE.append(where)
    try:
        yield
    finally:
        _ELSEWHERE.pop()
