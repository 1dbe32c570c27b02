"""Beyond one process: Hydra multirun sweeps (basic and submitit launchers) and Lightning DDP on CPU (gloo).

Every run here is tiny (profile=smoke, T=10, 10 steps); the DDP runs start 2 CPU processes. The end-to-end runs
(30-40 s each on 2 CPU cores: process start-up, gloo rendezvous) are `slow`: `make test-slow`.
"""

import json

import pandas as pd
import pytest
import torch
from conftest import compose_cfg, read_json, run_cli

TINY = ("profile=smoke", "task.seq_len=10", "trainer.max_steps=10")
DDP = ("trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu")


def where(tmp_path):
    return f"data_dir={tmp_path / 'data'}", f"runs_dir={tmp_path / 'runs'}"


def train_rows(run_dir):
    """metrics.csv's rows that carry a training loss: one per optimizer step."""
    df = pd.read_csv(run_dir / "metrics.csv")
    return df[df["train/loss"].notna()]


@pytest.mark.slow  # ~35 s on 2 CPU cores
def test_submitit_local_sweep_writes_one_complete_run_folder_per_job(tmp_path):
    result = run_cli("train.py", "-m", "hydra/launcher=submitit_local", "model=rnn,lstm", *TINY,
                     "logger.mode=disabled", *where(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["adding-T10-lstm-none-s0", "adding-T10-rnn-none-s0"]
    for model in ("rnn", "lstm"):
        run_dir = runs / f"adding-T10-{model}-none-s0"
        m = read_json(run_dir / "metrics.json")
        assert m["status"] == "completed" and m["steps"] == 10, m
        assert (run_dir / "model.ckpt").is_file() and not (run_dir / "last.ckpt").exists()
        info = read_json(run_dir / "run_info.json")
        assert f"model={model}" in info["overrides"]  # each job records its own overrides, not the sweep's
    sweep = tmp_path / "multirun"  # Hydra's sweep dir: the sweep's config and submitit's job logs, no run outputs
    assert (sweep / "multirun.yaml").is_file() and list((sweep / ".submitit").glob("*/*_0_log.out"))


@pytest.mark.slow  # ~35 s on 2 CPU cores
def test_ddp_on_two_cpu_processes_logs_once(tmp_path):
    ddp = tmp_path
    result = run_cli("train.py", *TINY, *DDP, *where(ddp), cwd=ddp)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # rank 0 prints, rank 1 (Lightning re-runs the command with LOCAL_RANK=1) trains silently
    assert result.stdout.count("training adding-T10-lstm-none-s0 on 2 cpu processes (ddp)") == 1, result.stdout
    assert result.stdout.count("status=completed steps=10") == 1 and "resuming" not in result.stdout

    runs = list((ddp / "runs").iterdir())
    assert [p.name for p in runs] == ["adding-T10-lstm-none-s0"]
    run_dir = runs[0]
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["steps"] == 10, m
    assert read_json(run_dir / "run_info.json")["processes"] == 2
    rows = train_rows(run_dir)
    assert list(rows.step) == list(range(10))  # each step once: only rank 0 writes the CSV
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert (run_dir / "model.ckpt").is_file() and not (run_dir / "last.ckpt").exists()
    probes = pd.read_csv(run_dir / "bptt.csv")
    assert sorted(probes.step.unique()) == [0, 10]  # probed on rank 0 only: at the start and at the end, once each
    assert not probes.duplicated(["step", "layer", "t", "quantity"]).any()  # (a second writer would repeat rows)


@pytest.mark.slow  # two runs, one of them 2 processes
@pytest.mark.parametrize("model", ["lstm", "lru"])  # a fused kernel; the scan through parametrizations, two layers
def test_ddp_training_is_that_of_one_process(tmp_path, model):
    """Each rank takes half of every (seed, step) batch and DDP averages the gradients: the same training as one
    process with the whole batch, up to the order of float summation. In float64 that order changes each gradient
    by at most γ_B ≈ 4e-15 relative (B = 32 terms), and 10 Adam steps keep it far below 1e-9 (measured: equal to
    all 16 digits). In float32 a gradient entry near 0 can change sign with the order, and Adam's step with it, so
    the float32 DDP run above is checked for what it writes, not for its numbers. train/loss is rank 0's half-batch
    loss: not compared."""
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir(), single.mkdir()
    f64 = ("trainer.precision=64-true", "logger.mode=disabled")
    for folder, extra in ((ddp, DDP), (single, ())):
        done = run_cli("train.py", *TINY, f"model={model}", *f64, *extra, *where(folder), cwd=folder)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_dir, ref_dir = (d / "runs" / f"adding-T10-{model}-none-s0" for d in (ddp, single))
    m, ref = read_json(run_dir / "metrics.json"), read_json(ref_dir / "metrics.json")
    assert read_json(run_dir / "run_info.json")["processes"] == 2
    assert m["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-9)
    assert m["bptt_decay_rate"] == pytest.approx(ref["bptt_decay_rate"], rel=1e-9)
    a, b = train_rows(run_dir)["grad/norm_preclip"].to_numpy(), train_rows(ref_dir)["grad/norm_preclip"].to_numpy()
    assert a == pytest.approx(b, rel=1e-9)


def test_step_batches_split_each_global_batch_across_ranks():
    from gradlab.data.sets import StepBatches

    whole = iter(StepBatches(100, 32, seed=3, start=5))
    halves = [iter(StepBatches(100, 32, seed=3, start=5, rank=r, world_size=2)) for r in (0, 1)]
    for _ in range(10):  # across epoch boundaries (3 batches per epoch)
        batch, parts = next(whole), [next(h) for h in halves]
        assert len(parts[0]) == len(parts[1]) == 16 and torch.equal(torch.cat(parts), batch)


@pytest.mark.parametrize("args,message", [
    (["trainer.strategy=ddp_spawn"], "trainer.strategy='ddp_spawn' is not a valid choice; choose one of: auto, ddp"),
    (["trainer.devices=2", "trainer.batch_size=33"],
     "trainer.batch_size=33 does not split over 2 processes (trainer.devices=2 x trainer.num_nodes=1): use a "
     "multiple of 2"),
    (["trainer.num_nodes=0"], "trainer.num_nodes=0 is out of range: must be an integer >= 1"),
])
def test_bad_distributed_settings_are_one_line_errors(tmp_path, args, message):
    from gradlab.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose_cfg(args, tmp_path)
    assert str(err.value) == message


def test_a_run_folder_in_use_by_another_process_is_refused(tmp_path):
    from gradlab.core.errors import RunFolderBusy
    from gradlab.core.runfolder import RunFolder

    held = RunFolder(tmp_path / "run").hold()
    with pytest.raises(RunFolderBusy, match="being written by another running process"):
        RunFolder(tmp_path / "run").hold()  # flock is per open file: a second claim, even in this process, fails
    held.close()
    RunFolder(tmp_path / "run").hold().close()  # released: free again


@pytest.mark.slow
def test_basic_launcher_sweep_of_ddp_runs_starts_each_jobs_own_processes(tmp_path):
    """In a multirun, Lightning's re-run of the command must be the job's, and the next job must start afresh."""
    result = run_cli("train.py", "-m", "model=rnn,lstm", *TINY, *DDP, "logger.mode=disabled", *where(tmp_path),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for model in ("rnn", "lstm"):
        run_dir = tmp_path / "runs" / f"adding-T10-{model}-none-s0"
        assert read_json(run_dir / "metrics.json")["steps"] == 10
        assert read_json(run_dir / "run_info.json")["processes"] == 2
        assert list(train_rows(run_dir).step) == list(range(10))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["adding-T10-lstm-none-s0",
                                                                      "adding-T10-rnn-none-s0"]


@pytest.mark.slow
def test_ddp_run_stopped_by_sigterm_to_rank_zero_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    args = [*TINY, *DDP, "trainer.max_steps=100000", "trainer.val_every_n_steps=10", "logger.mode=disabled",
            *where(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "pipelines" / "train.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    run_dir = tmp_path / "runs" / "adding-T10-lstm-none-s0"
    deadline = time.monotonic() + 180
    while not (run_dir / "last.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # rank 0 only: the stop reaches rank 1 through the per-step all-reduce
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # the ranks wait on each other: end both, and fail
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"no exit 60 s after SIGTERM (a deadlock between ranks): {proc.communicate()}") from None
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert out.count("interrupted at step") == 1
    stopped = int(out.split("interrupted at step ")[1].split(";")[0])

    again = run_cli("train.py", *[a for a in args if not a.startswith("trainer.max_steps")],
                    f"trainer.max_steps={stopped + 5}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"at step {stopped}" in again.stdout
    m = read_json(run_dir / "metrics.json")
    assert m["steps"] == stopped + 5 and json.loads((run_dir / "run_info.json").read_text())["resumed_from_step"]
    steps = list(train_rows(run_dir).step)
    assert steps == sorted(set(steps))  # no step twice


@pytest.mark.slow
def test_sigterm_during_validation_on_rank_zero_does_not_deadlock(tmp_path):
    """The signal lands on rank 0 inside validation (forced: a wrapper sends it from there at step 20): the ranks
    must agree whether to write the validation checkpoint (a collective), then stop together with exit 143."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    script = tmp_path / "race.py"
    script.write_text("\n".join([
        "import os, runpy, signal, sys",
        "from gradlab import resume",
        "original = resume.GracefulStop.on_validation_end",
        "def on_validation_end(self, trainer, pl_module):",
        "    if trainer.is_global_zero and trainer.global_step == 20 and not trainer.sanity_checking:",
        "        os.kill(os.getpid(), signal.SIGTERM)",
        "    return original(self, trainer, pl_module)",
        "resume.GracefulStop.on_validation_end = on_validation_end",
        f"sys.argv[0] = {str(ROOT / 'pipelines' / 'train.py')!r}",
        "runpy.run_path(sys.argv[0], run_name='__main__')",
    ]))
    args = ["profile=smoke", "task.seq_len=10", "model=lstm", *DDP, "trainer.max_steps=100000",
            "trainer.val_every_n_steps=10", "logger.mode=disabled", *where(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the ranks deadlocked after a SIGTERM during validation") from None
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "interrupted at step 2" in out  # the step after validation at 20, on every rank together
    assert (tmp_path / "runs" / "adding-T10-lstm-none-s0" / "last.ckpt").is_file()
