"""The BPTT probe against exact answers: a worked LSTM example (tests/data/), autograd, finite differences, theory."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gradlab import cells
from gradlab.models.net import LayerTrace, RecurrentNet
from gradlab.probe.bptt import ProbeConfig, bptt_probe, decay_rate, horizon, probe_rows, weight_contributions
from gradlab.tasks import TaskSpec
from gradlab.tasks.adding import AddingTask, generate_adding

WORKED = Path(__file__).resolve().parent / "data" / "lstm_bptt_worked_example.json"  # inputs and expected norms
MODELS = cells.names()  # every registered cell


def raw_spec(input_size, T):
    return TaskSpec("raw", T, T, input_size, 1, "regression", False, False, 1.0, None)


def worked_model():
    """The worked example's LSTM (gates [i, f, o, g], weights acting on the right) as a gradlab RecurrentNet
    (i, f, g, o)."""
    ex = json.loads(WORKED.read_text())["inputs"]
    Wx, Wh, b = (torch.tensor(ex[k], dtype=torch.float64) for k in ("Wx", "Wh", "b"))
    H = Wh.shape[0]
    order = torch.cat([torch.arange(0, H), torch.arange(H, 2 * H), torch.arange(3 * H, 4 * H),
                       torch.arange(2 * H, 3 * H)])  # [i, f, o, g] -> [i, f, g, o]
    model = RecurrentNet("lstm", raw_spec(Wx.shape[0], 3), hidden_size=H).double()
    w_ih, w_hh, b_ih, b_hh = model.weights(0)
    with torch.no_grad():
        w_ih.copy_(Wx.T[order])
        w_hh.copy_(Wh.T[order])
        b_ih.copy_(b[order])
        b_hh.zero_()
    x = torch.tensor(ex["x"], dtype=torch.float64)
    h0 = torch.tensor(ex["h0"], dtype=torch.float64).unsqueeze(0)
    dout = torch.tensor(ex["dout"], dtype=torch.float64)
    return model, x, h0, dout


@pytest.mark.numerics
def test_worked_lstm_example_components():
    expected = json.loads(WORKED.read_text())["expected_component_norms"]
    model, x, h0, dout = worked_model()
    for loss_name, comps in expected.items():
        k = int(loss_name[1:])
        result = bptt_probe(model, x, lambda out, tr, k=k: (dout[:, k - 1] * tr[0].h[k - 1]).sum(), h0=h0,
                            batch_scale=1.0)
        got = result.layers[0]["dW_ih_norm"]
        for step, value in comps.items():
            # the seed's numpy code and this probe compute the same 3-step formula in float64: they differ by
            # rounding, ~10 ulp (1e-16 relative) of values ~0.1; 1e-10 leaves 10^5 of room and still fails a wrong
            # gate order or weight layout, which moves them by ~0.1
            assert abs(got[int(step)].item() - value) < 1e-10, (loss_name, step)
        assert torch.all(got[k:] == 0)  # steps after k-1 do not reach L_k


def mse_last(y):
    return lambda out, tr: F.mse_loss(out, y.to(out.dtype))


@pytest.mark.numerics
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", MODELS)
def test_contributions_sum_to_the_autograd_gradient(kind, dtype):
    """Σ_t (∂L/∂W)^(t) == ∂L/∂W (W_hh: the matrix the step multiplies, a parametrized one as computed). Both sides
    add the same products δv_t[b]·x_t[b] (δu_t[b]·h_{t-1}[b]) over t and b, in different orders,
    so they differ by rounding alone: at most 2·γ_n·(Σ_t |δa_t|ᵀ|x_t|) entrywise with γ_n = n·u/(1 − n·u) and n = T·B
    (Higham, Accuracy and Stability, §3.1: a bound for every summation order, so for every BLAS kernel)."""
    torch.manual_seed(0)
    T, B = 60, 16
    model = RecurrentNet(kind, AddingTask(seq_len=T).spec(), 32, num_layers=2)
    model = model.to(dtype)
    x, y = generate_adding(1, T, B)
    result = bptt_probe(model, x, mse_last(y), keep_dW=True)
    n = T * B
    gamma = n * torch.finfo(dtype).eps / 2 / (1 - n * torch.finfo(dtype).eps / 2)
    # a parametrized W_hh is computed once: the tensor autograd differentiates
    with torch.nn.utils.parametrize.cached():
        weights = [model.weights(layer)[:2] for layer in range(2)]
        out, traces = model.forward_unrolled(x, record=True)
        loss = F.mse_loss(out, y.to(dtype))
        autograd = torch.autograd.grad(loss, [w for pair in weights for w in pair], retain_graph=True)
        for layer, trace in enumerate(traces):
            grad_v = torch.autograd.grad(loss, trace.v, retain_graph=True)
            grad_u = torch.autograd.grad(loss, trace.u, retain_graph=True)
            magnitudes = weight_contributions(
                LayerTrace(x=[v.abs() for v in trace.x], h=[v.abs() for v in trace.h], h0=trace.h0.abs()),
                [g.abs() for g in grad_v], [g.abs() for g in grad_u])
            for i, name in enumerate(("W_ih", "W_hh")):
                total, grad = result.dW[layer][name].sum(0), autograd[2 * layer + i]
                bound = 2 * gamma * magnitudes[name].sum(0)
                assert ((total - grad).abs() <= bound).all(), (layer, name, ((total - grad).abs() / bound).max())
                assert (total - grad).norm() < 1e-3 * grad.norm()  # and the bound itself is tight enough to matter


def continue_from(model, x, t, h, c):
    """The loss as a function of the state at step t: run steps t+1.. from (h, c) and read out."""
    rest = x[:, t + 1:]
    if rest.shape[1] == 0:  # the head's read of h_t (and of x_t, for a cell with a feedthrough D x_t)
        return model.readout(h.unsqueeze(1), model.encode(x[:, t:t + 1]))
    out, _ = model.forward_unrolled(rest, h0=h.unsqueeze(0), c0=None if c is None else c.unsqueeze(0))
    return out


# Central differences in float64 are the reference for ‖∂ℓ/∂h_t‖ and ‖∂ℓ/∂c_t‖. Their own error, per component, with
# step eps and unit round-off u = 2^-53:
#   round-off   ≤ u·max|ℓ|/eps: each of ℓ(h + eps·e_i), ℓ(h − eps·e_i) is off by ~u·|ℓ| (2e-12 at eps = 1e-4, ℓ ~ 2)
#   truncation  = eps²·ℓ'''/6 + O(eps^4), estimated as |D(eps) − D(2·eps)|/3 (the eps² term quadruples as eps doubles)
# eps = 1e-4 (near the optimum, where round-off is twice the truncation) keeps their sum below a quarter of FD_RTOL of
# the smallest norm here (the rnn's t=0: 5e-5, 36,000x below its t=T-1; there round-off is 7e-8 of it, truncation
# 2e-8), and the test checks that at every t, so the comparison cannot pass or fail by the reference's own error.
# (eps = 1e-6 made round-off alone 2e-6 of that norm, which crossed a 1e-6 tolerance on some CPUs.)
FD_EPS = 1e-4
FD_RTOL = 1e-6  # the claim: the probe agrees with the reference to 1e-6 relative at every t (and fails at 1e-5)
FD_REF_BUDGET = 0.25  # the reference's error may use at most this fraction of the tolerance


def fd_state_gradient(model, x, t, which, per_sample_losses, traces, eps):
    """∂ℓ_b/∂h_t (or ∂ℓ_b/∂c_t) by central differences of the loss of the steps after t: (B, H)."""
    H = model.hidden_size
    h = traces[0].h[t].detach()
    c = traces[0].c[t].detach() if traces[0].c else None
    grad = torch.zeros(x.shape[0], H, dtype=torch.float64)
    for i in range(H):
        e = torch.zeros(H, dtype=torch.float64)
        e[i] = eps
        if which == "h":
            hp, hm, cp, cm = h + e, h - e, c, c
        else:  # the LSTMs' h_t = o_t tanh(c_t), written here independently: moving c_t moves h_t with it
            a = (traces[0].v[t] + traces[0].u[t]).detach()
            cp, cm = c + e, c - e
            if model.kind == "lstm97":  # rows [input gates, output gates, cell inputs], one gate a block of s cells
                s = model.options.get("block_size", 1)
                o = torch.sigmoid(a[:, H // s:2 * H // s]).repeat_interleave(s, dim=1)
                hp, hm = o * (2 * torch.sigmoid(cp) - 1), o * (2 * torch.sigmoid(cm) - 1)  # their h in [-1, 1]
            else:
                o = torch.sigmoid(a[:, 3 * H:])
                hp, hm = o * torch.tanh(cp), o * torch.tanh(cm)
        with torch.no_grad():
            lp = per_sample_losses(continue_from(model, x, t, hp, cp))
            lm = per_sample_losses(continue_from(model, x, t, hm, cm))
        grad[:, i] = (lp - lm) / (2 * eps)
    return grad


def fd_reference(model, x, per_sample_losses, which):
    """(per-step norms by central differences, the bound on each one's error) for t = 0..T-1."""
    _, traces = model.forward_unrolled(x, record=True)
    with torch.no_grad():
        ell = per_sample_losses(model.forward_unrolled(x)[0]).abs().max().item()
    roundoff = 2.0 ** -53 * ell / FD_EPS * math.sqrt(model.hidden_size)  # over a norm of H components
    norms, errors = [], []
    for t in range(x.shape[1]):
        g1 = fd_state_gradient(model, x, t, which, per_sample_losses, traces, FD_EPS)
        g2 = fd_state_gradient(model, x, t, which, per_sample_losses, traces, 2 * FD_EPS)
        norms.append(g1.norm(dim=1).mean().item())
        errors.append((g1 - g2).norm(dim=1).mean().item() / 3 + roundoff)
    return norms, errors


def assert_matches_reference(probe, reference, errors, label):
    """probe == reference to FD_RTOL at every t, with a reference accurate enough to tell (FD_REF_BUDGET)."""
    for t, (p, ref, err) in enumerate(zip(probe, reference, errors, strict=True)):
        assert err <= FD_REF_BUDGET * FD_RTOL * ref, f"{label} t={t}: the reference itself is off by {err / ref:.1e}"
        assert abs(p - ref) <= FD_RTOL * ref, f"{label} t={t}: probe {p!r} vs finite difference {ref!r}"


def fd_case(kind):
    """A small float64 net and batch, and its per-sample loss ℓ_b (the batch loss is their mean)."""
    torch.manual_seed(1)
    T, H, B = 8, 4, 3
    model = RecurrentNet(kind, raw_spec(2, T), H).double()
    if not model.cell.smooth:  # the IRNN's N(0, 1e-6) input weights put pre-activations within eps of ReLU's kink
        with torch.no_grad():
            model.weights(0)[0].normal_()
    x = torch.randn(B, T, 2, dtype=torch.float64)
    y = torch.randn(B, 1, dtype=torch.float64)
    return model, x, lambda out: ((out - y) ** 2).sum(1)


def assert_no_kink_within_reach(model, x):
    """Central differences of a piecewise step are exact only where no perturbation crosses a kink: a step of 2·eps
    in h_t moves a later pre-activation by at most 2·eps·max(1, ‖W_hh‖₂)^T (φ is 1-Lipschitz: ReLU, modReLU)."""
    _, traces = model.forward_unrolled(x, record=True)
    v, u = torch.stack(traces[0].v), torch.stack(traces[0].u)
    distance = model.cell.kink_distance(model, 0, v, u)
    if distance is not None:
        reach = 2 * FD_EPS * max(1.0, float(torch.linalg.matrix_norm(model.weights(0)[1].detach(), ord=2))) ** len(v)
        assert distance.min() > reach, (float(distance.min()), reach)


@pytest.mark.numerics
@pytest.mark.parametrize("kind", MODELS)
def test_dL_dh_matches_finite_differences(kind):
    model, x, per_sample_losses = fd_case(kind)
    assert_no_kink_within_reach(model, x)
    result = bptt_probe(model, x, lambda out, tr: per_sample_losses(out).mean())
    for which in cells.get(kind).state:
        reference, errors = fd_reference(model, x, per_sample_losses, which)
        assert_matches_reference(result.layers[0][f"dL_d{which}_norm"].tolist(), reference, errors, f"{kind} {which}")


@pytest.mark.numerics
@pytest.mark.parametrize("t", [0, 3, 7])
def test_the_finite_difference_check_fails_a_probe_off_by_1e_5(t):
    """The comparison has the power it claims: the rnn's probe, off by 1e-5 relative at one t, fails it."""
    model, x, per_sample_losses = fd_case("rnn")
    probe = bptt_probe(model, x, lambda out, tr: per_sample_losses(out).mean()).layers[0]["dL_dh_norm"].tolist()
    reference, errors = fd_reference(model, x, per_sample_losses, "h")
    assert_matches_reference(probe, reference, errors, "rnn h")
    probe[t] *= 1 + 1e-5
    with pytest.raises(AssertionError, match=f"rnn h t={t}: probe"):
        assert_matches_reference(probe, reference, errors, "rnn h")



@pytest.mark.numerics
@pytest.mark.parametrize("alpha", [0.9, 1.0, 1.1])
def test_linear_rnn_gradient_scales_as_alpha_power(alpha):
    """Linear RNN, W_hh = αQ: ‖∂L/∂h_k‖ = α^(T-1-k)·‖∂L/∂h_{T-1}‖ exactly (docs/theory.md, "The exact
    case").

    In float64 it holds up to how orthogonal the computed Q is and the rounding of each step's product: every step
    back distorts a norm by at most ε_Q/2 + γ_H (ε_Q = ‖QᵀQ − I‖₂, γ_H = H·u/(1 − H·u)), so after T−1 steps the
    relative error is at most (T−1)·(ε_Q + 2γ_H); the scalars derived from them inherit that bound.
    """
    torch.manual_seed(2)
    T, H = 40, 16
    model = RecurrentNet("rnn", raw_spec(3, T), H).double()
    q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64))
    with torch.no_grad():
        model.weights(0)[1].copy_(alpha * q)
    model.acts[0] = torch.nn.Identity()
    x = torch.randn(4, T, 3, dtype=torch.float64)
    result = bptt_probe(model, x, lambda out, tr: out.square().sum(1).mean())
    norms = result.layers[0]["dL_dh_norm"]
    u = 2.0 ** -53
    eps_q = torch.linalg.matrix_norm(q.T @ q - torch.eye(H, dtype=torch.float64), ord=2).item()
    tol = (T - 1) * (eps_q + 2 * H * u / (1 - H * u))
    assert tol < 1e-11  # a bound that can tell a wrong exponent (a 1-step shift is a factor α away)
    k = torch.arange(T, dtype=torch.float64)
    expected = alpha ** (T - 1 - k) * norms[-1]
    torch.testing.assert_close(norms, expected, rtol=tol, atol=0)
    assert decay_rate(norms) == pytest.approx(math.log(alpha), abs=tol)
    assert result.scalars["decay_rate_predicted"] == pytest.approx(math.log(alpha), abs=tol)  # mean-field theory
    assert result.scalars["decay_rate_bound"] == pytest.approx(math.log(alpha), abs=tol)  # tight when linear


@pytest.mark.numerics
def test_nfg_cell_gradient_is_constant_on_the_direct_path():
    """f ≡ 1 and no path through h (W_hh = 0): ∂c_t/∂c_{t-1} = I, so ‖∂L/∂c_t‖ is the same at every t."""
    torch.manual_seed(3)
    T, H = 50, 8
    model = RecurrentNet("nfg_lstm", raw_spec(2, T), H)
    with torch.no_grad():
        model.weights(0)[1].zero_()
    w = torch.randn(H)
    x = torch.randn(5, T, 2)
    norms = bptt_probe(model, x, lambda out, tr: (tr[0].c[-1] @ w).mean()).layers[0]["dL_dc_norm"]
    # exactly: each step back multiplies by f = sigmoid(50) == 1.0 and adds the h-path's W_hh·δa = 0·δa = 0, both
    # exact in IEEE arithmetic whatever the kernel
    assert torch.all(norms == norms[-1])


@pytest.mark.numerics

def test_horizon_and_decay_rate():
    norms = torch.tensor([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], dtype=torch.float64)
    assert horizon(norms) == 4  # t=1 (4 steps back from t=5) is the first below 1e-3 of the last value
    assert horizon(torch.ones(7, dtype=torch.float64)) == 7
    assert decay_rate(norms) == pytest.approx(-math.log(10.0))


# ------------------------------------------------------------------------------ the probe during training

BPTT_COLUMNS = ["step", "layer", "t", "quantity", "value"]


def _tiny_curves_args(kind):
    """(net, layer, v, u) of a tiny net: what a cell's `curves` takes, to ask it which curves it records."""
    net = RecurrentNet(kind, raw_spec(2, 3), 4)
    G = cells.get(kind).gates * 4
    return net, 0, torch.zeros(3, 2, G), torch.zeros(3, 2, G)


@pytest.mark.parametrize("model", MODELS)
def test_every_cells_probe_rows_hold_its_own_curves_and_the_memory_measurements(model):
    """What bptt.csv gets per cell, without a Trainer (the training path below runs on one cell of each kind)."""
    torch.manual_seed(0)
    net = RecurrentNet(model, raw_spec(2, 6), 4).double()
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    result = bptt_probe(net, x, lambda out, traces: out.pow(2).mean(), memory=ProbeConfig(sensitivity_directions=2,
                                                                                            hessian_iters=2))
    rows = probe_rows(7, result)
    cell = cells.get(model)
    own = {k for k in cell.curves(*_tiny_curves_args(model)) if not k.startswith("_")}
    expected = {"dL_dh_norm", "dW_hh_norm", "dW_ih_norm", "dh_dtheta_norm"} | own | (
        {"dL_dc_norm", "c_norm"} if "c" in cell.state else set())
    assert {r[3] for r in rows} == expected
    assert len(rows) == 6 * len(expected) and {r[:2] for r in rows} == {(7, 0)}
    assert sorted({r[2] for r in rows}) == list(range(6))
    assert all(math.isfinite(r[4]) and r[4] >= 0 for r in rows)
    assert math.isfinite(result.scalars["sensitivity"]) and math.isfinite(result.scalars["hessian_top"])


# one cell of each kind through a Trainer: fused (rnn), two states (lstm), frozen forget gate (nfg_lstm), truncated
# gradient and blocks (lstm97), a parametrized W_hh with a scan and a feedthrough (lru)
@pytest.mark.parametrize("model", ["rnn", "lstm", "nfg_lstm", "lstm97", "lru"])
def test_probe_during_training_writes_table_scalars_and_figures(train, model):
    # lstm97's truncated gradient (its default) leaves ∂ℓ/∂h_t = 0 before the last step: no decay rate to fit on h
    full = ["model.truncate=false"] if "truncate" in cells.get(model).option_names() else []
    metrics, run_dir = train("profile=smoke", f"model={model}", "task.seq_len=15", "trainer.max_steps=20",
                             "probe.every_n_steps=8", *full)
    import pandas as pd

    df = pd.read_csv(run_dir / "bptt.csv")
    assert list(df.columns) == BPTT_COLUMNS
    assert sorted(df.step.unique()) == [0, 8, 16, 20]  # start, every 8 steps, end
    cell = cells.get(model)
    own = {k for k in cell.curves(*_tiny_curves_args(model)) if not k.startswith("_")}
    expected = {"dL_dh_norm", "dW_hh_norm", "dW_ih_norm", "dh_dtheta_norm"} | own | (
        {"dL_dc_norm", "c_norm"} if "c" in cell.state else set())
    assert set(df.quantity) == expected
    counts = df.groupby(["step", "layer", "quantity"]).t.agg(["count", "min", "max"])  # the lru: two layers
    assert (counts["count"] == 15).all() and (counts["min"] == 0).all() and (counts["max"] == 14).all()
    assert (df.value >= 0).all() and df.value.notna().all()
    if cell.name == "nfg_lstm":
        assert (df[df.quantity == "forget_gate_mean"].value == 1.0).all()
    for key in ("bptt_decay_rate", "bptt_horizon", "bptt_decay_rate_predicted", "bptt_sensitivity",
                "bptt_hessian_top"):
        assert math.isfinite(metrics[key]), key
    assert 1 <= metrics["bptt_horizon"] <= 15
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert "bptt_dL_dh_norm_l0.png" in figures and "bptt_heatmap_dL_dh_norm_l0.png" in figures
    assert ("bptt_dL_dc_norm_l0.png" in figures) == ("c" in cell.state)
    logged = pd.read_csv(run_dir / "metrics.csv")
    assert logged["bptt/decay_rate"].notna().sum() == 4  # the scalars at every probe, in the CSV log too


def test_the_memory_measurements_run_at_the_last_probe_and_on_their_schedule(train, tmp_path):
    """dh_dtheta_norm rows and the bptt/sensitivity scalars: at the last probe only by default, also every
    probe.memory_every_n_steps with it; the end of training replaces a scheduled probe of the same step (no step
    twice)."""
    import pandas as pd

    base = ("profile=smoke", "model=gru", "task.seq_len=9", "trainer.max_steps=12", "probe.every_n_steps=4")
    for every, expected in ((0, [12]), (8, [0, 8, 12])):
        metrics, run_dir = train(*base, f"probe.memory_every_n_steps={every}", tmp=tmp_path / f"every{every}")
        df = pd.read_csv(run_dir / "bptt.csv")
        assert sorted(df.step.unique()) == [0, 4, 8, 12] and not df.duplicated(["step", "layer", "t", "quantity"]).any()
        assert sorted(df[df.quantity == "dh_dtheta_norm"].step.unique()) == expected, every
        logged = pd.read_csv(run_dir / "metrics.csv")
        assert logged["bptt/sensitivity"].notna().sum() == len(expected)
        assert math.isfinite(metrics["bptt_sensitivity"]) and math.isfinite(metrics["bptt_hessian_top"])


def test_probe_follows_every_layer_and_the_copy_loss(train):
    _, run_dir = train("profile=smoke", "task=copy", "task.seq_len=16", "task.copy_len=3", "model=lstm",
                       "model.num_layers=2", "trainer.max_steps=5", "probe.every_n_steps=5")
    import pandas as pd

    df = pd.read_csv(run_dir / "bptt.csv")
    assert sorted(df.layer.unique()) == [0, 1]
    last = df[(df.step == 5) & (df.layer == 1) & (df.quantity == "dL_dh_norm")].sort_values("t").value.to_numpy()
    assert len(last) == 3 + 16 + 3 and (last > 0).all()  # copy: symbols, T blanks, recall; the loss reaches back
    assert {p.name for p in (run_dir / "figures").glob("*_l1.png")} >= {"bptt_dL_dh_norm_l1.png"}


def test_probe_can_be_switched_off(train):
    metrics, run_dir = train("profile=smoke", "probe.enabled=false", "trainer.max_steps=3")
    assert not (run_dir / "bptt.csv").exists() and "bptt_decay_rate" not in metrics
