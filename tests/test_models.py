import copy

import pytest
import torch

from gradlab import cells
from gradlab.models.net import RecurrentNet
from gradlab.tasks.adding import AddingTask, generate_adding
from gradlab.tasks.copy import CopyTask, generate_copy

MODELS = cells.names()  # every registered cell: a new one is tested by being registered


def adding_spec(T):
    return AddingTask(seq_len=T).spec()


def copy_spec(T):
    return CopyTask(seq_len=T, copy_len=5, n_symbols=8).spec()


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def gamma(n: int, dtype: torch.dtype) -> float:
    """γ_n = n·u/(1 − n·u): Higham's bound on the relative error of n sequential roundings, in any order."""
    u = torch.finfo(dtype).eps / 2
    return n * u / (1 - n * u)


FUSED_CASES = [(kind, dtype, layers) for kind in MODELS for dtype, layers in ((torch.float32, 1), (torch.float64, 2))
               if dtype == torch.float64 or cells.get(kind).smooth]


@pytest.mark.numerics
@pytest.mark.parametrize("kind,dtype,layers", FUSED_CASES)
def test_fused_equals_unrolled(kind, dtype, layers):
    """The fused kernel and the unrolled twin, both held against the unrolled twin in float64 (the same weights):
    outputs and every parameter's gradient agree to γ_n relative to the reference's largest entry, where n counts
    the roundings on the longest path to an output, layers·T·(G·H + D + 1) (G = 4 gates for the LSTMs), forward
    and back. The bound holds for every summation order, so for whichever BLAS/oneDNN kernel the CPU picks
    (measured: at most 0.08·γ_n over native, AVX2, SSE4_2, MKL_CBWR=COMPATIBLE and oneDNN SSE41 paths, the NFG's
    gradients being the largest: its cell state adds up over T=300 steps without forgetting). A wrong gate order
    or a missing bias moves them by ~1e-1 relative, far above γ_n (≤ 2e-3 in float32).
    A cell with kinks (ReLU, modReLU) runs in float64 only: in float32 a rounding error of ~1e-7 can carry a
    pre-activation across a kink (the IRNN's come within 4e-9 of 0 here) and flip a derivative, which no error
    bound covers; in float64 the test asserts that every value lies farther from a kink than the bound. A cell
    without a fused kernel (exprnn) runs its step in both paths."""
    torch.manual_seed(0)
    T, H = 300, 32
    model = RecurrentNet(kind, adding_spec(T), hidden_size=H, num_layers=layers,
                         forget_bias=1.0 if "forget_bias" in cells.get(kind).option_names() else None).to(dtype)
    reference = copy.deepcopy(model).double()
    x, y = generate_adding(0, T, 8)
    mse = torch.nn.functional.mse_loss
    ref_out, traces = reference.forward_unrolled(x, record=True)
    ref_grads = grads(reference, mse(ref_out, y.double()))
    tol = gamma(layers * T * (cells.get(kind).gates * H + 2 + 1), dtype)
    assert tol < 3e-3
    for layer, trace in enumerate(traces):
        v, u = torch.stack(trace.v), torch.stack(trace.u)
        distance = reference.cell.kink_distance(reference, layer, v, u)
        if distance is not None:  # no rounding within the bound can cross a kink
            assert distance.min() > tol * (v + u).abs().max(), (layer, float(distance.min()))
    for name, forward in (("fused", model), ("unrolled", lambda v: model.forward_unrolled(v)[0])):
        out = forward(x)
        assert (out.double() - ref_out).abs().max() <= tol * ref_out.abs().max(), name
        for param, g in grads(model, mse(out, y.to(dtype))).items():
            ref = ref_grads[param]
            assert (g.double() - ref).abs().max() <= tol * ref.abs().max(), (name, param)


@pytest.mark.numerics
@pytest.mark.parametrize("kind", MODELS)
def test_per_step_head_on_tokens(kind):
    spec = copy_spec(20)
    model = RecurrentNet(kind, spec, hidden_size=16).double()
    x, y = generate_copy(0, 20, 4, copy_len=5)
    out = model(x)
    assert out.shape == (4, 30, 9)
    # float64, T = 30 steps of H + 10 inputs: γ_n ≈ 1e-13 bounds the rounding relative to the largest output
    tol = gamma(30 * (cells.get(kind).gates * 16 + 10 + 1), torch.float64)
    torch.testing.assert_close(out, model.forward_unrolled(x)[0], rtol=0, atol=tol * out.abs().max().item())


@pytest.mark.numerics
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
        model.constrain()  # what the LightningModule does after every optimizer step
    _, traces = model.forward_unrolled(x, record=True)
    for layer in range(2):
        w_ih, w_hh, b_ih, b_hh = model.weights(layer)
        inp = x if layer == 0 else torch.stack(traces[0].h, 1)
        f = torch.sigmoid(inp @ w_ih[H:2 * H].T + b_ih[H:2 * H] + b_hh[H:2 * H])
        assert torch.all(f == 1.0)
    # and with f == 1 the cell update is exactly c_t = c_{t-1} + i * g
    a, c_prev, c = traces[0].v[5] + traces[0].u[5], traces[0].c[4], traces[0].c[5]
    i, _, g, _ = a.chunk(4, dim=1)
    assert torch.equal(c, c_prev + torch.sigmoid(i) * torch.tanh(g))


@pytest.mark.numerics
@pytest.mark.parametrize("gain", [0.5, 1.0, 2.0])
def test_orthogonal_recurrent_init_sets_the_spectrum(gain):
    model = RecurrentNet("rnn", adding_spec(10), hidden_size=24, recurrent_init="orthogonal", recurrent_gain=gain)
    s = torch.linalg.svdvals(model.weights(0)[1].detach())
    # float32: the QR behind orthogonal_ and the SVD each leave ~H·u = 1.4e-6 relative; 1e-5 allows both with room
    torch.testing.assert_close(s, torch.full_like(s, gain), rtol=1e-5, atol=0)


def test_lstm_forget_bias_init():
    model = RecurrentNet("lstm", adding_spec(10), hidden_size=8, forget_bias=2.0)
    _, _, b_ih, b_hh = model.weights(0)
    assert torch.all(b_ih[8:16] == 2.0) and torch.all(b_hh[8:16] == 0.0)


def test_bad_model_kind():
    with pytest.raises(ValueError, match="model.name='gur' is not a model; choose from rnn, lstm, nfg_lstm, gru, irnn, "
                                         "exprnn"):
        RecurrentNet("gur", adding_spec(10), hidden_size=8)


@pytest.mark.numerics
def test_pascanus_sparse_init_has_15_weights_per_row_and_spectral_radius_095():
    torch.manual_seed(0)
    model = RecurrentNet("rnn", adding_spec(10), hidden_size=50, recurrent_init="sparse", recurrent_gain=0.95)
    w = model.weights(0)[1].detach()
    assert torch.all((w != 0).sum(1) == 15)
    # float32 weights, the radius of their float64 copy: eigvals' error on a 50x50 matrix is far below 1e-5
    rho = torch.linalg.eigvals(w.double()).abs().max().item()
    assert rho == pytest.approx(0.95, rel=1e-5)
