"""The three recurrent models on fused kernels, and their unrolled twins for probing.

`RecurrentNet` trains on nn.RNN / nn.LSTM (oneDNN on CPU, cuDNN on GPU). `forward_unrolled` runs the same
parameters as an explicit per-step loop, keeping a_t, h_t, c_t so that one backward pass gives dL/dh_t, dL/dc_t
and the per-step weight-gradient contributions. The NFG-LSTM is nn.LSTM with its forget gate frozen at exactly 1:
zero forget rows in W_ih/W_hh and a forget bias of +50 (sigmoid(50) == 1.0 in float32 and float64), so that
c_t = c_{t-1} + i*g exactly and the forget rows receive exactly zero gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradlab.choices import ModelName, RecurrentInit, choose
from gradlab.config import ModelConfig
from gradlab.tasks import TaskSpec

NFG_FORGET_BIAS = 50.0  # sigmoid(50) rounds to exactly 1.0 in float32 and float64


@dataclass
class LayerTrace:
    """Per-step tensors of one layer from the unrolled twin (lists of length T, each (B, ·))."""

    x: list[Tensor] = field(default_factory=list)  # layer input x_t
    a: list[Tensor] = field(default_factory=list)  # pre-activation a_t = W_ih x_t + W_hh h_{t-1} + b
    h: list[Tensor] = field(default_factory=list)  # h_t (h[-1] is h_{T-1})
    c: list[Tensor] = field(default_factory=list)  # c_t (LSTM only)
    h0: Tensor | None = None  # the initial state the layer started from


class RecurrentNet(nn.Module):
    """A batch-first recurrent network (rnn | lstm | nfg_lstm) with a linear head on the last or every step."""

    def __init__(self, kind: ModelName | str, spec: TaskSpec, hidden_size: int, num_layers: int = 1,
                 recurrent_init: RecurrentInit | str = RecurrentInit.default, recurrent_gain: float = 1.0,
                 forget_bias: float | None = None):
        super().__init__()
        kind = choose(ModelName, "model kind", kind)
        self.kind, self.spec, self.hidden_size, self.num_layers = kind, spec, hidden_size, num_layers
        if kind == ModelName.rnn:
            self.rnn: nn.RNNBase = nn.RNN(spec.input_size, hidden_size, num_layers, nonlinearity="tanh",
                                          batch_first=True)
        else:
            self.rnn = nn.LSTM(spec.input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, spec.output_size)
        # The unrolled RNN's nonlinearity; the theory tests swap in the identity to get the exact linear-RNN case.
        self.rnn_activation: Callable[[Tensor], Tensor] = torch.tanh
        self._init_recurrent(recurrent_init, recurrent_gain, forget_bias)

    # ------------------------------------------------------------------------------------------ parameters

    def weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(W_ih, W_hh, b_ih, b_hh) of one layer; PyTorch's gate order for the LSTM is i, f, g, o."""
        r = self.rnn
        return (getattr(r, f"weight_ih_l{layer}"), getattr(r, f"weight_hh_l{layer}"),
                getattr(r, f"bias_ih_l{layer}"), getattr(r, f"bias_hh_l{layer}"))

    @torch.no_grad()
    def _init_recurrent(self, init: str, gain: float, forget_bias: float | None) -> None:
        H = self.hidden_size
        for layer in range(self.num_layers):
            _, w_hh, b_ih, b_hh = self.weights(layer)
            init = choose(RecurrentInit, "recurrent_init", init)
            if init == RecurrentInit.orthogonal:
                for block in w_hh.split(H, dim=0):  # every gate block gain * Q: |eigenvalues| = gain
                    nn.init.orthogonal_(block, gain=gain)
            elif init == RecurrentInit.sparse:
                for block in w_hh.split(H, dim=0):
                    sparse_spectral_(block, gain)
            if self.kind == ModelName.lstm and forget_bias is not None:
                b_ih[H:2 * H] = forget_bias
                b_hh[H:2 * H] = 0.0
        self.freeze_forget_gate()

    @torch.no_grad()
    def freeze_forget_gate(self) -> None:
        """NFG only: (re)set the forget rows so that f_t == 1 exactly; called after init and inside every optimizer
        step (RecurrentModule registers it as the optimizer's step post-hook).

        Their gradient is exactly zero, so only weight decay can move them; resetting keeps them out of it.
        """
        if self.kind != ModelName.nfg_lstm:
            return
        H = self.hidden_size
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.weights(layer)
            w_ih[H:2 * H] = 0.0
            w_hh[H:2 * H] = 0.0
            b_ih[H:2 * H] = NFG_FORGET_BIAS
            b_hh[H:2 * H] = 0.0

    # ------------------------------------------------------------------------------------------ forward

    def encode(self, x: Tensor) -> Tensor:
        """Token tasks arrive as integer ids and are one-hot encoded; float inputs pass through."""
        dtype = self.head.weight.dtype
        if self.spec.tokens:
            return F.one_hot(x, self.spec.input_size).to(dtype)
        return x.to(dtype)

    def readout(self, h_seq: Tensor) -> Tensor:
        """The head on every step (copy task) or on the last step only."""
        return self.head(h_seq if self.spec.per_step else h_seq[:, -1])

    def forward(self, x: Tensor) -> Tensor:
        """Fused kernel forward: (B, T) tokens or (B, T, input_size) floats -> predictions."""
        h_seq, _ = self.rnn(self.encode(x))
        return self.readout(h_seq)

    def forward_unrolled(self, x: Tensor, h0: Tensor | None = None, c0: Tensor | None = None,
                         record: bool = False) -> tuple[Tensor, list[LayerTrace]]:
        """The unrolled twin: the same parameters as an explicit loop over layers and steps.

        With record=True the traces keep every x_t, a_t, h_t, c_t of the graph, so that one
        `torch.autograd.grad(loss, [a_t, h_t, c_t ...])` gives the total derivatives dL/da_t, dL/dh_t, dL/dc_t.
        h0/c0: (num_layers, B, H) initial states (default zeros).
        """
        inp = self.encode(x)
        B, T, _ = inp.shape
        H = self.hidden_size
        zeros = inp.new_zeros(self.num_layers, B, H)
        h0 = zeros if h0 is None else h0
        c0 = zeros if c0 is None else c0
        traces = []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.weights(layer)
            xw = inp @ w_ih.T + b_ih  # the input projection of every step at once
            trace = LayerTrace(h0=h0[layer])
            h, c = h0[layer], c0[layer]
            for t in range(T):
                a = xw[:, t] + h @ w_hh.T + b_hh
                if self.kind == ModelName.rnn:
                    h = self.rnn_activation(a)
                else:
                    i, f, g, o = a.chunk(4, dim=1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                if record:
                    trace.x.append(inp[:, t])
                    trace.a.append(a)
                    if self.kind != ModelName.rnn:
                        trace.c.append(c)
                trace.h.append(h)
            traces.append(trace)
            inp = torch.stack(trace.h, dim=1)
        return self.readout(inp), traces


@torch.no_grad()
def sparse_spectral_(w: Tensor, radius: float, nonzero: int = 15) -> Tensor:
    """Pascanu et al. 2013's "smart" recurrent init (their code's smart_tanh): N(0, 0.01) weights, all but `nonzero`
    of each row set to 0, then the whole matrix rescaled to spectral radius `radius`."""
    w.normal_(0.0, 0.01)
    n = w.shape[1]
    if nonzero < n:
        drop = torch.rand(w.shape).argsort(dim=1)[:, nonzero:]  # a random permutation per row, as theirs
        w.scatter_(1, drop, 0.0)
    rho = torch.linalg.eigvals(w.double()).abs().max()
    return w.mul_(radius / float(rho))


def build_model(model: ModelConfig, spec: TaskSpec) -> RecurrentNet:
    """A RecurrentNet from the `model` config group."""
    return RecurrentNet(model.name, spec, model.hidden_size, model.num_layers, model.recurrent_init,
                        model.recurrent_gain, model.forget_bias)
