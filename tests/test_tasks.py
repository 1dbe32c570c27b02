import math

import pytest
import torch

from gradlab.core.errors import DataError
from gradlab.data.sets import ensure_dataset, load_split, write_dataset
from gradlab.tasks import TASKS
from gradlab.tasks.adding import generate_adding
from gradlab.tasks.base import empirical_baseline
from gradlab.tasks.copy import generate_copy
from gradlab.tasks.first_token import generate_first_token

pytestmark = pytest.mark.numerics  # generators and baselines against exact values: rerun under every instruction set
SIZES = {"train": 4000, "val": 100, "test": 4000}


def task(name, seq_len=20, **kw):
    defaults = {"copy": {"copy_len": 10, "n_symbols": 8}, "first_token": {"n_classes": 4, "n_distractors": 4}}
    return TASKS[name](seq_len=seq_len, **{**defaults.get(name, {}), **kw})


def test_adding_markers_and_target():
    x, y = generate_adding(seed=3, seq_len=30, n=500)
    assert x.shape == (500, 30, 2) and y.shape == (500, 1)  # batch-first (B, T, D)
    marker = x[..., 1]
    assert torch.all(marker.sum(1) == 2)
    assert torch.all(marker[:, :15].sum(1) == 1) and torch.all(marker[:, 15:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marker).sum(1))


def test_generators_are_pure_functions_of_seed():
    for gen in (generate_adding, generate_copy, generate_first_token):
        a, b, c = gen(7, 25, 64), gen(7, 25, 64), gen(8, 25, 64)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])


def test_copy_layout():
    x, y = generate_copy(seed=0, seq_len=50, n=8, copy_len=10, n_symbols=8)
    assert x.shape == y.shape == (8, 70)
    assert torch.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert torch.all(x[:, 59] == 9)  # delimiter at T + copy_len - 1
    assert torch.all(x[:, 10:59] == 0) and torch.all(x[:, 60:] == 0)
    assert torch.equal(y[:, -10:], x[:, :10]) and torch.all(y[:, :-10] == 0)


def test_first_token_layout():
    x, y = generate_first_token(seed=0, seq_len=40, n=100, n_classes=4, n_distractors=3)
    assert torch.equal(x[:, 0], y)
    assert torch.all((x[:, 1:] >= 4) & (x[:, 1:] < 7))


@pytest.mark.parametrize("name,expected", [
    ("adding", 1 / 6),
    ("copy", 10 * math.log(8) / 120),  # docs/theory.md's task table: 0.1733 at T=100
    ("first_token", math.log(4)),
])
def test_memoryless_baselines(name, expected):
    t = task(name, seq_len=100)
    spec = t.spec()
    assert spec.baseline_loss == pytest.approx(expected, rel=1e-12)
    _, y_train = t.generate(0, 20000)
    _, y_eval = t.generate(1, 20000)
    # an estimate from 20,000 samples: its relative standard error is ≤ 0.9% (adding: sd((y−1)²)/E = 1.18), so 0.03
    # is > 3 of them
    assert empirical_baseline(spec, y_train, y_eval) == pytest.approx(expected, rel=0.03)


def test_copy_baseline_matches_published_value():
    assert task("copy", 100).spec().baseline_loss == pytest.approx(0.1733, abs=5e-5)  # printed to 4 decimals
    assert task("copy", 500).spec().baseline_loss == pytest.approx(0.0400, abs=5e-5)


def test_roundtrip_and_manifest(tmp_path):
    t = task("copy", 30)
    write_dataset(tmp_path, t, SIZES, seed=5)
    x, y = load_split(tmp_path, t, "test")
    x2, y2 = generate_copy(5 + 2_000_006, 30, SIZES["test"])
    assert torch.equal(x, x2) and torch.equal(y, y2) and x.dtype == torch.long
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_corrupt_file_is_detected(tmp_path):
    t = task("adding")
    out = write_dataset(tmp_path, t, SIZES, seed=0)
    blob = bytearray((out / "train.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (out / "train.pt").write_bytes(bytes(blob))
    with pytest.raises(DataError, match="corrupt"):
        load_split(tmp_path, t, "train")


def test_truncated_and_mismatched_data(tmp_path):
    t = task("adding")
    out = write_dataset(tmp_path, t, SIZES, seed=0)
    (out / "val.pt").write_bytes((out / "val.pt").read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt"):
        load_split(tmp_path, t, "val")
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_split(tmp_path, t, "train")
    with pytest.raises(DataError, match="no data set"):
        load_split(tmp_path, task("adding", seq_len=21), "train")


def test_ensure_dataset_refuses_other_sizes(tmp_path):
    t = task("first_token")
    _, generated = ensure_dataset(tmp_path, t, SIZES, 0)
    assert generated
    assert ensure_dataset(tmp_path, t, SIZES, 0) == (tmp_path / "first_token" / "T20", False)
    with pytest.raises(DataError, match="sizes"):
        ensure_dataset(tmp_path, t, {**SIZES, "train": 10}, 0)


# ---------------------------------------------------------------------------------------- the papers' variants


def _real(x):
    """Each left-padded sequence's first step: its first nonzero marker (-1 or, when X1 is the first pair, 1)."""
    return [(row[:, 1] != 0).nonzero()[0].item() for row in x]


def test_hs97_adding_follows_the_papers_description():
    from gradlab.tasks.adding_hs97 import generate_adding_hs97

    T, n = 100, 3000
    x, y = generate_adding_hs97(seed=5, seq_len=T, n=n)
    assert x.shape == (n, 110, 2) and y.shape == (n, 1)
    starts = torch.tensor(_real(x))
    lengths = 110 - starts
    assert lengths.min() >= T and lengths.max() <= T + T // 10 and len(set(lengths.tolist())) == 11
    for b in range(200):
        s, row = int(starts[b]), x[b]
        assert torch.all(row[:s] == 0)  # padding: zero pairs
        values, marker = row[s:, 0], row[s:, 1]
        assert values.abs().max() <= 1 and values.min() < 0  # U[-1, 1]
        marked = (marker == 1).nonzero().flatten().tolist()
        # X1 among the first ten pairs, X2 among the first T/2 - 1 others (so both within the first T/2)
        assert len(marked) == 2 and marked[0] < 10 and marked[1] < T // 2
        assert float(y[b]) == pytest.approx(0.5 + float(values[marked].sum()) / 4, abs=1e-6)
        ends = (marker == -1).nonzero().flatten().tolist()  # -1 on the first and the last pair, unless marked
        assert ends == ([0] if marked[0] != 0 else []) + [len(marker) - 1]
    # X1 is 0 when the first pair is marked by it: about 1 in 10 sequences start with a marked zero
    first_marked = x[torch.arange(n), starts, 1] == 1
    assert 0.07 < first_marked.double().mean() < 0.14


def test_pascanu_addition_and_temporal_order_follow_their_code():
    from gradlab.tasks.addition_pascanu import generate_addition_pascanu
    from gradlab.tasks.temporal_order import generate_temporal_order

    x, y = generate_addition_pascanu(seed=2, seq_len=100, n=2000)
    marker, values = x[..., 0], x[..., 1]  # their channel order
    for b in range(300):
        pos = (marker[b] == 1).nonzero().flatten()
        first_real = (values[b] != 0).nonzero()[0].item()
        length = 109 - first_real
        assert 100 <= length < 110 and x.shape[1] == 109
        p0, p1 = (pos - first_real).tolist()
        assert 0 <= p0 < int(length * 0.1) <= p1 < int(length * 0.1) + int(length * 0.4)
        assert float(y[b]) == pytest.approx(float(values[b, pos].mean()), abs=1e-6)  # the mean, not the sum
    x, y = generate_temporal_order(seed=2, seq_len=100, n=4000)
    symbols = x < 2
    assert torch.all(symbols.sum(1) == 2) and torch.all(symbols[:, 10:20].sum(1) == 1)
    assert torch.all(symbols[:, 50:60].sum(1) == 1)
    assert torch.equal(y, x[:, 10:20].min(1).values + 2 * x[:, 50:60].min(1).values)
    assert len(torch.bincount(y)) == 4


def test_the_continual_stream_and_its_longer_test_split(tmp_path):
    t = TASKS["adding_continual"](seq_len=10, n_segments=4, test_segments=9)
    x, y = t.generate(0, 50)
    assert x.shape == (50, 40, 3) and y.shape == (50, 40, 1)
    has = ~torch.isnan(y[..., 0])
    assert torch.equal(has.nonzero()[:, 1].unique(), torch.tensor([9, 19, 29, 39]))  # each segment's last step
    assert torch.all(x[:, ::10, 2] == 1) and x[..., 2].sum() == 50 * 4  # the start flags
    for k in range(4):
        seg = x[:, 10 * k:10 * (k + 1)]
        torch.testing.assert_close(y[:, 10 * k + 9, 0], (seg[..., 0] * seg[..., 1]).sum(1))
    write_dataset(tmp_path, t, {"train": 8, "val": 8, "test": 8}, seed=1)
    assert load_split(tmp_path, t, "train")[0].shape[1] == 40 and load_split(tmp_path, t, "test")[0].shape[1] == 90


@pytest.mark.parametrize("name", ["adding_hs97", "addition_pascanu", "temporal_order", "adding_continual"])
def test_the_variants_memoryless_baselines_and_accuracy(name):
    """Loss and accuracy of the best memoryless guess, derived in each task's spec(), against 20,000 samples (the
    same standard-error argument as above; the accuracy's binomial standard error is <= 0.36%, so 0.015 is > 4)."""
    t = TASKS[name](seq_len=100) if name != "adding_continual" else TASKS[name]()
    spec = t.spec()
    _, y_train = t.generate(0, 20000)
    _, y_eval = t.generate(1, 20000)
    assert empirical_baseline(spec, y_train, y_eval) == pytest.approx(spec.baseline_loss, rel=0.03)
    if spec.tolerance is not None:
        guess = y_train.mean()
        assert float(((y_eval - guess).abs() < spec.tolerance).double().mean()) == pytest.approx(
            spec.baseline_accuracy, abs=0.015)
