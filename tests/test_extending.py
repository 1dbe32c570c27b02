"""Adding a model or a task is two files each, nothing else (docs/cells.md, "Adding a model", "Adding a task").

The test writes them outside the package, as a researcher's own code would live: a cell with an option of its own
(a leak rate) in one module and its conf/model/<name>.yaml, a task in another module and its conf/task/<name>.yaml.
Importing the modules registers them; the conf files come from a Hydra search path (hydra.searchpath). Then the
pipeline runs them as it runs its own: train (probed while training), analyze (the probe on test data and the
Lyapunov spectrum), and the option reaches the cell."""

from __future__ import annotations

import importlib
import math
import sys
import textwrap

import pandas as pd
import pytest
from conftest import run_entry

from gradlab import cells
from gradlab.core.runfolder import read_json
from gradlab.tasks import TASKS

CELL_FILE = '''
from dataclasses import dataclass

import torch
from torch import nn

from gradlab.cells.base import Cell, register
from gradlab.core.errors import ConfigError


@register
class LeakyTanh(Cell):
    """h_t = (1 - leak) h_{t-1} + leak tanh(v_t + u_t): no fused kernel, trained through its step."""

    name = "leaky_ext"
    order = 900
    about = "leaky tanh RNN (a test's own model)"
    theory = "the direct path: ln(1 - leak) per step"
    fused_kernel = False

    @dataclass
    class Options:
        leak: float = 0.5

        def __post_init__(self):
            if not 0 < self.leak <= 1:
                raise ConfigError(f"model.leak={self.leak} is out of range: must be a number in (0, 1]")

    def fused(self, input_size, hidden_size, num_layers, **options):
        return nn.RNN(input_size, hidden_size, num_layers, batch_first=True)

    def step(self, net, layer, v, u, state):
        leak = net.options.get("leak", 0.5)
        return ((1 - leak) * state[0] + leak * torch.tanh(v + u),)

    def theory_scalars(self, net, layer, v, u):
        return {"decay_rate_predicted": float(torch.log(torch.tensor(1 - net.options.get("leak", 0.5))))}
'''

MODEL_CONF = '''
defaults:
  - leaky_ext_schema
  - _self_

name: leaky_ext
hidden_size: 8
num_layers: 1
recurrent_init: default
recurrent_gain: 1.0
leak: 0.25
'''

TASK_FILE = '''
from dataclasses import dataclass
from typing import ClassVar

import torch

from gradlab.tasks.base import Task, TaskSpec, register


@register
@dataclass
class ParityOfFirst(Task):
    """The sign of the first value, after seq_len - 1 steps of noise: a regression onto +-1."""

    name: str = "parity_ext"
    order: ClassVar[int] = 900

    def spec(self):
        return TaskSpec(self.name, self.seq_len, self.seq_len, 1, 1, "regression", False, False, 1.0, None)

    def generate(self, seed, n):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, self.seq_len, 1, generator=g)
        return x, x[:, 0].sign()
'''

TASK_CONF = '''
defaults:
  - parity_ext_schema
  - _self_

name: parity_ext
seq_len: 12
'''


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """The two files of each, written where a user's own code lives (not under src/ or conf/), imported; the
    registries are restored whatever happens."""
    code, conf = tmp_path / "mycode", tmp_path / "myconf"
    files = {code / "leaky_ext_cell.py": CELL_FILE, conf / "model" / "leaky_ext.yaml": MODEL_CONF,
             code / "parity_ext_task.py": TASK_FILE, conf / "task" / "parity_ext.yaml": TASK_CONF}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(code))
    try:
        importlib.import_module("leaky_ext_cell")
        importlib.import_module("parity_ext_task")
        yield {"conf": conf, "files": sorted(files), "work": tmp_path / "work"}
    finally:
        cells.unregister("leaky_ext")
        TASKS.pop("parity_ext", None)
        for name in ("leaky_ext_cell", "parity_ext_task"):
            sys.modules.pop(name, None)


def test_a_new_cell_with_an_option_and_a_new_task_are_two_files_each(outside):
    assert len(outside["files"]) == 4 and list(cells.names())[-1] == "leaky_ext" and list(TASKS)[-1] == "parity_ext"
    outside["work"].mkdir()
    run = ("profile=smoke", "model=leaky_ext", "task=parity_ext", "trainer.max_steps=6", "probe.every_n_steps=3",
           "logger=none", f"hydra.searchpath=[file://{outside['conf']}]")
    trained = run_entry("train.py", *run, cwd=outside["work"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_dir = outside["work"] / "runs" / "parity_ext-T12-leaky_ext-none-s0"
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "completed" and metrics["steps"] == 6
    assert metrics["bptt_decay_rate_predicted"] == pytest.approx(math.log(0.75))  # the option reached the cell
    assert "leak: 0.25" in (run_dir / "config.yaml").read_text()  # the cell's own key, from its conf
    probed = pd.read_csv(run_dir / "bptt.csv")
    assert sorted(probed.step.unique()) == [0, 3, 6] and set(probed.t) == set(range(12))

    done = run_entry("analyze.py", *run, cwd=outside["work"])
    assert done.returncode == 0, done.stderr[-3000:]
    lyap = pd.read_csv(run_dir / "analysis" / "lyapunov.csv")
    assert lyap.exponent.map(math.isfinite).all() and set(lyap.when) == {"init", "trained"}

    refused = run_entry("train.py", *run, "model.leak=2.0", "run_name=other", cwd=outside["work"])
    assert refused.returncode == 1 and "model.leak=2.0 is out of range" in refused.stderr, refused.stderr
    assert not (outside["work"] / "runs" / "other").exists()


@pytest.mark.slow
@pytest.mark.ci  # a fresh interpreter (~6 s): moved out of make test for time
def test_a_composed_config_unpickles_in_a_fresh_process(tmp_path):
    """The model schemas are built on first use; a Slurm job or a DDP worker unpickles its config before any is:
    the schema class resolves by its name all the same."""
    import pickle
    import subprocess

    from gradlab.launch.cli import load

    blob = tmp_path / "cfg.pkl"
    blob.write_bytes(pickle.dumps(load("config", ["model=lstm97"])))
    done = subprocess.run([sys.executable, "-c", f"import pickle; print(pickle.loads(open({str(blob)!r}, 'rb')"
                           ".read()).model)"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "LSTM97ModelConfig(name='lstm97'" in done.stdout, done.stderr[-2000:]
