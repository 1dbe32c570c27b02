"""Interrupted, diverging and misconfigured runs keep their data and say what happened (issue #5); a disk that cannot
take a stage's files ends it with one line, nothing half-written, and the rerun resumes (issue #27)."""

import csv
import errno
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, read_json, run_cli, run_entry

RUN = ("profile=smoke", "task.seq_len=20", "trainer.max_steps=400", "trainer.val_every_n_steps=50",
       "probe.every_n_steps=100", "logger.mode=disabled")  # last.ckpt after every validation
NAME = "adding-T20-lstm-none-s0"


def start(cwd, *args):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return subprocess.Popen([sys.executable, str(ROOT / "pipelines" / "train.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# what docs/resilience.md says a resumed run ends with, byte for byte
EQUAL_FILES = ("metrics.json", "bptt.csv", "metrics.csv")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: RUN trained from start to end without a stop."""
    cwd = tmp_path_factory.mktemp("whole")
    done = run_cli("train.py", *RUN, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "runs" / NAME


def resume_and_compare(cwd, reference, args=RUN):
    """Rerun the stopped run to its end; every file of EQUAL_FILES equals the uninterrupted run's, byte for byte."""
    run_dir = cwd / "runs" / NAME
    assert not (run_dir / "metrics.json").exists()
    again = run_cli("train.py", *args, cwd=cwd)
    assert again.returncode == 0, again.stderr
    step = int(again.stdout.split(" at step ")[1].split()[0])
    assert f"resuming {NAME} from runs/{NAME}/last.ckpt at step {step}" in again.stdout
    assert not (run_dir / "last.ckpt").exists() and (run_dir / "model.ckpt").exists()
    for name in EQUAL_FILES:
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name
    assert read_json(run_dir / "run_info.json")["resumed_from_step"] == step
    return step


@pytest.mark.slow  # two runs of RUN each (~15 s on 2 cores): CI runs them (make test-ci-slow), with the run stopped by
@pytest.mark.ci    # a full disk against the same reference (test_a_full_disk_ends_the_run_…)
def test_killed_run_resumes_from_its_checkpoint_and_ends_as_if_never_killed(tmp_path, uninterrupted):
    """SIGKILL (no handler runs) at a random moment after the first checkpoint: the rerun resumes from the last
    validation's checkpoint and ends bitwise equal (batches are a function of (seed, step); the checkpoint holds
    model, optimizer, loops, the module's counters and the probe's history; the CSV keeps the rows it had then)."""
    proc = start(tmp_path, *RUN)
    wait_for(tmp_path / "runs" / NAME / "last.ckpt", proc)
    time.sleep(random.uniform(0.0, 1.0))
    proc.kill()
    proc.wait()
    assert resume_and_compare(tmp_path, uninterrupted) % 50 == 0  # a validation's checkpoint


@pytest.mark.slow  # as the killed run's: CI runs them; make test's quick stop is test_sigterm_writes_a_checkpoint_…
@pytest.mark.ci
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signalled_run_resumes_at_the_step_it_stopped_and_ends_as_if_never_stopped(tmp_path, uninterrupted, sig):
    """SIGTERM (scancel, preemption) or Ctrl-C at a random moment: the run finishes its step, checkpoints there
    (not at the last validation) and exits 128 + signal; the rerun continues from that step and ends bitwise equal."""
    proc = start(tmp_path, *RUN)
    wait_for(tmp_path / "runs" / NAME / "last.ckpt", proc)
    time.sleep(random.uniform(0.0, 1.0))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    stopped = int(out.split("interrupted at step ")[1].split(";")[0])
    assert resume_and_compare(tmp_path, uninterrupted) == stopped


def test_sigterm_writes_a_checkpoint_and_exits_quickly(tmp_path):
    proc = start(tmp_path, *RUN, "trainer.max_steps=100000", "task.seq_len=50")
    run_dir = tmp_path / "runs" / "adding-T50-lstm-none-s0"
    wait_for(run_dir / "last.ckpt", proc)
    first = run_dir.joinpath("last.ckpt").stat().st_mtime_ns
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert took <= 10, took
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "received SIGTERM" in err and "Run the same command again to resume" in out
    assert run_dir.joinpath("last.ckpt").stat().st_mtime_ns > first  # written at the signal, not the old one
    assert not (run_dir / "metrics.json").exists()


def test_resume_refuses_another_config_and_resume_false_starts_afresh(tmp_path):
    """A folder holding a run (its checkpoint: here a finished run's model.ckpt, which a longer run would resume as
    it does last.ckpt) refuses a command with another config, naming the keys, and touches nothing; resume=false
    starts afresh. (A run stopped by Ctrl-C and resumed: test_signalled_run_resumes_…, make test-ci-slow.)"""
    run_dir = tmp_path / "runs" / NAME
    first = run_entry("train.py", *RUN, "trainer.max_steps=60", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # wandb's own diagnostic logs (wandb/*/logs/) are appended to by its shared service on its own schedule
    def files():
        return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.parent.name != "logs"}

    before = files()

    bad = run_entry("train.py", *RUN, "optim.lr=0.01", cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"error: runs/{NAME} holds a run with another config (optim.lr: 0.001 -> 0.01); use another run_name= "
        "or resume=false to overwrite it"]
    assert files() == before  # nothing touched

    longer = run_entry("train.py", *RUN, "trainer.max_steps=150", "optim.lr=0.01", "resume=false", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert "resuming" not in longer.stdout and read_json(run_dir / "metrics.json")["steps"] == 150


def test_exploding_rnn_ends_diverged_without_a_traceback_and_finite_with_clipping(tmp_path):
    explode = ("model=rnn", "model.recurrent_init=orthogonal", "model.recurrent_gain=3", "task.seq_len=100",
               "trainer.max_steps=30", "data.n_train=512", "data.n_val=64", "data.n_test=64", "probe.every_n_steps=10",
               "logger.mode=disabled")  # the configuration at its default sizes, for 30 steps
    raw = run_entry("train.py", *explode, "clip=none", cwd=tmp_path)
    assert raw.returncode == 0 and "Traceback" not in raw.stderr, raw.stderr
    m = read_json(tmp_path / "runs" / "adding-T100-rnn-none-s0" / "metrics.json")
    assert m["status"] == "diverged" and m["diverged_at_step"] is not None, m
    assert "trainer.explode_threshold" in m["diverged_reason"] and m["grad_norm_preclip_max"] > 1e10
    clipped = run_entry("train.py", *explode, "clip=norm", "clip.threshold=1.0", cwd=tmp_path)
    assert clipped.returncode == 0 and "Traceback" not in clipped.stderr, clipped.stderr
    m = read_json(tmp_path / "runs" / "adding-T100-rnn-norm1.0-s0" / "metrics.json")
    assert m["status"] == "completed" and m["grad_norm_preclip_max"] > 1e10, m  # exploding, but clipped


def test_an_unreadable_checkpoint_in_the_run_folder_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "runs" / NAME
    run_dir.mkdir(parents=True)
    (run_dir / "last.ckpt").write_bytes(b"\x80\x04truncated")
    bad = run_entry("train.py", *RUN, cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"error: checkpoint runs/{NAME}/last.ckpt is unreadable (UnpicklingError); delete it or use resume=false "
        "to start the run afresh"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["last.ckpt", NAME, "runs"])  # nothing new


def test_online_mode_without_a_reachable_server_logs_offline_with_a_warning(tmp_path, monkeypatch):
    # a closed loopback port: tests never send traffic anywhere else
    monkeypatch.setenv("WANDB_MODE", "")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    done = run_entry("train.py", "profile=smoke", "trainer.max_steps=5", "probe.enabled=false", "logger.mode=online",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ("warning: wandb cannot reach http://127.0.0.1:9 (Connection refused): logging offline instead"
            in done.stderr)
    assert list((tmp_path / "runs" / "adding-T100-lstm-none-s0" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_wandb_that_cannot_start_leaves_the_local_records(tmp_path):
    done = run_cli("train.py", "profile=smoke", "trainer.max_steps=5", "probe.enabled=false", cwd=tmp_path,
                   env={"WANDB_SERVICE": "3-99999-tcp-localhost-9"})  # a service that is not there
    assert done.returncode == 0, done.stderr
    assert "warning: continuing without wandb; metrics.csv and metrics.json hold the records" in done.stderr
    run_dir = tmp_path / "runs" / "adding-T100-lstm-none-s0"
    assert read_json(run_dir / "metrics.json")["status"] == "completed" and (run_dir / "metrics.csv").exists()


# ------------------------------------------------------------------ a disk that cannot take the files (issue #27)

# The fallback where no tmpfs can be mounted: every file gradlab writes goes through os.fsync
# (gradlab.core.runfolder.atomic_write_bytes), which fails with ENOSPC under the disk's folder while its marker is
# there.
FULL_PATCH = """
import errno, os
_fsync = os.fsync
def _full_fsync(fd, _marker={marker!r}, _root={root!r}):
    if os.path.exists(_marker) and os.readlink(f"/proc/self/fd/{{fd}}").startswith(_root):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _fsync(fd)
os.fsync = _full_fsync
"""


class Disk:
    """A folder a test can fill, make read-only and free again: a small tmpfs mounted there where this process may
    mount one (root; CI runs as root, and there a mount that fails fails the test instead of falling back), filled
    by a file that takes every free page and remounted read-only. Else gradlab's writes are made to fail with ENOSPC
    (FULL_PATCH, in this process or in a child) and, for a user that permissions bind (not root), the folder loses
    its write permission."""

    def __init__(self, path: Path, size: str = "4m"):
        self.path, self.filler = path, path / ".filler"
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        self.mounted = done.returncode == 0
        if not self.mounted and os.environ.get("CI"):
            pytest.fail(f"CI runs the full-disk tests on a tmpfs, but it could not be mounted: {done.stderr.strip()}")
        self.marker = path.parent / f".{path.name}.full"
        self.patch = FULL_PATCH.format(marker=str(self.marker), root=str(path.resolve()))

    def command(self, script: str) -> list[str]:
        """`python pipelines/<script>`, with the fallback's patch when there is no tmpfs."""
        entry = str(ROOT / "pipelines" / script)
        if self.mounted:
            return [sys.executable, entry]
        return [sys.executable, "-c", self.patch + f"import runpy, sys\nsys.argv[0] = {entry!r}\n"
                f"runpy.run_path({entry!r}, run_name='__main__')"]

    def patch_here(self, monkeypatch) -> None:
        """The fallback's patch in this process (for run_entry); nothing to do on a tmpfs."""
        if not self.mounted:
            scope: dict = {}
            exec(self.patch.replace("os.fsync = _full_fsync", ""), scope)  # noqa: S102 -- the test's own code
            monkeypatch.setattr(os, "fsync", scope["_full_fsync"])

    def fill(self) -> None:
        if not self.mounted:
            self.marker.touch()
            return
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (1 << 16, 1 << 12):  # down to a page: no new page is left for anyone
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
        self.marker.unlink(missing_ok=True)

    def read_only(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        elif os.geteuid() == 0:
            pytest.skip("root ignores write permissions, and no tmpfs can be mounted here to remount read-only")
        else:
            self.path.chmod(0o555)

    def unmount(self) -> None:
        self.marker.unlink(missing_ok=True)
        if self.mounted:  # the filler goes with the file system
            if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(self.path)], check=False)  # busy: detach now, free when unused
        else:
            self.path.chmod(0o755)


@pytest.fixture
def disk(tmp_path):
    made: list[Disk] = []

    def _disk(path: Path, size: str = "4m") -> Disk:
        made.append(Disk(path, size))
        return made[-1]

    yield _disk
    for d in made:
        d.unmount()


def assert_nothing_half_written(folder: Path) -> None:
    """No temporary file left, and every file gradlab writes there reads back whole."""
    import torch
    import yaml

    assert not [p for p in folder.rglob(".*.tmp")], list(folder.rglob(".*.tmp"))
    for ckpt in folder.rglob("*.ckpt"):
        assert "state_dict" in torch.load(ckpt, weights_only=False), ckpt
    for table in folder.rglob("*.csv"):
        text = table.read_text()
        assert text.endswith("\n"), table
        rows = list(csv.reader(text.splitlines()))
        assert all(len(r) == len(rows[0]) for r in rows), table  # no row cut short
    for record in [*folder.rglob("*.yaml"), *folder.rglob("*.json")]:
        if "wandb" not in record.parts:  # wandb's own files are wandb's
            assert yaml.safe_load(record.read_text()) is not None, record


def test_disk_errors_name_their_file_and_what_to_do():
    """errors.disk_error: the errnos of a disk that cannot take a file, each with its remedy; the path is the
    error's own (a copy's destination), else the folder being written; found behind a wrapping error too."""
    from gradlab.core.errors import disk_error

    full = OSError(errno.ENOSPC, "No space left on device", "runs/r/metrics.csv")
    assert disk_error(full, "rerun: it resumes from last.ckpt") == (
        "runs/r/metrics.csv: no space left on device; free space and rerun: it resumes from last.ckpt")
    assert disk_error(PermissionError(errno.EACCES, "Permission denied", "runs/r")) == (
        "runs/r: permission denied; make it writable and rerun")
    assert disk_error(OSError(errno.EROFS, "Read-only file system", "data/x")) == (
        "data/x: read-only file system; write somewhere writable (or remount it read-write) and rerun")
    assert disk_error(OSError(errno.EDQUOT, "Disk quota exceeded"), where="results/summary") == (
        "results/summary: disk quota exceeded; free space (or raise the quota) and rerun")
    copy = OSError(errno.ENOSPC, "No space left on device", "/tmp/tmpx", None, "runs/r/model.ckpt")
    assert disk_error(copy).startswith("runs/r/model.ckpt: no space left on device")
    try:  # e.g. Lightning's teardown after the error fails in its own way
        try:
            raise full
        except OSError:
            raise OSError("the logger could not be finalized") from None
    except OSError as wrapped:
        assert disk_error(wrapped).startswith("runs/r/metrics.csv: no space left on device")
    assert disk_error(FileNotFoundError(errno.ENOENT, "No such file", "f")) is None
    assert disk_error(OSError("no errno")) is None


@pytest.mark.slow  # with its uninterrupted reference, 24 s of make test's 5 min: CI runs it (make test-ci-slow);
@pytest.mark.ci    # make test keeps the other stages' full disk (…_analyze_summarize_…) and the SIGTERM stop
def test_a_full_disk_ends_the_run_in_one_line_and_the_rerun_resumes_as_if_never_stopped(tmp_path, disk, uninterrupted):
    """runs/ on a small file system that fills up while the run trains (wandb offline writing there too): exit 1,
    one line naming the file and what to do, nothing half-written; with the space freed, the same command resumes
    from last.ckpt and ends byte for byte as the uninterrupted run."""
    runs = disk(tmp_path / "runs")
    args = (*[a for a in RUN if not a.startswith("logger.mode")], "logger.mode=offline")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([*runs.command("train.py"), *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in proc.stdout:  # past step 300's checkpoint: the rerun has only the last steps to do
            if (m := re.match(r"step (\d+)/", line)) and int(m[1]) >= 320:
                break
        runs.fill()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert re.fullmatch(rf"error: runs/{NAME}/[\w.]+: no space left on device; free space and rerun: it resumes "
                        r"from last\.ckpt\n", err), err
    run_dir = runs.path / NAME
    assert (run_dir / "last.ckpt").is_file() and not (run_dir / "model.ckpt").exists()
    assert_nothing_half_written(run_dir)
    runs.free()
    assert resume_and_compare(tmp_path, uninterrupted, args) >= 300


def test_a_read_only_runs_folder_is_one_line_and_nothing_is_written(tmp_path, disk):
    runs = disk(tmp_path / "runs")
    runs.read_only()
    done = subprocess.run([*runs.command("train.py"), *RUN, "trainer.max_steps=5"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 1, done.stderr
    remedy = ("read-only file system; write somewhere writable (or remount it read-write)" if runs.mounted else
              "permission denied; make it writable")
    assert done.stderr == f"error: runs/{NAME}: {remedy} and rerun\n"
    assert list(runs.path.iterdir()) == []


def test_a_full_disk_ends_analyze_summarize_and_generate_in_one_line(tmp_path, disk, monkeypatch):
    """The other stages that write: each ends with the file it could not write and exit 1, leaving no part of it."""
    work = disk(tmp_path / "work")
    work.patch_here(monkeypatch)
    small = ("profile=smoke", "task.seq_len=10", "trainer.max_steps=2", "probe.every_n_steps=1", "logger.mode=disabled")
    assert run_entry("train.py", *small, cwd=work.path).returncode == 0
    (work.path / "params.yaml").write_bytes((ROOT / "conf" / "study" / "smoke.yaml").read_bytes())
    work.fill()
    name = "adding-T10-lstm-none-s0"
    for script, args, where in (("analyze.py", small, f"runs/{name}/analysis/"),
                                ("summarize.py", ("--logger-mode", "disabled"), "results/summary/"),
                                ("generate.py", ("task=copy", "task.seq_len=12"), "data/copy/T12/")):
        done = run_entry(script, *args, cwd=work.path)
        assert done.returncode == 1, (script, done.stderr)
        assert re.fullmatch(rf"error: {re.escape(where)}[\w./-]+: no space left on device; free space and rerun\n",
                            done.stderr), (script, done.stderr)
    assert not (work.path / "runs" / name / "analysis" / "metrics.json").exists()
    assert not (work.path / "results" / "summary" / "summary.csv").exists()
    assert not (work.path / "data" / "copy" / "T12" / "manifest.json").exists()
    assert_nothing_half_written(work.path)


def test_a_checkpoint_on_a_full_disk_leaves_the_previous_one_whole(tmp_path, disk, monkeypatch):
    """AtomicCheckpointIO: the trainer's checkpoint writer; a save the disk cannot take raises ENOSPC and leaves the
    last good last.ckpt as it was (an in-place write would leave it cut short, or overwrite it and fit)."""
    import torch
    from conftest import compose_cfg

    from gradlab.core.runfolder import RunFolder
    from gradlab.stages.train import build_trainer
    from gradlab.training.resume import AtomicCheckpointIO

    cfg = compose_cfg(["profile=smoke", "logger.mode=disabled"], tmp_path)
    trainer = build_trainer(cfg, RunFolder.of(cfg.runs_dir, cfg.run_name), [])
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    d = disk(tmp_path / "ckpt", "1m")
    d.patch_here(monkeypatch)
    ckpt, writer = d.path / "last.ckpt", AtomicCheckpointIO()
    writer.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
    before = ckpt.read_bytes()
    d.fill()
    with pytest.raises(OSError) as err:
        writer.save_checkpoint({"state_dict": {"w": torch.ones(20000)}}, ckpt)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(ckpt)
    assert ckpt.read_bytes() == before and not list(d.path.glob(".*.tmp"))


def test_metrics_csv_on_a_full_disk_is_left_as_it_was(tmp_path, disk, monkeypatch):
    """AtomicCSVLogger (make_loggers' CSV logger): appended rows and the rewrite a new column needs go to a temporary
    file first; on a full disk metrics.csv keeps its last complete version."""
    from gradlab.tracking.config import LoggerConfig
    from gradlab.tracking.loggers import AtomicCSVLogger, make_loggers

    monkeypatch.setenv("WANDB_MODE", "disabled")  # it overrides logger.mode: no wandb run left open by this test
    loggers = make_loggers(LoggerConfig(mode="disabled"), "r", tmp_path, {})
    assert len(loggers) == 1 and isinstance(loggers[0], AtomicCSVLogger)
    d = disk(tmp_path / "csv", "1m")
    d.patch_here(monkeypatch)
    log = AtomicCSVLogger(save_dir=str(d.path), name=None, version="")
    log.log_metrics({"a": 1.0}, step=0)
    log.save()
    path = Path(log.experiment.metrics_file_path)
    before = path.read_bytes()
    d.fill()
    with pytest.raises(OSError) as err:
        for step in range(1, 400):  # a new column at step 1: the whole file is rewritten
            log.log_metrics({"a": 1.0, "b": 2.0} if step == 1 else {"a": 1.0}, step=step)
        log.save()
    assert err.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and not list(d.path.glob(".*.tmp"))
