import math

import pytest
import torch

from gradlab.data import ensure_dataset, load_split, write_dataset
from gradlab.errors import DataError
from gradlab.tasks import TASKS, empirical_baseline, generate_adding, generate_copy, generate_first_token

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
    ("copy", 10 * math.log(8) / 120),  # science.md: 0.1733 at T=100
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
