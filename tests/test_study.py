"""The whole study with DVC, on the smoke profile, in a copy of the repository: the DAG end to end (`make repro`'s
parallel runner, 2 jobs), the summary, the report in a real headless Chromium, a clean `dvc status` and a no-op
second `dvc repro`, what a one-model change reruns, and (slow) a parallel study killed midway and rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BIN, copy_repository, copy_study, dvc, repro, study_env

from gradlab import cells
from gradlab.report.browser import chromium, render

_env = study_env


@pytest.fixture
def study(smoke_study) -> Path:
    """The session's smoke study (tests/conftest.py), reproduced by `make repro`'s runner with 2 jobs."""
    return smoke_study


def test_smoke_study_runs_end_to_end(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    assert params["profile"] == "smoke"
    summary = pd.read_csv(study / "results/summary/summary.csv")
    n = (len(params["study"]["tasks"]) * len(params["study"]["seq_lens"]) * len(params["study"]["models"])
         * len(params["study"]["clips"]) * len(params["study"]["seeds"]))
    assert len(summary) == n
    assert set(summary.status) <= {"completed", "diverged"}
    assert summary.bptt_horizon.notna().all() and summary.h_ratio_first_last.notna().all()
    md = (study / "results/summary/summary.md").read_text()
    assert md.startswith("# Study summary") and "At the longest adding T=" in md and "| rnn | norm1.0 |" in md
    metrics = json.loads((study / "results/summary/metrics.json").read_text())
    assert set(metrics["adding"]["T10"]) == {f"{m['name']}-{c['tag']}" for m in params["study"]["models"]
                                             for c in params["study"]["clips"]}
    assert metrics["adding"]["longest"] == {"T": 10, **metrics["adding"]["T10"]}  # columns shared across T
    from gradlab.tracking.wandb_log import logged_keys

    summary_run = next((study / "results/summary/wandb").glob("offline-run-*"))
    assert {"summary/table", "summary/adding/longest/T", "summary/adding/T10/lstm-norm1.0/solved_frac",
            "summary/adding/longest/rnn-norm1.0/h0_rel_training"} <= logged_keys(summary_run)
    learning = pd.read_csv(study / "results/summary/plots/learning/adding-T10-norm1.0.csv")
    assert list(learning.columns) == ["step", *cells.names()]  # every registered model: dvc.yaml's plots name them
    assert learning[[m["name"] for m in params["study"]["models"]]].notna().all().all()
    bptt = pd.read_csv(study / "results/summary/plots/bptt/adding-T10-norm1.0.csv")
    assert list(bptt.t) == list(range(10)) and (bptt.rnn.iloc[-1], bptt.lstm.iloc[-1]) == (1.0, 1.0)
    assert (study / "results/geometry/reference.csv").is_file()
    page = (study / "reports/index.html").read_text()
    assert "Summary: which model learns which T" in page and "Published results" in page
    assert "Why: the dynamics" in page and "The cliff (Pascanu, Mikolov, Bengio 2013)" in page
    assert (study / "results/cliff/summary.json").is_file()
    assert "Why: memory (the curse of memory)" in page and "Log-log slopes against the memory" in page
    assert "the gradient through time beside the state" in page  # the per-model sensitivity figure, inlined
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    # DVC's own views of the study
    shown = dvc(study, "metrics", "show", "--json").stdout
    assert "solved_frac" in shown and "test_loss_rel_baseline" in shown
    plots = dvc(study, "plots", "show", "--out", "dvc_plots")
    assert (study / "dvc_plots" / "index.html").is_file(), plots.stdout


def test_second_repro_does_nothing(study):
    """The parallel runner recorded every stage as `dvc repro` would: status clean, a plain `dvc repro` runs
    nothing, and the runner itself finds nothing to do."""
    assert json.loads(dvc(study, "status", "--json").stdout) == {}
    lock = yaml.safe_load((study / "dvc.lock").read_text())["stages"]
    assert set(lock) == {line.split()[0] for line in dvc(study, "stage", "list").stdout.splitlines()}
    started = time.perf_counter()
    again = dvc(study, "repro")
    took = time.perf_counter() - started
    assert "Running stage" not in again.stdout and "is cached" not in again.stdout, again.stdout[-2000:]
    print(f"second dvc repro: {took:.1f}s")  # shown with -s: no figure of record, not a timed assert
    # the study's own record, written when it finished (and not rewritten by a run that had nothing to do)
    record = json.loads((study / "results/repro.json").read_text())
    assert {k: record[k] for k in ("profile", "stages", "jobs", "threads")} == {
        "profile": "smoke", "stages": len(lock), "jobs": 2, "threads": 1}  # as smoke_study asked (--threads 1)
    assert 0 < record["wall_s"] and record["wall_s_since_make"] is None  # not started by make
    runner = repro(study, "--jobs", "2")
    assert runner.returncode == 0 and "up to date" in runner.stdout, runner.stdout
    assert json.loads((study / "results/repro.json").read_text()) == record


def test_wandb_pointers_are_not_results(study):
    """wandb's `latest-run` symlink and debug logs are dvcignored: left dangling (as `dvc checkout` of another
    experiment leaves them), or a run's own logs/ appended to by wandb's service after the stage exited (as a
    fresh-clone CI once saw: "results/summary/wandb: not in cache"), `dvc status` still works and nothing is stale."""
    link = study / "results/summary/wandb/latest-run"
    target = os.readlink(link)
    (core,) = study.glob("results/summary/wandb/offline-run-*/logs/debug-core.log")
    logged = core.read_bytes()
    try:
        link.unlink()
        link.symlink_to("offline-run-of-another-experiment")
        log = study / "results/summary/wandb/debug.log"
        log.unlink(missing_ok=True)  # a symlink into the run's logs/: replace it, never write through it
        log.write_text("another run's log\n")
        core.write_bytes(logged + b'{"msg":"server: all connections closed"}\n')
        assert json.loads(dvc(study, "status", "--json").stdout) == {}
    finally:
        link.unlink()
        link.symlink_to(target)
        core.write_bytes(logged)


def test_one_models_hidden_size_reruns_only_that_model(study):
    params_path = study / "params.yaml"
    original = params_path.read_text()
    try:
        params = yaml.safe_load(original)
        params["study"]["models"][1]["hidden_size"] += 4  # lstm
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        stale = set(json.loads(dvc(study, "status", "--json").stdout))
        from gradlab.launch.parallel import plan

        planned = plan(study)
    finally:
        params_path.write_text(original)
    model1 = {s for s in stale if s.startswith(("train@", "analyze@"))}
    assert model1 and all("-model1-" in s for s in model1), stale  # lstm's runs, no other model's
    assert len(model1) == 2 * len(params["study"]["clips"])  # train + analyze, for each clip setting
    assert stale - model1 <= {"summarize", "report"}
    # the parallel runner's plan: those stages and everything downstream of them, each after its upstream
    assert set(planned.order) == model1 | {"summarize", "report"}
    train = next(s for s in model1 if s.startswith("train@"))
    assert planned.needs[train] == set() and train in planned.needs[train.replace("train@", "analyze@")]
    assert planned.needs["summarize"] == model1 and planned.needs["report"] == model1 | {"summarize"}
    assert json.loads(dvc(study, "status", "--json").stdout) == {}


@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="no chromium (make browser)")
def test_report_renders_in_headless_chromium(study, tmp_path):
    shot = tmp_path / "report.png"
    found = render(study / "reports" / "index.html", shot)
    assert found["console_errors"] == [] and found["page_errors"] == [], found
    assert found["broken_images"] == [], found["broken_images"]
    assert found["images"] >= 10 and found["external_requests"] == []
    assert found["title"] == "gradlab study report"
    assert shot.stat().st_size > 50_000


@pytest.mark.slow  # two smoke studies side by side: minutes
def test_dvc_experiments_from_the_queue(study, tmp_path):
    """`dvc exp run --queue -S …` twice, `dvc queue start -j 2`: both finish, `dvc exp show` lists their metrics."""
    study = copy_study(study, tmp_path / "study")  # it commits and queues: the session's study stays as it was
    git = ["git", "-c", "user.name=gradlab-test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=study, check=True)  # the reproduced study (dvc.lock) as the baseline
    subprocess.run([*git, "commit", "-qm", "smoke study"], cwd=study, check=True)
    for seq_len in (12, 14):
        dvc(study, "exp", "run", "--queue", "-S", f"study.seq_lens=[{seq_len}]", "--name", f"T{seq_len}")
    # the workers it starts outlive it and keep its stdout: a file, not a pipe that would never close
    with open(tmp_path / "queue-start.log", "w") as log:
        subprocess.run([str(BIN / "dvc"), "queue", "start", "-j", "2"], cwd=study, env=_env(), stdout=log,
                       stderr=subprocess.STDOUT, timeout=120, check=True)
    try:
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            status = dvc(study, "queue", "status").stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(10)
    finally:
        dvc(study, "queue", "stop", check=False)
    assert status.count("Success") == 2, (status, dvc(study, "queue", "logs", "T12", check=False).stdout[-3000:])
    rows = {row["name"]: row for row in _exp_rows(dvc(study, "exp", "show", "--json").stdout)}
    for seq_len in (12, 14):
        row = rows[f"T{seq_len}"]
        assert row["params"]["study"]["seq_lens"] == [seq_len]
        summary = row["metrics"]["results/summary/metrics.json"]["data"]["adding"]  # read from DVC's cache
        assert set(summary) == {f"T{seq_len}", "longest"} and summary["longest"]["T"] == seq_len, summary
        assert set(summary["longest"]["lstm-none"]) == {"solved_frac", "loss_rel_baseline", "horizon", "h0_rel",
                                                     "h0_rel_training"}


def _exp_rows(shown: str) -> list[dict]:
    """Each experiment of `dvc exp show --json` as {name, params: params.yaml's data, metrics: {file: …}}."""
    rows = []
    for baseline in json.loads(shown):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = (rev or {}).get("data") or {}
                rows.append({"name": rev.get("name"), "metrics": data.get("metrics") or {},
                             "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data", {})})
    return rows


def _recorded(repo: Path) -> set[str]:
    """The stages dvc.lock records (DVC rewrites it in place: read while it writes, it can be empty)."""
    lock = repo / "dvc.lock"
    return set((yaml.safe_load(lock.read_text()) or {}).get("stages", {})) if lock.is_file() else set()


@pytest.mark.slow  # two paper runs of a few seconds each under dvc repro (~40 s): CI runs it (make test-ci-slow)
@pytest.mark.ci
def test_a_killed_paper_stage_resumes_under_dvc_repro(study, tmp_path):
    """`dvc repro` of a paper stage, SIGKILLed with its whole session (a lost machine) after the run's first
    checkpoint: the next `dvc repro` resumes it from last.ckpt (DVC removed the stage's outs before rerunning, not
    last.ckpt, which is none of them) and it ends with an uninterrupted run's files, byte for byte, dvc status
    clean."""
    from test_resilience import EQUAL_FILES

    work = copy_study(study, tmp_path / "study")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["papers"]["overrides"] += " trainer.max_steps=300 trainer.val_every_n_steps=30"  # a few seconds
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (run,) = work.glob("runs/paper-*")
    stage = "paper@setup0-0"
    dvc(work, "repro", "--single-item", stage)  # the uninterrupted run, with these params
    files = (*EQUAL_FILES, "stream.csv")
    reference = {name: (run / name).read_bytes() for name in files}
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", "--force", "--single-item", stage], cwd=work, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (run / "last.ckpt").exists():
            assert proc.poll() is None, "the stage ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
        proc.wait(timeout=60)
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
    assert (run / "last.ckpt").is_file() and not (run / "model.ckpt").exists()
    again = dvc(work, "repro", "--single-item", stage)
    assert f"Running stage '{stage}'" in again.stdout, again.stdout[-3000:]
    step = json.loads((run / "run_info.json").read_text())["resumed_from_step"]
    assert step >= 30, step
    for name in files:
        assert (run / name).read_bytes() == reference[name], name
    assert json.loads(dvc(work, "status", "--json", stage).stdout) == {}


@pytest.mark.slow  # three smoke studies with longer training: minutes
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_parallel_study_killed_midway_resumes_without_redoing_stages(tmp_path, sig):
    """`make repro` (2 jobs) killed once some stages are recorded: SIGKILL to every process of it (a lost
    machine), or SIGTERM to the runner (Slurm, `kill`), which hands it to the running stages. The rerun runs none
    of the recorded stages again, ends with `dvc status` clean, and every run's metrics.json is byte for byte
    what a serial `dvc repro` (JOBS=1, 1 thread) writes."""
    repo, serial = tmp_path / "parallel", tmp_path / "serial"
    for r in (repo, serial):
        r.mkdir()
        copy_repository(r)
        params = yaml.safe_load((r / "params.yaml").read_text())
        params["train"]["max_steps"] = 300  # a few seconds a run: the kill lands while runs are in flight
        (r / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.Popen([sys.executable, "pipelines/repro.py", "--jobs", "2"], cwd=repo, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while sum(s.startswith("train@") for s in _recorded(repo)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the study ended before the kill"
            time.sleep(0.2)
        if sig == signal.SIGKILL:
            subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)  # the whole session
        else:
            proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(proc.pid)], check=False)
    before = _recorded(repo)
    trains = {s for s in before if s.startswith("train@")}
    assert len(trains) >= 2 and "report" not in before, before
    again = repro(repo, "--jobs", "2")
    assert again.returncode == 0, again.stdout[-5000:]
    reran = {line.split("'")[1] for line in again.stdout.splitlines() if "Running stage '" in line}
    assert reran and not reran & before, (reran & before, again.stdout[-3000:])
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}
    done = subprocess.run([str(BIN / "dvc"), "repro"], cwd=serial, env={**_env(), "OMP_NUM_THREADS": "1"},
                          text=True, capture_output=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    runs = sorted(p.relative_to(serial) for p in serial.glob("runs/*/metrics.json"))
    study = yaml.safe_load((serial / "params.yaml").read_text())["study"]
    assert len(runs) == len(study["models"]) * len(study["clips"])  # the smoke grid
    for run in runs:
        assert (repo / run).read_bytes() == (serial / run).read_bytes(), run
