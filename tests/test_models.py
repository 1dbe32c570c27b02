import pytest
import torch
from omegaconf import OmegaConf

from gradlab.models import RecurrentNet
from gradlab.tasks import generate_adding, generate_copy, task_spec

MODELS = ("rnn", "lstm", "nfg_lstm")


def adding_spec(T):
    return task_spec(OmegaConf.create({"name": "adding", "seq_len": T}))


def copy_spec(T):
    return task_spec(OmegaConf.create({"name": "copy", "seq_len": T, "copy_len": 5, "n_symbols": 8}))


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("dtype,tol,layers", [(torch.float32, 2e-5, 1), (torch.float64, 1e-10, 2)])
def test_fused_equals_unrolled(kind, dtype, tol, layers):
    """Outputs agree to tol absolutely; gradients to tol relative to each tensor's largest entry (the NFG's
    cell state adds up over T=300 steps without forgetting, so its gradients reach ~40 and float32 rounding
    scales with them)."""
    torch.manual_seed(0)
    T = 300
    model = RecurrentNet(kind, adding_spec(T), hidden_size=32, num_layers=layers,
                         forget_bias=1.0 if kind == "lstm" else None).to(dtype)
    x, y = generate_adding(0, T, 8)
    fused = model(x)
    unrolled, _ = model.forward_unrolled(x)
    assert (fused - unrolled).abs().max().item() <= tol
    mse = torch.nn.functional.mse_loss
    g_fused = grads(model, mse(fused, y.to(dtype)))
    g_unrolled = grads(model, mse(model.forward_unrolled(x)[0], y.to(dtype)))
    for name, g in g_fused.items():
        scale = max(1.0, g.abs().max().item())
        assert (g - g_unrolled[name]).abs().max().item() <= tol * scale, name


@pytest.mark.parametrize("kind", MODELS)
def test_per_step_head_on_tokens(kind):
    spec = copy_spec(20)
    model = RecurrentNet(kind, spec, hidden_size=16).double()
    x, y = generate_copy(0, 20, 4, copy_len=5)
    out = model(x)
    assert out.shape == (4, 30, 9)
    torch.testing.assert_close(out, model.forward_unrolled(x)[0], rtol=0, atol=1e-12)


def test_nfg_forget_gate_is_exactly_one_after_adamw_with_weight_decay():
    torch.manual_seed(0)
    spec = adding_spec(30)
    model = RecurrentNet("nfg_lstm", spec, hidden_size=16, num_layers=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = generate_adding(1, 30, 32)
    H = 16
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        for layer in range(2):
            for p in model.weights(layer):  # the forget rows get exactly zero gradient
                assert torch.all(p.grad[H:2 * H] == 0)
        opt.step()
        model.freeze_forget_gate()  # what the LightningModule does after every optimizer step
    _, traces = model.forward_unrolled(x, record=True)
    for layer in range(2):
        w_ih, w_hh, b_ih, b_hh = model.weights(layer)
        inp = x if layer == 0 else torch.stack(traces[0].h, 1)
        f = torch.sigmoid(inp @ w_ih[H:2 * H].T + b_ih[H:2 * H] + b_hh[H:2 * H])
        assert torch.all(f == 1.0)
    # and with f == 1 the cell update is exactly c_t = c_{t-1} + i * g
    a, c_prev, c = traces[0].a[5], traces[0].c[4], traces[0].c[5]
    i, _, g, _ = a.chunk(4, dim=1)
    assert torch.equal(c, c_prev + torch.sigmoid(i) * torch.tanh(g))


@pytest.mark.parametrize("gain", [0.5, 1.0, 2.0])
def test_orthogonal_recurrent_init_sets_the_spectrum(gain):
    model = RecurrentNet("rnn", adding_spec(10), hidden_size=24, recurrent_init="orthogonal", recurrent_gain=gain)
    s = torch.linalg.svdvals(model.weights(0)[1].detach())
    torch.testing.assert_close(s, torch.full_like(s, gain), rtol=1e-5, atol=1e-5)


def test_lstm_forget_bias_init():
    model = RecurrentNet("lstm", adding_spec(10), hidden_size=8, forget_bias=2.0)
    _, _, b_ih, b_hh = model.weights(0)
    assert torch.all(b_ih[8:16] == 2.0) and torch.all(b_hh[8:16] == 0.0)


def test_bad_model_kind():
    with pytest.raises(ValueError, match="'gru' is not one of rnn, lstm, nfg_lstm"):
        RecurrentNet("gru", adding_spec(10), hidden_size=8)
