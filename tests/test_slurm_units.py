"""The Slurm path's pieces that need no cluster: sinfo's fields parsed, the GPU default, the request check's
messages against a given partition, `make … ARGS` passed through unexpanded, and which signal goes to whom after a
stop. The same paths against a real cluster: tests/test_cluster.py."""

from __future__ import annotations

import signal
import subprocess

import pytest
from conftest import ROOT
from omegaconf import OmegaConf

from gradlab.core.errors import ConfigError
from gradlab.launch import slurm
from gradlab.training.resume import GracefulStop


@pytest.mark.parametrize(("limit", "minutes"), [("infinite", None), ("1:00:00", 60), ("2-00:00:00", 2880),
                                                ("30:00", 30), ("0:01:30", 2)])
def test_time_limits_in_minutes(limit, minutes):
    assert slurm._minutes(limit) == minutes


@pytest.mark.parametrize(("gres", "gpus"), [("(null)", 0), ("gpu:4", 4), ("gpu:a100:8(S:0-1)", 8),
                                            ("gpu:a100:2,gpu:v100:2", 4), ("shard:8", 0)])
def test_gpus_of_a_gres(gres, gpus):
    assert slurm._gpus(gres) == gpus


CPU_ONLY = {"debug": slurm.Partition("debug", True, 2, 21694, 0, None),
            "gpu": slurm.Partition("gpu", False, 32, 256000, 4, 60)}


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setattr(slurm, "partitions", lambda timeout=10.0: CPU_ONLY)


def launcher(**kw):
    base = {"partition": None, "gpus_per_node": None, "cpus_per_task": 1, "tasks_per_node": 1, "mem_gb": 4,
            "timeout_min": 30}
    return OmegaConf.create(base | kw)


@pytest.mark.parametrize(("accelerator", "partition", "gpus"), [("auto", None, None), ("auto", "gpu", 2),
                                                                ("gpu", None, 2), ("cpu", "gpu", None)])
def test_gpu_default_follows_the_accelerator_and_the_partition(cluster, accelerator, partition, gpus):
    assert slurm.gpus_per_node(accelerator, 2, partition) == gpus


@pytest.mark.parametrize(("kw", "accelerator", "message"), [
    ({"partition": "nope"}, "auto", "hydra.launcher.partition='nope' is not a partition of this cluster; choose one "
                                    "of: debug, gpu"),
    ({"gpus_per_node": 1}, "auto", "hydra.launcher.gpus_per_node=1 but partition 'debug' offers 2 CPUs, 21 GB and no "
                                   "GPUs per node; on a CPU-only partition: hydra.launcher.gpus_per_node=null"),
    ({"gpus_per_node": 1, "partition": "gpu"}, "cpu", "hydra.launcher.gpus_per_node=1 with trainer.accelerator=cpu"),
    ({"cpus_per_task": 2, "tasks_per_node": 2}, "auto", "cpus_per_task=2 x tasks_per_node=2 = 4 CPUs but partition"),
    ({"mem_gb": 64}, "auto", "hydra.launcher.mem_gb=64 but partition 'debug' offers"),
    ({"partition": "gpu", "timeout_min": 120}, "auto", "hydra.launcher.timeout_min=120 but partition 'gpu' allows 60"),
])
def test_a_request_that_does_not_fit_names_the_value_and_the_offer(cluster, kw, accelerator, message):
    with pytest.raises(ConfigError) as err:
        slurm.check_request(launcher(**kw), accelerator)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_request_that_fits_passes(cluster):
    slurm.check_request(launcher(partition="gpu", gpus_per_node=4, cpus_per_task=8, tasks_per_node=4), "gpu")


def test_no_sinfo_no_check(monkeypatch):
    monkeypatch.setattr(slurm, "partitions", lambda timeout=10.0: None)
    slurm.check_request(launcher(partition="anything", cpus_per_task=10**6), "cpu")


def test_allocated_cpus_set_torch_threads_unless_omp_says_otherwise(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert slurm.use_allocated_cpus() is None
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert slurm.use_allocated_cpus() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_make_passes_args_unexpanded():
    """What make would have turned into `-lr` reaches Hydra as written; quotes still group words."""
    done = subprocess.run(["make", "-s", "experiment", "ARGS=--cfg job run_name=${model.name}-lr${optim.lr} "
                           "'seed=7'"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "run_name: ${model.name}-lr${optim.lr}" in done.stdout and "seed: 7" in done.stdout


def test_after_a_stop_only_a_time_limit_signal_goes_to_the_handler_it_replaced(tmp_path):
    called = []
    stop = GracefulStop(tmp_path / "last.ckpt", tmp_path / "metrics.csv")
    stop._owners = {s: lambda signum, frame: called.append(signum) for s in (signal.SIGTERM, signal.SIGUSR2)}
    stop.signum = signal.SIGTERM
    stop.hand_over()
    assert called == []  # SIGTERM: gradlab exits 143; the owner (submitit's bypass) has nothing to add
    stop.signum = signal.SIGUSR2
    stop.hand_over()
    assert called == [signal.SIGUSR2]  # submitit requeues the timed-out job
