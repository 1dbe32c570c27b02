"""The Slurm path against a real single-node Slurm cluster (`make cluster-up`; CI starts one): sweeps through Hydra's
submitit launcher, a requeued job and a timed-out one resuming at the step they stopped, DDP with two tasks, the
launcher's request refused before submission, and the study's runs as Slurm job steps.

Marked `cluster` (`make test-cluster`, which starts the cluster): a few minutes; a requeued job is let start at once
(`_start_now`) instead of after Slurm's 2 min hold, and the srun study is compared with the session's smoke study
(kept from `make test` where GRADLAB_SMOKE_STUDY names a folder, as CI does). Outside CI they skip where no cluster
answers; in CI they fail instead.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, read_json, run_entry

pytestmark = pytest.mark.cluster
PARTITION = "debug"  # scripts/cluster.sh's


def _sinfo() -> str | None:
    """Why there is no cluster to test against, or None."""
    if not shutil.which("sinfo"):
        return "no Slurm here (make cluster-up)"
    out = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%t"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return f"no Slurm controller answers for partition {PARTITION} (make cluster-up)"
    return None


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if why := _sinfo():
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the cluster tests: {why}")
        pytest.skip(why)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.pop("WANDB_MODE", None)  # the default logger: wandb offline, as a user has it
    return env | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}


def sweep_command(tmp: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "pipelines" / "train.py"), "-m", "hydra/launcher=slurm",
            f"hydra.launcher.partition={PARTITION}", "profile=smoke", f"runs_dir={tmp / 'runs'}",
            f"data_dir={tmp / 'data'}", f"hydra.sweep.dir={tmp / 'multirun'}", *overrides]


def sweep(tmp: Path, *overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_command(tmp, *overrides), cwd=tmp, env=_env(), text=True, capture_output=True,
                          timeout=timeout)


def job_log(tmp: Path) -> str:
    """Every line the sweep's jobs printed (all their incarnations: Slurm appends)."""
    return "".join(p.read_text() for p in sorted((tmp / "multirun" / ".submitit").glob("*/*_log.*")))


def train_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]


def jobs_in_queue() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True).stdout.split())


# --- stopped jobs: requeued by hand (SIGTERM) and at the time limit (USR2); both started at once, as the ~2 min
# Slurm waits before a requeued job starts again is most of their time

STEPS = {"requeued": 2500, "timed_out": 12000}
EVERY = 1000  # validation (and so checkpoint) interval: a stop off it is a stop at the step, not a validation's


def _long(name: str) -> tuple[str, ...]:
    return ("model=lstm", f"trainer.max_steps={STEPS[name]}", f"trainer.val_every_n_steps={EVERY}",
            f"probe.every_n_steps={EVERY}")


def _wait_for(tmp: Path, proc: subprocess.Popen, pattern: str, within: float = 300) -> str:
    """Wait until the sweep's job log has a line matching `pattern`; the job's id."""
    deadline = time.time() + within
    while not re.search(pattern, job_log(tmp), re.M):
        assert time.time() < deadline and proc.poll() is None, job_log(tmp)[-3000:]
        time.sleep(0.5)
    return next(p.name.split("_")[0] for p in (tmp / "multirun" / ".submitit").iterdir() if p.name[0].isdigit())


def _start_now(job: str, within: float = 120) -> None:
    """Slurm holds a requeued job before it may start again (its begin time: now + AuthInfo's cred_expire, 120 s
    by default): once the job is pending again, let it start at once. What is tested is the resume, not the wait."""
    deadline = time.time() + within
    while subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                         text=True).stdout.strip() != "PENDING":
        assert time.time() < deadline, f"job {job} was not pending again within {within} s"
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """Two one-job sweeps, running side by side (Slurm holds a requeued job ~2 min before it starts again):
    `requeued` is requeued with `scontrol requeue` once it is past step 600 (its logger: wandb offline, the
    default); `timed_out` reaches its time limit: once it is past step 600 its limit is cut to 1 minute, so that
    Slurm sends the USR2 submitit asked for (50 s before the limit) while it trains, wherever that is on a given
    machine; once submitit has requeued it, the limit goes back to 10 minutes."""
    started = {}
    for name, extra in (("requeued", ()), ("timed_out", ("hydra.launcher.timeout_min=10",
                                                          "hydra.launcher.signal_delay_s=50"))):
        tmp = tmp_path_factory.mktemp(name)
        proc = subprocess.Popen(sweep_command(tmp, *_long(name), *extra), cwd=tmp, env=_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started[name] = (tmp, proc)
    past_600 = r"^step ([6-9]\d\d|\d{4,})/"
    requeued = _wait_for(*started["requeued"], past_600)
    subprocess.run(["scontrol", "requeue", requeued], check=True)
    job = _wait_for(*started["timed_out"], past_600)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=1"], check=True)
    _start_now(requeued)
    _wait_for(*started["timed_out"], r"Requeued job", within=120)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=10"], check=True)
    _start_now(job)
    done = {}
    for name, (tmp, proc) in started.items():
        out = proc.communicate(timeout=1200)[0]
        done[name] = (tmp, proc.returncode, out)
    return done


def _resumed_where_it_stopped(name: str, tmp: Path, rc: int, out: str) -> list[int]:
    """The sweep returned 0, the run finished, and every restart resumed at the step its predecessor stopped at;
    the stopped steps."""
    log = job_log(tmp)
    assert rc == 0, out[-3000:] + log[-3000:]
    run_dir = next((tmp / "runs").iterdir())
    stops = [int(s) for s in re.findall(r"interrupted at step (\d+);", log)]
    resumes = [int(s) for s in re.findall(r"^resuming \S+ from \S+last\.ckpt at step (\d+)$", log, re.M)]
    assert stops and resumes == stops, log[-4000:]
    assert all(s % EVERY for s in stops)  # at the step, not at a validation
    assert read_json(run_dir / "metrics.json")["steps"] == STEPS[name]
    assert train_steps(run_dir) == list(range(STEPS[name]))  # each step once, in order
    assert read_json(run_dir / "run_info.json")["resumed_from_step"] == stops[-1]
    return stops


def test_scontrol_requeue_with_offline_wandb_resumes_and_the_sweep_waits_for_it(stopped):
    """SIGTERM to the whole job (scontrol requeue; preemption and scancel send the same): last.ckpt at the current
    step, wandb's service (stopped by the same signal) left without failing the job, the sweep waits for the
    requeued job, which resumes at that step and finishes."""
    tmp, rc, out = stopped["requeued"]
    stops = _resumed_where_it_stopped("requeued", tmp, rc, out)
    assert len(stops) == 1 and stops[0] >= 600
    log = job_log(tmp)
    assert "received SIGTERM" in log and "wandb run was left as its files have it" in log
    run_dir = next((tmp / "runs").iterdir())
    assert len(read_json(run_dir / "run_info.json")["wandb_runs"]) == 2  # one offline run per incarnation


def test_time_limit_requeues_the_job_and_it_resumes_at_the_step_the_signal_stopped(stopped):
    """USR2 before the time limit (submitit's --signal): gradlab finishes the step and writes last.ckpt, then hands the
    signal to submitit, which requeues the job (counting timeouts); it resumes at that step, not at the last
    validation."""
    tmp, rc, out = stopped["timed_out"]
    stops = _resumed_where_it_stopped("timed_out", tmp, rc, out)
    log = job_log(tmp)
    assert log.count("received SIGUSR2") == len(stops)
    assert len(set(re.findall(r"Requeued job \d+ \((\d+) remaining timeouts\)", log))) == len(stops)  # by submitit
    print(f"time limit: stopped at steps {stops}")


# --- the rest


def test_sweep_of_two_jobs_completes_each_with_the_cpus_it_was_given(tmp_path):
    done = sweep(tmp_path, "model=rnn,lstm", "hydra.launcher.cpus_per_task=2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["adding-T100-lstm-none-s0", "adding-T100-rnn-none-s0"]
    for name in runs:
        assert read_json(tmp_path / "runs" / name / "metrics.json")["steps"] == 20
        info = read_json(tmp_path / "runs" / name / "run_info.json")
        assert info["threads"] == 2  # SLURM_CPUS_PER_TASK, not every core of the node


def test_ddp_with_two_tasks_on_one_node(tmp_path):
    done = sweep(tmp_path, "model=lstm", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_dir = tmp_path / "runs" / "adding-T100-lstm-none-s0"
    assert read_json(run_dir / "run_info.json")["processes"] == 2
    assert read_json(run_dir / "metrics.json")["steps"] == 20


@pytest.mark.parametrize(("overrides", "message"), [
    (("hydra.launcher.gpus_per_node=1",), "hydra.launcher.gpus_per_node=1 but partition 'debug' offers"),
    (("trainer.accelerator=gpu",), "hydra.launcher.gpus_per_node=1 but partition 'debug' offers"),
    (("hydra.launcher.gpus_per_node=1", "trainer.accelerator=cpu"),
     "hydra.launcher.gpus_per_node=1 with trainer.accelerator=cpu"),
    (("hydra.launcher.cpus_per_task=64",), "hydra.launcher.cpus_per_task=64 x tasks_per_node=1 = 64 CPUs but"),
    (("hydra.launcher.mem_gb=100000",), "hydra.launcher.mem_gb=100000 but partition 'debug' offers"),
    (("hydra.launcher.partition=nope",), "hydra.launcher.partition='nope' is not a partition of this cluster; "
                                         "choose one of: debug"),
])
def test_a_request_the_partition_cannot_meet_is_refused_in_one_line_before_submission(tmp_path, overrides, message):
    before = jobs_in_queue()
    # in this process: the refusal comes before Hydra launches anything (conftest.run_entry: its exit status and
    # stderr as the process would have them)
    done = run_entry("train.py", *sweep_command(tmp_path, "model=rnn,lstm", *overrides)[2:], cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "runs").exists()
    assert jobs_in_queue() <= before


def test_defaults_fit_a_cpu_only_partition():
    """No GPU asked for (trainer.accelerator=auto), the partition has none: the launcher asks for none."""
    from gradlab.launch.cli import sweep_launcher

    launcher = sweep_launcher("config", ["hydra/launcher=slurm", f"hydra.launcher.partition={PARTITION}"])
    assert launcher.gpus_per_node is None and launcher.cpus_per_task == 1


def test_study_with_its_runs_as_slurm_job_steps_equals_the_local_study(tmp_path, smoke_study):
    """`make repro PROFILE=smoke JOBS=2 SRUN="-p debug"`: the train and analyze stages run through srun (1 CPU each),
    DVC records every stage (status clean, a second repro runs nothing), and the summary is the local study's (the
    session's smoke study: the same runner, 2 jobs, 1 thread each, without srun)."""
    from conftest import copy_repository, dvc, repro

    repo = tmp_path / "slurm"
    repo.mkdir()
    copy_repository(repo)
    done = repro(repo, "--jobs", "2", "--threads", "1", "--srun", f"-p {PARTITION}")
    assert done.returncode == 0, done.stdout[-5000:]
    out = done.stdout
    assert "train/analyze through srun -p debug" in out
    infos = [read_json(p) for p in (repo / "runs").glob("*/run_info.json")]
    assert infos and all(i["threads"] == 1 for i in infos)
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}
    again = dvc(repo, "repro")
    assert "Running stage" not in again.stdout, again.stdout[-2000:]
    assert read_json(repo / "results/repro.json")["srun"] == f"-p {PARTITION}"
    local, slurm = (r / "results/summary/summary.csv" for r in (smoke_study, repo))
    assert slurm.read_bytes() == local.read_bytes()


def test_study_through_srun_refuses_a_request_slurm_cannot_meet(tmp_path):
    from conftest import copy_repository, repro

    copy_repository(tmp_path)
    done = repro(tmp_path, "--jobs", "2", "--srun", "-p nope")
    assert done.returncode == 2
    assert done.stdout.strip().splitlines()[-1].startswith("error: --srun '-p nope': ") and "partition" in done.stdout
    assert not (tmp_path / "dvc.lock").exists() and not (tmp_path / "runs").exists()
