"""The analysis stage: the probe on a trained checkpoint, and clear errors when the checkpoint does not fit."""

import pandas as pd
import pytest
from conftest import read_json, run_entry

SMALL = ("profile=smoke", "task.seq_len=10", "trainer.max_steps=6", "probe.every_n_steps=3", "logger.mode=offline")


def test_analyze_probes_a_trained_run_on_test_data(tmp_path):
    trained = run_entry("train.py", *SMALL, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    run_dir = tmp_path / "runs" / "adding-T10-lstm-none-s0"
    done = run_entry("analyze.py", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = run_dir / "analysis"
    assert f"{out}" in done.stdout or "analysis" in done.stdout
    df = pd.read_csv(out / "bptt.csv")
    assert list(df.columns) == ["step", "layer", "t", "quantity", "value"]
    assert set(df.step) == {6} and set(df.t) == set(range(10))
    summary = read_json(out / "metrics.json")
    assert summary["split"] == "test" and summary["step"] == 6 and summary["probe_batch"] == 16
    assert summary["bptt_horizon"] >= 1 and summary["bptt_decay_rate"] is not None
    assert (out / "figures" / "bptt_dL_dc_norm_l0.png").stat().st_size > 1000
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    geo = pd.read_csv(out / "geometry.csv").set_index("set")
    assert list(geo.index) == ["hidden_across_samples", "hidden_across_time", "grad_h_across_time",
                               "dW_hh_across_time"]
    assert geo.loc["hidden_across_samples", "pairs"] == 16 * 15 // 2  # probe batch 16, hidden size 16
    assert geo.loc["dW_hh_across_time", "dim"] == 4 * 16 * 16
    assert ((geo.angle_mean_deg > 0) & (geo.angle_mean_deg < 180)).all()
    assert geo.random_angle_sd_deg.loc["hidden_across_time"] == pytest.approx(14.78, abs=5e-3)  # exact, D=16, to 2 dp
    assert summary["geometry_dW_hh_across_time_angle_sd_deg"] == pytest.approx(geo.loc["dW_hh_across_time",
                                                                                         "angle_sd_deg"])
    assert (out / "figures" / "geometry_angles.png").stat().st_size > 1000
    # the Lyapunov spectra of the (h, c) state, 32 dimensions, 16 largest: at init and trained
    lyap = pd.read_csv(out / "lyapunov.csv")
    assert list(lyap.columns) == ["when", "index", "exponent"] and lyap.groupby("when").size().to_dict() == {
        "init": 16, "trained": 16}
    for when, key in (("trained", "lyapunov_max"), ("init", "lyapunov_max_init")):
        sel = lyap[lyap.when == when].exponent
        assert summary[key] == sel.iloc[0] == sel.max() and sel.is_monotonic_decreasing
    assert summary["lyapunov_max"] != summary["lyapunov_max_init"]
    assert (out / "figures" / "lyapunov.png").stat().st_size > 1000
    # the same weights, probed on validation data during training, give the same kind of table
    assert set(pd.read_csv(run_dir / "bptt.csv").quantity) == set(df.quantity)


def test_compare_draws_the_last_probes_of_several_runs(train, tmp_path):
    _, rnn = train("profile=smoke", "model=rnn", "task.seq_len=10", "trainer.max_steps=3", "logger.mode=disabled")
    _, nfg = train("profile=smoke", "model=nfg_lstm", "task.seq_len=10", "trainer.max_steps=3",
                   "logger.mode=disabled")
    done = run_entry("compare.py", str(rnn), str(nfg), "--out", str(tmp_path / "cmp.png"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "adding-T10-nfg_lstm-none-s0: dL_dc_norm t=0 / t=T-1" in done.stdout
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    missing = run_entry("compare.py", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png"), cwd=tmp_path)
    assert missing.returncode != 0 and "does not exist" in missing.stderr and not (tmp_path / "x.png").exists()
