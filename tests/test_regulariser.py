"""Pascanu, Mikolov & Bengio 2013's regulariser Ω (gradlab.models.regulariser) against the formula written out
literally,
its config, and a training run through the real command line."""

import csv
import math

import pytest
import torch
from conftest import read_json, run_entry

from gradlab.core.errors import ConfigError
from gradlab.models.net import RecurrentNet
from gradlab.models.regulariser import BOUND, pascanu_omega
from gradlab.tasks.adding import AddingTask

H, T, B = 3, 5, 4


def _net(kind: str, layers: int = 1, seed: int = 0) -> RecurrentNet:
    torch.manual_seed(seed)
    return RecurrentNet(kind, AddingTask(seq_len=T).spec(), hidden_size=H, num_layers=layers).double()


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(B, T, 2, generator=gen, dtype=torch.float64), torch.rand(B, 1, generator=gen,
                                                                               dtype=torch.float64)


def _loss(out: torch.Tensor, y: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
    return (out[rows] - y[rows]).square().mean()


def _step_of(net: RecurrentNet, layer: int, v: torch.Tensor, two: bool):
    """One step of one sequence as a function of (u, the state as one vector): the new state as one vector."""
    def step(u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return torch.cat(net.cell.step(net, layer, v, u, (s[:H], s[H:]) if two else (s,)))
    return step


def _direct(net: RecurrentNet, x: torch.Tensor, y: torch.Tensor):
    """Ω summed literally, one (layer, k, b) at a time: g from autograd, the step's Jacobian ∂state_{k+1}/∂state_k
    from torch.autograd.functional.jacobian, its dependence on W_hh written out as J(W) = D_u W_hh + D_s with D_u =
    ∂step/∂u and D_s = ∂step/∂state at the recorded point (constants: their code's TT.grad(tmp_reg, W_hh) with g and
    h free variables). Returns Ω with the live W_hh (differentiable) and Ω from the whole steps' Jacobians."""
    out, traces = net.forward_unrolled(x, record=True)
    loss = _loss(out, y)
    two = len(net.cell.state) == 2
    terms, terms_full = [], []
    for layer, tr in enumerate(traces):
        _, w_hh, _, b_hh = net.weights(layer)
        w_const, b_const = w_hh.detach(), b_hh.detach()
        parts = [tr.h, tr.c] if two else [tr.h]
        g_all = torch.autograd.grad(loss, [t for p in parts for t in p], retain_graph=True, allow_unused=True)
        g_all = [torch.zeros(B, H, dtype=torch.float64) if g is None else g for g in g_all]
        for k in range(T):
            prev_h = tr.h0 if k == 0 else tr.h[k - 1]
            prev_c = torch.zeros(B, H, dtype=torch.float64) if k == 0 or not two else tr.c[k - 1]
            for b in range(B):
                g = torch.cat([g_all[k][b]] + ([g_all[T + k][b]] if two else []))
                v, h_p, c_p = tr.v[k][b].detach(), prev_h[b].detach(), prev_c[b].detach()
                u_p = h_p @ w_const.T + b_const
                point = torch.cat([h_p, c_p]) if two else h_p
                step = _step_of(net, layer, v, two)
                J_full = torch.autograd.functional.jacobian(  # the whole step, h_k -> h_{k+1} (u recomputed)
                    lambda s, step=step, w=w_const, c=b_const: step(s[:H] @ w.T + c, s), point)
                D_u = torch.autograd.functional.jacobian(lambda u, step=step, point=point: step(u, point), u_p)
                D_s = torch.autograd.functional.jacobian(lambda s, step=step, u_p=u_p: step(u_p, s), point)
                J = torch.cat([D_u @ w_hh + D_s[:, :H], D_s[:, H:]], dim=1)  # live W_hh
                assert torch.allclose(J.detach(), J_full, rtol=0, atol=1e-14)  # the chain rule the module uses
                den = g.square().sum()
                if den >= BOUND:
                    terms.append(((g @ J).square().sum() / den - 1) ** 2)
                    terms_full.append(((g @ J_full).square().sum() / den - 1) ** 2)
    n = max(len(terms), 1)
    return sum(terms) / n, sum(terms_full) / n


@pytest.mark.parametrize("kind,layers", [("rnn", 1), ("rnn", 2), ("lstm", 1), ("gru", 1)])
def test_omega_and_its_gradient_match_the_formula_summed_literally(kind, layers):
    """Value and gradient w.r.t. every parameter, float64, H=3, T=5, B=4.

    Tolerance: both sides hold the same g (one autograd call each, on the same graph) and differ only in the order
    of a few sums of products of O(1) numbers: each ratio is a dot of ≤ 2H terms per entry of g·J, then ≤ 2H squares,
    so its relative error is below ~4H·u (u = 2^-53 ≈ 1.1e-16), i.e. ~1.3e-15 here; (r − 1)² adds 2r/|r − 1| of it,
    and the mean over ≤ 2·T·B terms ~2·T·B·u more. With Ω and r of order 1 on these nets that is ~1e-14 at worst
    (measured: ≤ 1.1e-16 in value, ≤ 5.6e-17 in gradient); rtol 1e-10 with atol 1e-12 leaves 100× more, and is
    far below what a wrong formula moves (a dropped step, norms for squared norms: ~1e-2)."""
    net = _net(kind, layers)
    x, y = _batch()
    direct, full = _direct(net, x, y)
    out, traces = net.forward_unrolled(x, record=True)
    omega = pascanu_omega(net, traces, _loss(out, y))
    assert direct.item() > 1e-3  # a nontrivial value
    assert torch.allclose(omega, direct, rtol=1e-10, atol=1e-12) and torch.allclose(omega, full, rtol=1e-10, atol=1e-12)

    params = dict(net.named_parameters())
    ours = torch.autograd.grad(omega, list(params.values()), allow_unused=True)
    theirs = torch.autograd.grad(direct, list(params.values()), allow_unused=True)
    for name, a, b in zip(params, ours, theirs, strict=True):
        if "weight_hh" in name:  # the only parameters Ω reaches (their TT.grad(tmp_reg, W_hh))
            assert a is not None and b is not None and a.abs().max() > 1e-6, name
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), (name, (a - b).abs().max())
        else:
            assert (a is None or not a.any()) and (b is None or not b.any()), name


def test_the_rnn_omega_is_their_theano_expression():
    """RNN.py l. 196-209, transcribed: tmp_x = ‖(d_ht[1:] ⊙ (1 − h²)) W_hhᵀ‖² (their W_hh is gradlab's transposed),
    tmp_y = ‖d_ht[1:]‖², Σ_k mean_b (tmp_x/tmp_y − 1)² / Σ_k mean_b [tmp_y ≥ bound]; and its W_hh-gradient with
    d_ht and h free variables, α·∂Ω/∂W_hh being what their update adds. Tolerance as above."""
    net = _net("rnn")
    x, y = _batch()
    out, traces = net.forward_unrolled(x, record=True)
    loss = _loss(out, y)
    d_ht = torch.stack(torch.autograd.grad(loss, traces[0].h, retain_graph=True))  # dC/dh_1 … dC/dh_T
    ht = torch.stack(traces[0].h).detach()
    w_hh = net.weights(0)[1]
    tmp_x = ((d_ht * (1 - ht ** 2)) @ w_hh).square().sum(2)
    tmp_y = d_ht.square().sum(2)
    kept = tmp_y >= 1e-20
    theirs = (torch.where(kept, tmp_x / tmp_y, 1.0) - 1).square().mean(1).sum() / kept.double().mean(1).sum()
    omega = pascanu_omega(net, traces, loss)
    assert torch.allclose(omega, theirs, rtol=1e-10, atol=1e-12)
    g_ours, g_theirs = (torch.autograd.grad(o, w_hh, retain_graph=True)[0] for o in (omega, theirs))
    assert torch.allclose(g_ours, g_theirs, rtol=1e-10, atol=1e-12)


def test_a_step_without_gradient_is_left_out():
    """Sequences the loss does not see have g = 0 at every step: they are left out of the mean (their `bound`), so
    Ω equals that of the sequences the loss sees, alone. No sequence seen: Ω = 0 (theirs would be 0/0)."""
    net = _net("rnn")
    x, y = _batch()
    out, traces = net.forward_unrolled(x, record=True)
    some = pascanu_omega(net, traces, _loss(out, y, slice(0, 2)))
    out2, traces2 = net.forward_unrolled(x[:2], record=True)
    alone = pascanu_omega(net, traces2, _loss(out2, y[:2]))
    assert torch.allclose(some, alone, rtol=1e-12, atol=0)
    assert pascanu_omega(net, traces, 0 * out.sum()).item() == 0.0


def test_a_bad_regulariser_value_is_one_line_naming_it_and_the_choices(tmp_path):
    for args, message in [(["regulariser=l2"], "regulariser='l2' is not a valid choice; choose one of: none, pascanu"),
                          (["regulariser.name=l2"], "regulariser.name='l2' is not a valid choice; choose one of: "
                                                    "none, pascanu"),
                          (["regulariser=pascanu", "regulariser.alpha=-1"],
                           "regulariser.alpha=-1.0 is out of range: must be a finite number >= 0")]:
        result = run_entry("train.py", *args, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr == f"error: {message}\n", result.stderr
    assert list(tmp_path.iterdir()) == []
    from gradlab.models.regulariser import RegulariserConfig

    with pytest.raises(ConfigError, match="regulariser.name='l2' is not a valid choice; choose one of: none, pascanu"):
        RegulariserConfig(name="l2")


def test_a_regularised_run_through_the_command_line_records_a_finite_omega(tmp_path):
    """The pascanu13 setup shrunk by the smoke profile: train/omega on every logged step, finite; train/loss the
    task's loss alone."""
    result = run_entry("train.py", "paper=pascanu13_addition", "profile=smoke", "task.seq_len=20",
                     "trainer.max_steps=6", "trainer.val_every_n_steps=3", "logger.mode=disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "addition_pascanu-T20-rnn-norm1.0-s0"
    assert read_json(run_dir / "metrics.json")["status"] == "completed"
    with open(run_dir / "metrics.csv") as f:
        steps = [r for r in csv.DictReader(f) if r.get("train/loss")]
    omegas = [float(r["train/omega"]) for r in steps]
    assert len(omegas) == 6 and all(math.isfinite(o) and o >= 0 for o in omegas), omegas
    assert "regulariser:\n  name: pascanu\n  alpha: 2.0" in (run_dir / "config.yaml").read_text()
