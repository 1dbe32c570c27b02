"""Gers et al. 2000's continual embedded Reber grammar (gradlab.tasks.reber): the generator against the grammar, the
multilabel loss and accuracy, the per-position statistics of the test streams (gradlab.probe.stream) and a real run."""

from types import SimpleNamespace

import pytest
import torch
from conftest import read_json, run_entry

from gradlab.data.sets import load_split, write_dataset
from gradlab.probe.stream import COLUMNS, bin_edges, cell_state_norms, stream_table
from gradlab.tasks import TASKS
from gradlab.tasks.base import empirical_baseline
from gradlab.tasks.reber import EMBEDDED, REBER, SYMBOLS, ReberContinualTask, generate_reber_continual, legal_next
from gradlab.training.module import RecurrentModule


def walk(table, symbols: str, state: int = 0) -> list[int]:
    """The states a table passes through reading `symbols` (the state after each); AssertionError at an illegal
    symbol."""
    states = []
    for s in symbols:
        moves = dict(table[state])
        assert s in moves, f"{s!r} is not legal in state {state} (legal: {sorted(moves)})"
        state = moves[s]
        states.append(state)
    return states


def text(x: torch.Tensor) -> str:
    return "".join(SYMBOLS[i] for i in x.tolist())


def strings_of(stream: str) -> list[str]:
    """Cut a stream at the outer E (the embedded grammar back in state 0): its embedded strings, the last one possibly
    cut short."""
    out, start = [], 0
    for t, state in enumerate(walk(EMBEDDED, stream)):
        if state == 0:
            out.append(stream[start:t + 1])
            start = t + 1
    return out + ([stream[start:]] if start < len(stream) else [])


def test_the_reber_table_accepts_the_reber_strings_and_nothing_else():
    for s in ("BTXSE", "BPVVE", "BTSSXXTVVE", "BPTVPSE", "BTXXVPSE"):
        assert walk(REBER, s)[-1] == 7
    for bad in ("BTE", "BPS", "BTXXE", "TB"):
        with pytest.raises(AssertionError):
            walk(REBER, bad)
    assert len(EMBEDDED) == 19 and all(len(e) in (1, 2) for e in EMBEDDED)


def test_every_symbol_is_a_legal_transition_and_the_targets_are_the_legal_next_sets():
    x, y = generate_reber_continual(seed=3, length=3000, n=8)
    assert x.shape == (8, 3000) and y.shape == (8, 3000, 7) and x.dtype == y.dtype == torch.long
    for b in range(8):
        states = walk(EMBEDDED, text(x[b]))  # every consecutive pair is legal, the stream never leaves the grammar
        legal = torch.tensor([[int(c in legal_next(s)) for c in SYMBOLS] for s in states])
        assert torch.equal(y[b], legal)
        assert set(text(x[b])) == set(SYMBOLS)


def test_the_embedded_strings_repeat_their_branch_and_the_stream_never_resets():
    x, _ = generate_reber_continual(seed=5, length=20000, n=2)
    for b in range(2):
        stream = text(x[b])
        strings = strings_of(stream)
        assert "".join(strings) == stream  # concatenated, one after the other
        assert len(strings) == pytest.approx(20000 / 12, rel=0.1)  # mean length 12 (4 outer + 8 inner symbols)
        whole = strings[:-1]
        assert all(s[0] == "B" and s[-1] == "E" and s[1] in "TP" and s[1] == s[-2] for s in whole)
        assert all(walk(REBER, s[2:-2])[-1] == 7 for s in whole)  # a Reber string inside
        assert {s[1] for s in whole} == {"T", "P"}
        branch_t = sum(s[1] == "T" for s in whole) / len(whole)
        assert branch_t == pytest.approx(0.5, abs=0.05)
        # no reset: the strings follow each other with no state between them; a stream starts at a string's B
        assert stream.startswith("B") and "EB" in stream and stream.count("EB") >= len(whole) - 1


def test_the_generator_is_a_function_of_its_seed():
    a, b, c = (generate_reber_continual(s, 400, 6) for s in (1, 1, 2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # each window is the start of its own stream: the windows of one batch differ
    assert len({text(r) for r in a[0]}) == 6


def test_the_task_spec_the_test_streams_and_the_memoryless_baseline(tmp_path):
    t = TASKS["reber_continual"](seq_len=40, test_len=700)
    spec = t.spec()
    assert (spec.kind, spec.input_size, spec.output_size, spec.per_step, spec.tokens, spec.continual) == (
        "multilabel", 7, 7, True, True, True)
    assert spec.baseline_loss == pytest.approx(0.5185, abs=1e-4) and spec.baseline_accuracy == 0.0
    assert spec.solved(0.0, 1.0) and not spec.solved(0.0, float(torch.tensor(1 - 1e-6)))  # 1 error in 10^6
    write_dataset(tmp_path, t, {"train": 8, "val": 4, "test": 3}, seed=1)
    assert load_split(tmp_path, t, "train")[0].shape == (8, 40)
    x, y = load_split(tmp_path, t, "test")
    assert x.shape == (3, 700) and y.shape == (3, 700, 7)
    walk(EMBEDDED, text(x[0]))
    # the analytic baseline (stationary frequencies) against long streams
    _, y_train = generate_reber_continual(0, 20000, 10)
    _, y_eval = generate_reber_continual(1, 20000, 10)
    assert empirical_baseline(spec, y_train, y_eval) == pytest.approx(spec.baseline_loss, rel=0.01)
    with pytest.raises(Exception, match="task.test_len=1 is out of range"):
        ReberContinualTask(test_len=1)


def test_the_multilabel_loss_and_accuracy_on_a_hand_made_example():
    spec = ReberContinualTask().spec()
    y = torch.tensor([[[1, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0]]])  # legal next: {B}, then {T, P}
    out = torch.full((1, 2, 7), -2.0)
    out[0, 0, 0] = 3.0  # step 0: every unit on the right side of 0.5
    out[0, 1, 1] = 1.0  # step 1: T right, P wrong (logit -2 < 0 where P is legal)
    loss, acc = RecurrentModule.loss_and_accuracy(SimpleNamespace(spec=spec), out, y)
    assert float(acc) == 0.5
    p = torch.sigmoid(out)
    expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_stream_statistics_bins_errors_and_the_cell_state():
    edges = bin_edges(100000)
    assert edges[0] == 0 and edges[-1] == 100000 and edges == sorted(set(edges)) and len(edges) <= 42
    from gradlab.models.net import RecurrentNet

    spec = ReberContinualTask().spec()
    torch.manual_seed(0)
    net = RecurrentNet("nfg_lstm", spec, 8)
    x, y = generate_reber_continual(0, 500, 3)
    rows, head = stream_table(net, x, y, n_bins=10)
    assert sum(r["steps"] for r in rows) == 1500 and set(rows[0]) == set(COLUMNS)
    with torch.no_grad():
        wrong = ~((net(x) > 0) == (y > 0.5)).all(-1)
        _, traces = net.forward_unrolled(x, record=True)
    assert head["stream_error_rate"] == pytest.approx(float(wrong.double().mean()))
    first = [int(w.nonzero()[0]) if w.any() else 500 for w in wrong]
    assert head["stream_symbols_before_first_error"] == pytest.approx(sum(first) / 3)
    c_end = torch.stack(traces[0].c[rows[-1]["bin_start"]:], 1).norm(dim=-1).mean()
    assert rows[-1]["c_norm"] == pytest.approx(float(c_end), rel=1e-4)  # ‖c_t‖ as the unrolled twin has it
    deep = RecurrentNet("lstm", spec, 8, num_layers=2)  # two layers: the step-by-step path, every layer's cells
    with torch.no_grad():
        _, traces = deep.forward_unrolled(x, record=True)
    both = sum(torch.stack(tr.c, 1).pow(2).sum(-1) for tr in traces).sqrt()
    torch.testing.assert_close(cell_state_norms(deep, x), both, rtol=1e-4, atol=1e-5)
    rows, head = stream_table(RecurrentNet("rnn", spec, 8), x, y, n_bins=10)
    assert rows[-1]["c_norm"] is None and head["stream_c_norm_end"] is None


def test_a_tiny_paper_run_writes_the_stream_table(tmp_path):
    """The real entry point (in-process): paper=gers00_continual with the smoke profile, short test streams;
    stream.csv in the run folder and its headline numbers in metrics.json."""
    done = run_entry("train.py", "paper=gers00_continual", "profile=smoke", "task.seq_len=20", "task.test_len=300",
                   "model=nfg_lstm", "trainer.max_steps=4", "trainer.val_every_n_steps=2", "logger=none",
                   "run_name=tiny", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "tiny"
    import pandas as pd

    table = pd.read_csv(run / "stream.csv")
    assert list(table.columns) == list(COLUMNS)
    assert table.steps.sum() == 64 * 300 and table.bin_end.iloc[-1] == 300  # the smoke profile's 64 test streams
    assert table.c_norm.notna().all() and table.c_norm.iloc[-1] > table.c_norm.iloc[0]  # the NFG's cell grows
    m = read_json(run / "metrics.json")
    assert m["stream_length"] == 300 and m["stream_streams"] == 64
    assert m["stream_error_rate"] == pytest.approx(1 - m["test_acc"], abs=1e-6)
    assert m["stream_c_norm_end"] == pytest.approx(table.c_norm.iloc[-1])
