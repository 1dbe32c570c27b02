"""Interrupted, diverging and misconfigured runs keep their data and say what happened (issue #5)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, read_json, run_cli

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


EQUAL_FILES = ("metrics.json", "bptt.csv", "metrics.csv")  # what README says a resumed run ends with, byte for byte


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: RUN trained from start to end without a stop."""
    cwd = tmp_path_factory.mktemp("whole")
    done = run_cli("train.py", *RUN, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "runs" / NAME


def resume_and_compare(cwd, reference):
    """Rerun the stopped run to its end; every file of EQUAL_FILES equals the uninterrupted run's, byte for byte."""
    run_dir = cwd / "runs" / NAME
    assert not (run_dir / "metrics.json").exists()
    again = run_cli("train.py", *RUN, cwd=cwd)
    assert again.returncode == 0, again.stderr
    step = int(again.stdout.split(" at step ")[1].split()[0])
    assert f"resuming {NAME} from runs/{NAME}/last.ckpt at step {step}" in again.stdout
    assert not (run_dir / "last.ckpt").exists() and (run_dir / "model.ckpt").exists()
    for name in EQUAL_FILES:
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name
    assert read_json(run_dir / "run_info.json")["resumed_from_step"] == step
    return step


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
    proc = start(tmp_path, *RUN, "trainer.max_steps=100000")
    run_dir = tmp_path / "runs" / NAME
    wait_for(run_dir / "last.ckpt", proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    bad = run_cli("train.py", *RUN, "optim.lr=0.01", cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"error: runs/{NAME} holds a run with another config (optim.lr: 0.001 -> 0.01); use another run_name= "
        "or resume=false to overwrite it"]
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # nothing touched

    longer = run_cli("train.py", *RUN, "trainer.max_steps=150", "optim.lr=0.01", "resume=false", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert "resuming" not in longer.stdout and read_json(run_dir / "metrics.json")["steps"] == 150


def test_exploding_rnn_ends_diverged_without_a_traceback_and_finite_with_clipping(tmp_path):
    explode = ("model=rnn", "model.recurrent_init=orthogonal", "model.recurrent_gain=3", "task.seq_len=100",
               "trainer.max_steps=30", "data.n_train=512", "data.n_val=64", "data.n_test=64", "probe.every_n_steps=10",
               "logger.mode=disabled")  # the configuration at its default sizes, for 30 steps
    raw = run_cli("train.py", *explode, "clip=none", cwd=tmp_path)
    assert raw.returncode == 0 and "Traceback" not in raw.stderr, raw.stderr
    m = read_json(tmp_path / "runs" / "adding-T100-rnn-none-s0" / "metrics.json")
    assert m["status"] == "diverged" and m["diverged_at_step"] is not None, m
    assert "trainer.explode_threshold" in m["diverged_reason"] and m["grad_norm_preclip_max"] > 1e10
    clipped = run_cli("train.py", *explode, "clip=norm", "clip.threshold=1.0", cwd=tmp_path)
    assert clipped.returncode == 0 and "Traceback" not in clipped.stderr, clipped.stderr
    m = read_json(tmp_path / "runs" / "adding-T100-rnn-norm1.0-s0" / "metrics.json")
    assert m["status"] == "completed" and m["grad_norm_preclip_max"] > 1e10, m  # exploding, but clipped


def test_an_unreadable_checkpoint_in_the_run_folder_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "runs" / NAME
    run_dir.mkdir(parents=True)
    (run_dir / "last.ckpt").write_bytes(b"\x80\x04truncated")
    bad = run_cli("train.py", *RUN, cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"error: checkpoint runs/{NAME}/last.ckpt is unreadable (UnpicklingError); delete it or use resume=false "
        "to start the run afresh"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["last.ckpt", NAME, "runs"])  # nothing new


def test_online_mode_without_a_reachable_server_logs_offline_with_a_warning(tmp_path):
    # a closed loopback port: tests never send traffic anywhere else
    done = run_cli("train.py", "profile=smoke", "trainer.max_steps=5", "probe.enabled=false", "logger.mode=online",
                   cwd=tmp_path, env={"WANDB_MODE": "", "WANDB_BASE_URL": "http://127.0.0.1:9"})
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
