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


AT_BUDGET = {"batch_size": 128, "max_steps": 10_000}  # theirs: 10,000 steps of batch 128


def _run(root, model: str, nu0: float, lr: float, seed: int, loss: float, decay: float = 0.01,
         trainer: dict = AT_BUDGET) -> None:
    folder = root / f"paper-{PAPER}-T100-{model}-nu{nu0}-lr{lr}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    config = {"paper_name": PAPER, "seed": seed, "model": {"name": model}, "optim": {"name": "adam", "lr": lr},
              "task": {"name": "linear_teacher", "seq_len": 100, "nu0": nu0}, "trainer": trainer}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.json").write_text(json.dumps({"status": "completed", "bptt_decay_rate": decay}))
    rows = ["step,train/loss"] + [f"{s},{loss * (1 + 0.01 * (s % 2))}" for s in range(60)]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")


def _grid(root, losses: dict[float, dict[str, list[float]]], worse: float = 10.0, trainer: dict = AT_BUDGET) -> None:
    """Each (model, ν₀): the seeds' losses at the good lr, and `worse` times them at the other lr."""
    lrs = {"lru": (0.01, 0.032), "rnn": (0.001, 0.0032)}
    for nu0, per_model in losses.items():
        for model, seeds in per_model.items():
            for seed, loss in enumerate(seeds):
                _run(root, model, nu0, lrs[model][0], seed, loss, trainer=trainer)
                _run(root, model, nu0, lrs[model][1], seed, loss * worse, trainer=trainer)


def _rows(tmp_path):
    table = reproduction([], tmp_path / "runs")
    return table[table.source.str.startswith("Zucchet")]


def test_the_gap_at_099_and_equality_at_068_are_consistent(tmp_path):
    """At their budget, 3 of 3 seeds holding each rule: 95% interval [29%, 100%] holds their every seed and not
    "no seed"; ν₀ = 0.92 is reported beside, not judged."""
    root = tmp_path / "runs"
    _grid(root, {0.99: {"rnn": [0.4, 0.5, 0.3], "lru": [1e-3, 2e-3, 1e-3]},
                 0.92: {"rnn": [1e-2] * 3, "lru": [1e-3] * 3},
                 0.68: {"rnn": [1e-3, 2e-3, 1e-3], "lru": [1e-3, 1e-3, 2e-3]}})
    rows = _rows(tmp_path).set_index("task.nu0")
    assert (rows.loc[0.99].verdict, rows.loc[0.68].verdict, rows.loc[0.92].verdict) == (
        "consistent", "consistent", "not comparable")
    top = rows.loc[0.99]
    assert top.solved == "3/3" and top.ours.startswith("3/3 = 100%, 95% interval [29%, 100%]")
    assert top["best lr"] == "rnn 0.001, lru 0.01"  # the lower seed-mean final loss of each grid
    assert "s0 rnn 0.402 / lru 0.00101 = 400 (holds)" in top["seed values"]
    assert "rnn 0.01" in top["decay rate"] and top["theirs"].startswith("rnn 0.42, lru 2.4e-05")
    assert rows.loc[0.92].band == "reported, not judged"


def test_a_seed_near_the_line_counts_on_neither_side_and_a_clear_miss_is_inconsistent(tmp_path):
    root = tmp_path / "runs"
    _grid(root, {0.99: {"rnn": [0.4, 0.1, 0.3], "lru": [1e-3, 1e-3, 1e-3]},  # s1: ratio 100, on the line
                 0.68: {"rnn": [1e-3] * 3, "lru": [1e-3] * 3}})
    top = _rows(tmp_path).set_index("task.nu0").loc[0.99]
    assert (top.verdict, top["in the band"], top.solved) == ("consistent", "0.99:s1", "2/2 (+1 in the band)")

    _grid(root, {0.99: {"rnn": [2e-3] * 3, "lru": [1e-3] * 3}})  # no gap at 0.99: a ratio of 2
    assert _rows(tmp_path).set_index("task.nu0").loc[0.99].verdict == "inconsistent"

    _grid(root, {0.99: {"rnn": [0.4] * 3, "lru": [1e-3] * 3}, 0.68: {"rnn": [1e-1] * 3, "lru": [1e-3] * 3}})
    assert _rows(tmp_path).set_index("task.nu0").loc[0.68].verdict == "inconsistent"  # x100 apart: not "equal"


def test_a_grid_below_their_budget_is_under_budget_whatever_it_shows(tmp_path):
    """500 steps of batch 64 (the recorded cut) against their 10,000 of batch 128: 2.5%, never "inconsistent"."""
    _grid(tmp_path / "runs", {0.99: {"rnn": [2e-3] * 3, "lru": [1e-3] * 3}, 0.68: {"rnn": [1e-3] * 3,
                                                                                  "lru": [1e-3] * 3}},
          trainer={"batch_size": 64, "max_steps": 500})
    rows = _rows(tmp_path).set_index("task.nu0")
    assert set(rows.loc[[0.99, 0.68]].verdict) == {"under budget (2.5% of theirs)"}
    assert rows.loc[0.99].solved == "0/3"  # the interval is still shown


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
