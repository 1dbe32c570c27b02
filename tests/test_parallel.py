"""`make repro JOBS=N`'s runner (gradlab.launch.parallel, pipelines/repro.py): jobs and threads, bad input, the order it
keeps, and what a failing stage leaves. The smoke study itself runs through it in tests/test_study.py."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_entry

from gradlab.launch import parallel


def test_jobs_and_threads_fill_the_cores_once():
    assert parallel.default_jobs(16) == 16 and parallel.default_threads(16, 16) == 1
    assert parallel.default_threads(16, 4) == 4 and parallel.default_threads(2, 2) == 1
    assert parallel.default_threads(2, 8) == 1  # more jobs than cores: still one thread each, never zero
    env = parallel.thread_env(3, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"}
    assert parallel.thread_env(None, {"PATH": "/bin"}) == {"PATH": "/bin"}


def test_gpu_jobs_come_from_its_memory_and_the_cores():
    gib = 1 << 30
    # 80 GiB, runs of 1 GiB + 1 GiB context: 36 fit, 16 cores to drive them -> 16
    assert parallel.default_jobs(16, 80 * gib, gib) == 16
    # 16 GiB, runs of 3 GiB + 1 GiB: 0.9 * 16 / 4 -> 3
    assert parallel.default_jobs(16, 16 * gib, 3 * gib) == 3
    assert parallel.default_jobs(16, 4 * gib, 8 * gib) == 1  # too large for even one: one (the run says why)


@pytest.mark.parametrize("flag,value", [("--jobs", "0"), ("--jobs", "two"), ("--threads", "-1")])
def test_a_bad_jobs_or_threads_value_is_named_with_the_choices(flag, value):
    done = run_entry("repro.py", flag, value, cwd=ROOT)
    assert done.returncode == 2 and f"{value!r}" in done.stderr and "positive integer or 'auto'" in done.stderr


def _fake_dvc(tmp_path: Path, fail: str | None = None) -> str:
    """A `dvc` that records when each stage starts and ends (and the threads it was given), and fails `fail`."""
    script = tmp_path / "dvc"
    script.write_text(f"""#!{sys.executable}
import os, sys, time
stage = sys.argv[-1]
log = open({str(tmp_path / 'log')!r}, "a")
log.write(f"start {{stage}} {{time.monotonic()}} {{os.environ.get('OMP_NUM_THREADS')}}\\n"); log.flush()
print(f"Running stage '{{stage}}'", flush=True)
time.sleep(0.5)
log.write(f"end {{stage}} {{time.monotonic()}}\\n")
sys.exit(3 if stage == {fail!r} else 0)
""")
    script.chmod(0o755)
    return str(script)


def _events(tmp_path: Path) -> list[list[str]]:
    return [line.split() for line in (tmp_path / "log").read_text().splitlines()]


def test_stages_start_after_their_upstream_and_run_side_by_side(tmp_path):
    plan = parallel.Plan(needs={"gen": set(), "a": {"gen"}, "b": {"gen"}, "c": {"gen"}, "sum": {"a", "b", "c"}},
                         order=["gen", "a", "b", "c", "sum"])
    out = io.StringIO()
    assert parallel.run_plan(plan, 2, 1, tmp_path, dvc=_fake_dvc(tmp_path), out=out) == 0
    ev = _events(tmp_path)
    when = {(e[0], e[1]): float(e[2]) for e in ev}
    assert all(e[3] == "1" for e in ev if e[0] == "start")  # the threads reach the stage's environment
    for stage, ups in plan.needs.items():
        assert all(when["start", stage] >= when["end", u] for u in ups), (stage, ev)
    running = max(sum(when["start", s] <= when["start", t] < when["end", s] for s in plan.needs) for t in plan.needs)
    assert running == 2  # two at a time, never more
    assert "[a] Running stage 'a'" in out.getvalue() and "5 of 5 stages" in out.getvalue()


def test_a_failed_stage_stops_new_ones_and_lets_the_running_finish(tmp_path):
    plan = parallel.Plan(needs={"a": set(), "b": set(), "c": set(), "d": {"a"}}, order=["a", "b", "c", "d"])
    out = io.StringIO()
    code = parallel.run_plan(plan, 2, None, tmp_path, dvc=_fake_dvc(tmp_path, fail="a"), out=out)
    assert code == 3
    ev = _events(tmp_path)
    assert {e[1] for e in ev if e[0] == "end"} == {"a", "b"}  # b, running beside a, finished; c and d never began
    assert "stage a failed (exit 3)" in out.getvalue()


def test_the_plan_is_empty_when_nothing_changed_and_holds_a_changed_stage(tmp_path):
    """A repository whose stages are all recorded: the plan is empty (DVC's status, no stage process); a changed
    command puts its stage in it."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    subprocess.run([dvc, "repro", "-q"], cwd=tmp_path, check=True)
    assert parallel.plan(tmp_path).order == []
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo ho > out.txt\n    outs: [out.txt]\n")
    assert parallel.plan(tmp_path).order == ["hello"]
