"""The 1997 LSTM (gradlab.cells.lstm97): shared gates per block, the truncated gradient, and its batched form."""

from __future__ import annotations

import pytest
import torch

from gradlab.core.errors import ConfigError
from gradlab.models.net import RecurrentNet
from gradlab.tasks.adding_hs97 import AddingHS97Task


def _net(truncate: bool, hidden: int = 4, block: int = 2, dtype=torch.float64) -> tuple[RecurrentNet, torch.Tensor,
                                                                                          torch.Tensor]:
    torch.manual_seed(0)
    task = AddingHS97Task(seq_len=30)
    net = RecurrentNet("lstm97", task.spec(), hidden, block_size=block, truncate=truncate,
                       input_gate_bias=[-1.0] * (hidden // block)).to(dtype)
    with torch.no_grad():  # larger weights than their U(-0.1, 0.1), so that every path carries a visible gradient
        for p in net.parameters():
            p.uniform_(-1, 1)
    x, y = task.generate(0, 3)
    return net, x.to(dtype), y.to(dtype)


def test_the_gates_are_shared_within_a_block():
    """W_ih has 2·H/s + H rows; the cells of a block see one input gate and one output gate: with the cell inputs
    of a block's cells made equal, their c and h are equal at every step, and they differ across blocks."""
    net, x, _ = _net(truncate=False, hidden=6, block=3)
    w_ih, w_hh, b_ih, b_hh = net.weights(0)
    assert w_ih.shape == (2 * 2 + 6, 2) and w_hh.shape == (10, 6)
    with torch.no_grad():
        for w in (w_ih, w_hh, b_ih, b_hh):
            w[4:7] = w[4]  # block 0's three cell inputs alike
            w[7:10] = w[7]
    _, traces = net.forward_unrolled(x, record=True)
    c = torch.stack(traces[0].c)  # (T, B, H)
    assert torch.equal(c[..., 0], c[..., 1]) and torch.equal(c[..., 0], c[..., 2])
    assert not torch.allclose(c[..., 0], c[..., 3])


def test_the_truncated_gradient_flows_back_only_through_the_cells():
    """With truncate: no gradient reaches h_{t-1} (∂L/∂h_t = 0 before the last step), some reaches c_{t-1} (the
    carousel), and the weights still learn from every step; without: both paths carry gradient."""
    for truncate in (True, False):
        net, x, y = _net(truncate)
        out, traces = net.forward_unrolled(x, record=True)
        loss = ((out - y) ** 2).mean()
        h, c = traces[0].h, traces[0].c
        dh = torch.autograd.grad(loss, h[:-1], retain_graph=True)
        dc = torch.autograd.grad(loss, c[:-1], retain_graph=True)
        dv = torch.autograd.grad(loss, traces[0].v[:5], retain_graph=True)
        norm = lambda gs: max(float(g.norm()) for g in gs)  # noqa: E731
        assert (norm(dh) == 0.0) is truncate
        assert norm(dc) > 1e-3 and norm(dv) > 1e-4  # the early steps' inputs still get gradient through c


def test_the_batched_truncated_gradient_is_the_step_loops():
    """Training's batched form (cell.sequence: states without autograd, gates at once, c as a cumulative sum) gives
    the step loop's output and gradient: in float64 to 1e-12 relative (both sum the same ~30 terms in another
    order: a few ulps, 2.2e-16 each, times the growth of the carousel's sums)."""
    net, x, y = _net(truncate=True)
    params = list(net.parameters())
    out_fast = net(x)
    g_fast = torch.autograd.grad(((out_fast - y) ** 2).mean(), params)
    out_loop, _ = net.forward_unrolled(x)
    g_loop = torch.autograd.grad(((out_loop - y) ** 2).mean(), params)
    assert torch.allclose(out_fast, out_loop, rtol=1e-12, atol=0)
    for a, b in zip(g_fast, g_loop, strict=True):
        assert float((a - b).abs().max()) <= 1e-12 * float(b.abs().max())


def test_bad_lstm97_options_name_the_value():
    task = AddingHS97Task(seq_len=30)
    with pytest.raises(ConfigError, match=r"model.block_size=3 must be an integer >= 1 that divides "
                                          r"model.hidden_size=4"):
        RecurrentNet("lstm97", task.spec(), 4, block_size=3)
    with pytest.raises(ConfigError, match=r"model.input_gate_bias=\[-3.0\] needs one value per memory block: 2"):
        RecurrentNet("lstm97", task.spec(), 4, block_size=2, input_gate_bias=[-3.0])
    with pytest.raises(ConfigError, match=r"model.truncate=True applies only to model=lstm97, not lstm"):
        RecurrentNet("lstm", task.spec(), 4, truncate=True)


def test_their_stop_rule_on_the_training_stream(tmp_path):
    """adding_hs97's solved step (TaskSpec.stream_rule): the last `stop_window` training sequences all within the
    tolerance AND their mean |error| below stop_mean_error; one wrong sequence in the window, or a mean at the line,
    holds it off; it fires once, at the step that completes it, and stops training when stop_when_solved."""
    from types import SimpleNamespace

    from conftest import compose_cfg

    from gradlab.training.module import RecurrentModule

    cfg = compose_cfg(["paper=hs97_adding", "model.hidden_size=4", "task.seq_len=30", "task.stop_window=4",
                       "task.stop_mean_error=0.01", "logger=none"], tmp_path)
    module = RecurrentModule(cfg)
    trainer = SimpleNamespace(global_step=0, should_stop=False)
    module._trainer = trainer

    def feed(errors: list[float]) -> None:
        for e in errors:
            module.stream_rule([e])
            trainer.global_step += 1

    feed([0.03] * 6)  # every one right, but their mean 0.03 is not below 0.01
    assert module.solved_at_step is None
    feed([0.005, 0.005, 0.05])  # one wrong (|error| >= 0.04) in the window
    assert module.solved_at_step is None
    feed([0.005, 0.005, 0.005])  # the wrong one is still among the last 4
    assert module.solved_at_step is None and not trainer.should_stop
    feed([0.005])  # now the last 4 are all right, mean 0.005
    assert module.solved_at_step == 13 and trainer.should_stop  # 13 steps taken, this one included
    feed([0.5] * 4)
    assert module.solved_at_step == 13  # the first time it held
