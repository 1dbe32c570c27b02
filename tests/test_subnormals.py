"""Subnormals: training flushes them in every thread (trainer.flush_denormal), and the probe measures below
float32's range (probe.dtype=float64), so that a vanishing gradient is neither slow to train nor cut off."""

import copy
import math
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import read_json

from gradlab.models.net import RecurrentNet
from gradlab.probe.bptt import bptt_probe, decay_rate
from gradlab.tasks.adding import AddingTask
from gradlab.tasks.copy import CopyTask
from gradlab.training.module import RecurrentModule
from gradlab.training.subnormals import flush_state

FLOAT32_TINY = torch.finfo(torch.float32).tiny  # 1.18e-38, float32's smallest normal number


def test_flushing_reaches_every_intra_op_thread_also_once_the_pool_runs():
    """torch.set_flush_denormal sets the calling thread only; OpenMP's workers, once started, keep their own bits."""
    script = """
import torch
from gradlab.training.subnormals import flush_state, flushing
torch.set_num_threads(2)
assert flush_state() == 0.0  # also starts the OpenMP pool, without flushing
torch.set_flush_denormal(True)
print("main thread only", flush_state())
torch.set_flush_denormal(False)
with flushing(True) as state:
    print("flushing", state, flush_state())
print("after", flush_state())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.rsplit(" ", 1) if line.startswith("main") else (line.split(" ", 1)[0], line.split(" ", 1)[1])
                 for line in out.stdout.splitlines())
    assert float(lines["main thread only"]) < 1.0  # the worker's share was not flushed: why flushing() exists
    assert lines["flushing"] == "1.0 1.0" and lines["after"] == "0.0"


@pytest.mark.parametrize("flush", [True, False])
def test_a_run_records_whether_its_threads_flushed_and_leaves_the_process_as_it_was(train, flush):
    before = flush_state()
    _, run_dir = train("profile=smoke", "model=rnn", "task.seq_len=12", "trainer.max_steps=2",
                       f"trainer.flush_denormal={flush}", "logger.mode=disabled")
    assert read_json(run_dir / "run_info.json")["subnormals_flushed"] == float(flush)
    assert flush_state() == before


@pytest.mark.parametrize("task", ["adding", "copy"])  # float inputs and integer tokens (one-hot in the model)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "nfg_lstm"])
def test_the_float64_probe_is_the_probe_of_a_float64_copy(kind, task):
    torch.manual_seed(0)
    spec_task = AddingTask(seq_len=20) if task == "adding" else CopyTask(seq_len=12)
    net = RecurrentNet(kind, spec_task.spec(), hidden_size=8, num_layers=2)
    before = copy.deepcopy(net.state_dict())
    x, y = spec_task.generate(0, 6)
    holder = SimpleNamespace(spec=spec_task.spec())  # what RecurrentModule.loss_and_accuracy reads of itself
    module_loss = lambda out, traces: RecurrentModule.loss_and_accuracy(holder, out, y)[0]  # noqa: E731
    ref = bptt_probe(copy.deepcopy(net).double(), x if task == "copy" else x.double(), module_loss)
    got = bptt_probe(net, x, module_loss, dtype=torch.float64)
    for layer, curves in enumerate(ref.layers):
        for k, v in curves.items():
            assert torch.equal(got.layers[layer][k], v), (layer, k)  # the same computation: bit for bit
    assert got.scalars == ref.scalars
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the model itself is untouched
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_an_rnn_run_at_T200_measures_its_gradient_below_float32s_range(train):
    common = ("profile=smoke", "model=rnn", "model.hidden_size=16", "task.seq_len=200", "trainer.max_steps=2",
              "probe.every_n_steps=1", "probe.batch_size=16", "logger.mode=disabled")
    curves = {}
    for dtype in ("float64", "float32"):
        _, run_dir = train(*common, f"probe.dtype={dtype}", f"run_name=probe-{dtype}")
        df = pd.read_csv(run_dir / "bptt.csv")
        h = df[(df.quantity == "dL_dh_norm") & (df.layer == 0) & (df.step == 0)].sort_values("t").value
        logged = pd.read_csv(run_dir / "metrics.csv")
        curves[dtype] = (torch.tensor(h.to_numpy()), logged[logged.step == 0]["bptt/decay_rate"].dropna().item())
    h64, rate64 = curves["float64"]
    assert len(h64) == 200 and 0 < h64[0] < FLOAT32_TINY and torch.isfinite(h64).all() and (h64 > 0).all()
    # the logged rate is the least-squares fit over all 200 steps (none underflowed), to the last bit
    assert rate64 == decay_rate(h64)
    # the float32 probe of the same run loses the early steps: they underflow to 0 and drop out of its fit
    h32, _ = curves["float32"]
    assert h32[0] == 0 and (h32 == 0).sum() > 50
    # The decay is geometric: the fit over the whole range and the end-to-end slope agree (1.7% apart here:
    # H=16, seed 0; a factor of 2 would mean the fit were taken over a cut-off range, as with float32)
    end_to_end = math.log(h64[0] / h64[-1]) / (len(h64) - 1)
    assert abs(rate64 - end_to_end) <= 0.1 * abs(end_to_end)
