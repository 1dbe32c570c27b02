"""Zucchet & Orvieto 2024's teacher-student claim (Fig. 3A) on edited result files: the best lr per (model, ν₀) by
the seed-mean final training loss, the per-seed loss ratio against the gap/equal lines with the factor-2 margin, and
the task's teacher (fast: no training)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from gradlab.core.errors import ConfigError
from gradlab.study.verdicts import reproduction
from gradlab.tasks import TASKS
from gradlab.tasks.base import empirical_baseline
from gradlab.tasks.linear_teacher import teacher

PAPER = "zucchet24_teacher"


def _run(root, model: str, nu0: float, lr: float, seed: int, loss: float, decay: float = 0.01) -> None:
    folder = root / f"paper-{PAPER}-T100-{model}-nu{nu0}-lr{lr}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    config = {"paper_name": PAPER, "seed": seed, "model": {"name": model}, "optim": {"name": "adam", "lr": lr},
              "task": {"name": "linear_teacher", "seq_len": 100, "nu0": nu0}, "trainer": {"batch_size": 64}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.json").write_text(json.dumps({"status": "completed", "bptt_decay_rate": decay}))
    rows = ["step,train/loss"] + [f"{s},{loss * (1 + 0.01 * (s % 2))}" for s in range(60)]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")


def _grid(root, losses: dict[float, dict[str, list[float]]], worse: float = 10.0) -> None:
    """Each (model, ν₀): the seeds' losses at the good lr, and `worse` times them at the other lr."""
    lrs = {"lru": (0.01, 0.032), "rnn": (0.001, 0.0032)}
    for nu0, per_model in losses.items():
        for model, seeds in per_model.items():
            for seed, loss in enumerate(seeds):
                _run(root, model, nu0, lrs[model][0], seed, loss)
                _run(root, model, nu0, lrs[model][1], seed, loss * worse)


def _rows(tmp_path):
    table = reproduction([], tmp_path / "runs")
    return table[table.source.str.startswith("Zucchet")]


def test_the_gap_at_099_and_equality_at_068_reproduce(tmp_path):
    root = tmp_path / "runs"
    _grid(root, {0.99: {"rnn": [0.4, 0.5, 0.3], "lru": [1e-3, 2e-3, 1e-3]},
                 0.92: {"rnn": [1e-2] * 3, "lru": [1e-3] * 3},
                 0.68: {"rnn": [1e-3, 2e-3, 1e-3], "lru": [1e-3, 1e-3, 2e-3]}})
    rows = _rows(tmp_path)
    assert len(rows) == 3 and set(rows.verdict) == {"reproduced"}
    top = rows[rows["task.nu0"] == 0.99].iloc[0]
    assert top["best lr"] == "rnn 0.001, lru 0.01"  # the lower seed-mean final loss of each grid
    assert "s0 rnn 0.402 / lru 0.00101 = 400 (holds)" in top["seed values"]
    assert "rnn 0.01" in top["decay rate"] and top["theirs"].startswith("rnn 0.42, lru 2.4e-05")
    assert rows[rows["task.nu0"] == 0.92].iloc[0].band == "reported, not judged"


def test_a_seed_near_the_line_is_inconclusive_and_a_clear_miss_not_reproduced(tmp_path):
    root = tmp_path / "runs"
    _grid(root, {0.99: {"rnn": [0.4, 0.1, 0.3], "lru": [1e-3, 1e-3, 1e-3]},  # s1: ratio 100, on the line
                 0.68: {"rnn": [1e-3] * 3, "lru": [1e-3] * 3}})
    rows = _rows(tmp_path)
    assert set(rows.verdict) == {"inconclusive"} and rows.iloc[0]["in the band"] == "0.99:s1"

    _grid(root, {0.99: {"rnn": [2e-3] * 3, "lru": [1e-3] * 3}})  # no gap at 0.99: a ratio of 2
    assert set(_rows(tmp_path).verdict) == {"not reproduced"}

    _grid(root, {0.99: {"rnn": [0.4] * 3, "lru": [1e-3] * 3}, 0.68: {"rnn": [1e-1] * 3, "lru": [1e-3] * 3}})
    assert set(_rows(tmp_path).verdict) == {"not reproduced"}  # x100 apart at 0.68: not "about equal"


def test_no_runs_is_one_not_run_row(tmp_path):
    rows = _rows(tmp_path)
    assert len(rows) == 1 and rows.iloc[0].verdict == "not run"


def test_the_teacher_is_theirs_and_fixed_by_its_seed():
    A, B, C, D = teacher(0.92)
    moduli = torch.linalg.eigvals(A).abs()
    assert A.dtype == torch.float64 and B.shape == (10, 1) and C.shape == (1, 10) and D.shape == (1, 1)
    assert 0.92 < moduli.min() and moduli.max() < 0.92 + 0.08 * torch.tanh(torch.tensor(2.0))  # ν₀ + (1−ν₀)tanh|λ|
    task = TASKS["linear_teacher"](seq_len=50, nu0=0.92)
    x, y = task.generate(0, 2000)
    x2, y2 = task.generate(0, 2000)
    assert torch.equal(x, x2) and torch.equal(y, y2) and x.shape == y.shape == (2000, 50, 1)
    assert not torch.equal(task.generate(1, 10)[0], x[:10])  # the data seed moves the inputs, not the teacher
    assert torch.allclose(y[:, 0], (C @ B + D).float() * x[:, 0], rtol=1e-4, atol=1e-5)  # h_0 = 0: y_1 = (CB+D) x_1
    spec = task.spec()
    assert spec.per_step and spec.kind == "regression"
    assert empirical_baseline(spec, y, task.generate(1, 2000)[1]) == pytest.approx(spec.baseline_loss, rel=0.05)


@pytest.mark.parametrize("nu0", [0.0, 1.0, 1.5])
def test_nu0_outside_the_open_unit_interval_is_refused(nu0):
    with pytest.raises(ConfigError, match=rf"task.nu0={nu0} is out of range: must be a number in \(0, 1\)"):
        TASKS["linear_teacher"](nu0=nu0)
