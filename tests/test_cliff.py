"""Pascanu et al.'s cliff (gradlab.theory.cliff, pipelines/cliff.py): the hand-written forward-mode gradient against
autograd and finite differences where the wall is steep, the wall resolved by refinement, and clipping's effect."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_entry

from gradlab.theory.cliff import Cliff

U = 2.0 ** -53
C = Cliff()


def autograd_grad(w: float, b: float) -> tuple[float, float]:
    W = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    B = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    x = torch.full_like(W, C.x0)
    for _ in range(C.T):
        x = W * torch.sigmoid(x) + B
    loss = (torch.sigmoid(x) - C.target) ** 2
    gw, gb = torch.autograd.grad(loss, [W, B])
    return float(gw), float(gb)


@pytest.fixture(scope="module")
def wall():
    return C.slice_max(-2.5, (3.0, 7.0))


@pytest.mark.numerics
@pytest.mark.parametrize("where", ["wall", "plain"])
def test_the_gradient_is_autograds_and_the_finite_differences(wall, where):
    """On the wall (‖∇ℓ‖ ~ 1.6e3) and on the plain beside it. Against autograd (the same chain rule, reverse order):
    rounding only, a few hundred u relative over T=50 steps, so 1e-11. Against central differences D(h): the
    truncation error of D(h/2) is estimated by |D(h) − D(h/2)| (it shrinks 4-fold a halving), the round-off by
    4u·|ℓ|/h."""
    w, b = (wall["w_at_max"], -2.5) if where == "wall" else (4.0, -3.5)
    _, gw, gb = C.loss_and_grad(w, b)
    aw, ab = autograd_grad(w, b)
    assert abs(float(gw) - aw) <= 1e-11 * abs(aw) and abs(float(gb) - ab) <= 1e-11 * abs(ab)
    h = 1e-6
    for i, g in ((0, float(gw)), (1, float(gb))):
        def f(e, i=i):
            return float(C.loss_and_grad(w + e * (i == 0), b + e * (i == 1))[0])
        d1, d2 = (f(h) - f(-h)) / (2 * h), (f(h / 2) - f(-h / 2)) / h
        assert abs(g - d2) <= abs(d1 - d2) + 4 * U * f(0) / h, (g, d1, d2)
    if where == "wall":
        assert float(torch.hypot(gw, gb)) > 1e3  # steep: the case a coarse difference or float32 gets wrong


def test_the_wall_is_resolved_by_refinement_and_towers_over_the_plain(wall):
    grid = C.grad_norm(torch.linspace(3.0, 7.0, 2001, dtype=torch.float64), torch.tensor(-2.5, dtype=torch.float64))
    assert wall["grad_norm_max"] >= grid.max() and wall["grad_norm_max"] > 1e4 * wall["grad_norm_median"]
    assert wall["bracket"] < 1e-12
    with pytest.raises(TypeError, match="float64"):
        C.loss_and_grad(torch.tensor(5.0), torch.tensor(-2.5))  # float32 would round w to 5e-7 steps


def test_norm_clipping_keeps_the_step_that_the_wall_would_throw():
    """From the same start: plain SGD meets the wall and is thrown hundreds of units away; clipped at norm 1, no step
    is longer than lr."""
    runs = {clip: C.sgd((5.3, -2.8), 0.05, 60, clip) for clip in (None, 1.0)}
    steps = {clip: ((df.w.diff() ** 2 + df.b.diff() ** 2) ** 0.5).max() for clip, df in runs.items()}
    assert steps[None] > 100 and steps[1.0] <= 0.05 * (1 + 1e-12)
    assert runs[1.0].clipped.any() and not runs[None].clipped.any()


def test_the_stage_writes_its_data_and_figure(tmp_path):
    done = run_entry("cliff.py", "--out", str(tmp_path / "cliff"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "cliff"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wall"]["grad_norm_max"] > 1e6 * summary["wall"]["grad_norm_median"]
    assert summary["largest_step"]["SGD"] > 100 and summary["largest_step"]["SGD, norm clipped at 1"] <= 0.05 + 1e-12
    assert {p.name for p in out.iterdir()} == {"surface.csv", "slices.csv", "trajectories.csv", "summary.json",
                                               "figures", "wandb"}
    from gradlab.tracking.wandb_log import logged_keys

    assert {"cliff/map", "cliff/trajectories", "cliff/grad_norm_max"} <= logged_keys(
        next((out / "wandb").glob("offline-run-*")))
    assert (out / "figures" / "cliff.png").stat().st_size > 10_000
