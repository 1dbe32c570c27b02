"""A continual task's test streams, position by position (TaskSpec.continual; Gers et al. 2000's failure mode).

After a run's test, `write_stream` runs the trained network over the test split's streams (never reset) and writes
runs/<run>/stream.csv: per position bin (log-spaced: the stream goes on for orders of magnitude), the error rate (the
fraction of steps, over all streams, with a wrong prediction: some output unit on the wrong side of 0.5), the mean
loss (BCE per unit) and the mean ‖c_t‖ (the cell state of every layer together, cells that have one; empty
otherwise). Its headline numbers go into metrics.json (`stream_*`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradlab.core.runfolder import atomic_write_bytes

if TYPE_CHECKING:
    from torch import Tensor

    from gradlab.models.net import RecurrentNet


COLUMNS = ("bin_start", "bin_end", "steps", "error_rate", "loss", "c_norm")


N_BINS = 40


ERROR_LEVEL = 0.1  # stream_error_rate_over_10pct_at: the first bin whose error rate exceeds this


def bin_edges(length: int, n_bins: int = N_BINS) -> list[int]:
    """0, then log-spaced integer edges up to length: [edges[i], edges[i+1]) are the bins (the first ones one step
    wide, where log spacing would give less)."""
    edges = {0, length}
    edges |= {min(length, round(math.exp(math.log(length) * k / n_bins))) for k in range(n_bins + 1)}
    return sorted(edges)


def cell_state_norms(model: RecurrentNet, x: Tensor) -> Tensor | None:
    """‖c_t‖ (B, T) over every layer's cells, through the cell's own step (the unrolled twin's arithmetic, without
    keeping the graph); None for a cell without a cell state."""
    import torch

    if "c" not in model.cell.state:
        return None
    fast = _affine_scan(model, x)
    if fast is not None:
        return fast
    with torch.no_grad():
        inp = model.encode(x)
        B, T, _ = inp.shape
        sq = inp.new_zeros(B, T)
        for layer in range(model.num_layers):
            w_ih, w_hh, b_ih, b_hh = model.weights(layer)
            xv = inp @ w_ih.T + b_ih
            state = tuple(inp.new_zeros(B, model.hidden_size) for _ in model.cell.state)
            hs, cs = [], []
            deeper = layer + 1 < model.num_layers  # the next layer's input: this one's h_t
            for t in range(T):
                state = model.cell.step(model, layer, xv[:, t], state[0] @ w_hh.T + b_hh, state)
                if deeper:
                    hs.append(state[0])
                cs.append(state[1].pow(2).sum(-1))
            sq += torch.stack(cs, dim=1)
            if deeper:
                inp = model.next_input(layer, torch.stack(hs, dim=1), inp)
    return sq.sqrt()


def _affine_scan(model: RecurrentNet, x: Tensor) -> Tensor | None:
    """The same ‖c_t‖ in ~1/10 of the time, for one fused layer whose cell state is affine in c_{t-1}, elementwise
    (c_t = f_t ⊙ c_{t-1} + u_t: the LSTMs): the gates of every step at once from the fused kernel's h_{t-1} (the
    cell's own step evaluated at c_{t-1} = 0 and 1 gives u_t and f_t), then the scan over t in float64. None where
    that does not hold (several layers, no fused kernel, a step not affine in c: checked at c_{t-1} = 2)."""
    import numpy as np
    import torch

    if model.num_layers != 1 or not model.cell.fused_kernel:
        return None
    with torch.no_grad():
        inp = model.encode(x)
        h_seq, _ = model.rnn(inp)
        h_prev = torch.cat([torch.zeros_like(h_seq[:, :1]), h_seq[:, :-1]], dim=1)
        w_ih, w_hh, b_ih, b_hh = model.weights(0)
        v, u = inp @ w_ih.T + b_ih, h_prev @ w_hh.T + b_hh

        def step(c_prev: float) -> Tensor:
            return model.cell.step(model, 0, v, u, (h_prev, torch.full_like(h_prev, c_prev)))[1]

        add = step(0.0)
        f = step(1.0) - add
        if not torch.allclose(step(2.0), 2 * f + add, rtol=1e-4, atol=1e-5):
            return None
    f_np, c = f.double().cpu().numpy(), add.double().cpu().numpy()  # c_t, in place: c_t = f_t c_{t-1} + u_t
    for t in range(1, c.shape[1]):
        c[:, t] += f_np[:, t] * c[:, t - 1]
    return torch.from_numpy(np.sqrt((c * c).sum(-1))).to(x.device)


def stream_table(model: RecurrentNet, x: Tensor, y: Tensor, n_bins: int = N_BINS) -> tuple[list[dict], dict]:
    """Per-bin rows (COLUMNS) over the test streams x (B, T) / y (B, T, units), and the headline numbers."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        out = model(x)
        yf = y.to(out.dtype)
        wrong = ~((out > 0) == (yf > 0.5)).all(-1)  # (B, T)
        loss = F.binary_cross_entropy_with_logits(out, yf, reduction="none").mean(-1)
    c_norm = cell_state_norms(model, x)
    B, T = wrong.shape
    rows = []
    edges = bin_edges(T, n_bins)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        rows.append({"bin_start": lo, "bin_end": hi, "steps": B * (hi - lo),
                     "error_rate": float(wrong[:, lo:hi].double().mean()), "loss": float(loss[:, lo:hi].mean()),
                     "c_norm": None if c_norm is None else float(c_norm[:, lo:hi].mean())})
    has = wrong.any(1)
    first = torch.where(has, wrong.double().argmax(1), torch.full((B,), float(T), dtype=torch.double))
    over = [r["bin_start"] for r in rows if r["error_rate"] > ERROR_LEVEL]
    headline = {
        # Gers et al.'s measure: successive correct predictions from the start of a test stream (T where none)
        "stream_symbols_before_first_error": float(first.mean()), "stream_first_error_min": int(first.min()),
        "stream_error_free_streams": int((~has).sum()), "stream_streams": B, "stream_length": T,
        "stream_error_rate": float(wrong.double().mean()), "stream_error_rate_last_bin": rows[-1]["error_rate"],
        "stream_error_rate_over_10pct_at": over[0] if over else None,
        "stream_c_norm_end": rows[-1]["c_norm"],
    }
    return rows, headline


def write_stream(path: Path, model: RecurrentNet, x: Tensor, y: Tensor) -> dict[str, Any]:
    """stream.csv at path (atomic) from the test streams; returns the headline numbers for metrics.json."""
    import pandas as pd

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        rows, headline = stream_table(model, x.to(device), y.to(device))
    finally:
        model.train(was_training)
    atomic_write_bytes(path, pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(index=False).encode())
    return headline
