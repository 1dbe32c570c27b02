"""The BPTT probe against exact answers: seed 000's worked example, autograd, finite differences, theory."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gradlab.models import RecurrentNet
from gradlab.probes import bptt_probe, decay_rate, horizon
from gradlab.tasks import TaskSpec, generate_adding, task_spec

SEED000 = Path(__file__).resolve().parent / "data" / "seed000_lstm_bptt_example.json"  # copy of shared/reference/
MODELS = ("rnn", "lstm", "nfg_lstm")


def raw_spec(input_size, T):
    return TaskSpec("raw", T, T, input_size, 1, "regression", False, False, 1.0, None)


def seed000_model():
    """seed 000's LSTM (gates [i, f, o, g], weights acting on the right) as a gradlab RecurrentNet (i, f, g, o)."""
    ex = json.loads(SEED000.read_text())["inputs"]
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


def test_seed000_worked_example_components():
    expected = json.loads(SEED000.read_text())["expected_component_norms"]
    model, x, h0, dout = seed000_model()
    for loss_name, comps in expected.items():
        k = int(loss_name[1:])
        result = bptt_probe(model, x, lambda out, tr, k=k: (dout[:, k - 1] * tr[0].h[k - 1]).sum(), h0=h0,
                            batch_scale=1.0)
        got = result.layers[0]["dW_ih_norm"]
        for step, value in comps.items():
            assert abs(got[int(step)].item() - value) < 1e-10, (loss_name, step)
        assert torch.all(got[k:] == 0)  # steps after k-1 do not reach L_k


def mse_last(y):
    return lambda out, tr: F.mse_loss(out, y.to(out.dtype))


@pytest.mark.parametrize("kind", MODELS)
def test_contributions_sum_to_the_autograd_gradient(kind):
    torch.manual_seed(0)
    T = 60
    model = RecurrentNet(kind, task_spec(OmegaConf.create({"name": "adding", "seq_len": T})), 32, num_layers=2)
    x, y = generate_adding(1, T, 16)
    result = bptt_probe(model, x, mse_last(y), keep_dW=True)
    model.zero_grad()
    F.mse_loss(model.forward_unrolled(x)[0], y).backward()
    for layer in range(2):
        w_ih, w_hh, _, _ = model.weights(layer)
        for name, w in (("W_ih", w_ih), ("W_hh", w_hh)):
            total = result.dW[layer][name].sum(0)
            assert ((total - w.grad).norm() / w.grad.norm()).item() <= 1e-6, (layer, name)


def continue_from(model, x, t, h, c):
    """The loss as a function of the state at step t: run steps t+1.. from (h, c) and read out."""
    rest = x[:, t + 1:]
    if rest.shape[1] == 0:
        return model.head(h)
    out, _ = model.forward_unrolled(rest, h0=h.unsqueeze(0), c0=None if c is None else c.unsqueeze(0))
    return out


@pytest.mark.parametrize("kind", MODELS)
def test_dL_dh_matches_finite_differences(kind):
    torch.manual_seed(1)
    T, H, B, eps = 8, 4, 3, 1e-6
    model = RecurrentNet(kind, raw_spec(2, T), H).double()
    x = torch.randn(B, T, 2, dtype=torch.float64)
    y = torch.randn(B, 1, dtype=torch.float64)

    def per_sample_losses(out):
        return ((out - y) ** 2).sum(1)  # ℓ_b; the batch loss is their mean

    result = bptt_probe(model, x, lambda out, tr: per_sample_losses(out).mean())
    _, traces = model.forward_unrolled(x, record=True)
    for t in range(T):
        h = traces[0].h[t].detach()
        c = traces[0].c[t].detach() if kind != "rnn" else None
        o = torch.sigmoid(traces[0].a[t].detach()[:, 3 * H:])  # h_t = o_t tanh(c_t): c_t reaches h_t too
        for which in ("h",) if kind == "rnn" else ("h", "c"):
            grad = torch.zeros(B, H, dtype=torch.float64)
            for i in range(H):
                e = torch.zeros(H, dtype=torch.float64)
                e[i] = eps
                if which == "h":
                    hp, hm, cp, cm = h + e, h - e, c, c
                else:
                    cp, cm = c + e, c - e
                    hp, hm = o * torch.tanh(cp), o * torch.tanh(cm)
                with torch.no_grad():
                    lp = per_sample_losses(continue_from(model, x, t, hp, cp))
                    lm = per_sample_losses(continue_from(model, x, t, hm, cm))
                grad[:, i] = (lp - lm) / (2 * eps)
            fd = grad.norm(dim=1).mean().item()
            probe = result.layers[0][f"dL_d{which}_norm"][t].item()
            assert probe == pytest.approx(fd, rel=1e-6), (which, t)


@pytest.mark.parametrize("alpha", [0.9, 1.0, 1.1])
def test_linear_rnn_gradient_scales_as_alpha_power(alpha):
    """Linear RNN, W_hh = αQ: ‖∂L/∂h_k‖ = α^(T-1-k)·‖∂L/∂h_{T-1}‖ exactly (science.md §2)."""
    torch.manual_seed(2)
    T, H = 40, 16
    model = RecurrentNet("rnn", raw_spec(3, T), H).double()
    q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64))  # orthogonal to float64 precision
    with torch.no_grad():
        model.weights(0)[1].copy_(alpha * q)
    model.rnn_activation = lambda a: a
    x = torch.randn(4, T, 3, dtype=torch.float64)
    result = bptt_probe(model, x, lambda out, tr: out.square().sum(1).mean())
    norms = result.layers[0]["dL_dh_norm"]
    k = torch.arange(T, dtype=torch.float64)
    expected = alpha ** (T - 1 - k) * norms[-1]
    torch.testing.assert_close(norms, expected, rtol=1e-6, atol=0)
    assert decay_rate(norms) == pytest.approx(math.log(alpha), abs=1e-9)
    assert result.scalars["decay_rate_predicted"] == pytest.approx(math.log(alpha), abs=1e-9)  # mean-field theory
    assert result.scalars["decay_rate_bound"] == pytest.approx(math.log(alpha), abs=1e-9)  # tight when linear


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
    assert torch.all(norms == norms[-1])


def test_horizon_and_decay_rate():
    norms = torch.tensor([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], dtype=torch.float64)
    assert horizon(norms) == 4  # t=1 (4 steps back from t=5) is the first below 1e-3 of the last value
    assert horizon(torch.ones(7, dtype=torch.float64)) == 7
    assert decay_rate(norms) == pytest.approx(-math.log(10.0))


# ------------------------------------------------------------------------------ the probe during training

BPTT_COLUMNS = ["step", "layer", "t", "quantity", "value"]


@pytest.mark.parametrize("model", MODELS)
def test_probe_during_training_writes_table_scalars_and_figures(train, model):
    metrics, run_dir = train("profile=smoke", f"model={model}", "task.seq_len=15", "trainer.max_steps=20",
                             "probe.every_n_steps=8")
    import pandas as pd

    df = pd.read_csv(run_dir / "bptt.csv")
    assert list(df.columns) == BPTT_COLUMNS
    assert sorted(df.step.unique()) == [0, 8, 16, 20]  # start, every 8 steps, end
    expected = {"dL_dh_norm", "dW_hh_norm", "dW_ih_norm"} | (
        {"tanh_deriv_mean"} if model == "rnn" else {"dL_dc_norm", "forget_gate_mean"})
    assert set(df.quantity) == expected
    counts = df.groupby(["step", "quantity"]).t.agg(["count", "min", "max"])
    assert (counts["count"] == 15).all() and (counts["min"] == 0).all() and (counts["max"] == 14).all()
    assert (df.value >= 0).all() and df.value.notna().all()
    if model == "nfg_lstm":
        assert (df[df.quantity == "forget_gate_mean"].value == 1.0).all()
    for key in ("bptt_decay_rate", "bptt_horizon", "bptt_decay_rate_predicted"):
        assert math.isfinite(metrics[key]), key
    assert 1 <= metrics["bptt_horizon"] <= 15
    figures = {p.name for p in (run_dir / "figures").glob("*.png")}
    assert "bptt_dL_dh_norm_l0.png" in figures and "bptt_heatmap_dL_dh_norm_l0.png" in figures
    assert ("bptt_dL_dc_norm_l0.png" in figures) == (model != "rnn")
    logged = pd.read_csv(run_dir / "metrics.csv")
    assert logged["bptt/decay_rate"].notna().sum() == 4  # the scalars at every probe, in the CSV log too


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
