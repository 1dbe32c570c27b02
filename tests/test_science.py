"""Science sanity runs (slow): the headline behaviour the study rests on, on CPU."""

import pytest

pytestmark = pytest.mark.slow


def test_lstm_learns_adding_T50_while_tanh_rnn_does_not(train):
    """science.md: adding T=50, H=64, B=64, Adam 1e-3 — LSTM below 5% of the baseline MSE within 3000 steps,
    the tanh RNN above 90% of it."""
    common = ("task=adding", "task.seq_len=50", "model.hidden_size=64", "trainer.batch_size=64", "optim=adam",
              "optim.lr=1e-3", "trainer.max_steps=3000", "trainer.val_every_n_steps=100")
    lstm, _ = train(*common, "model=lstm")
    rnn, _ = train(*common, "model=rnn")
    assert lstm["solved_at_step"] is not None or lstm["test_loss_rel_baseline"] < 0.05
    assert lstm["test_loss_rel_baseline"] < 0.05, lstm
    assert rnn["test_loss_rel_baseline"] > 0.90, rnn


def test_bptt_after_training_on_adding_T100(train, tmp_path):
    """issue #3, the documented run (README figure): after 2000 steps on adding T=100 the rnn's ‖∂L/∂h_0‖ is at
    least 1e3 x smaller than ‖∂L/∂h_{T-1}‖, the lstm's decays less, and the nfg's ‖∂L/∂c_t‖ does not vanish: nowhere
    below a tenth of its value at T-1, and within x100 over t (seeds 0-2 measured x12, x19, x2.8: the direct cell
    path is the identity, the paths through h and the gates make it grow towards t=0)."""
    import subprocess
    import sys

    import pandas as pd
    from conftest import ROOT

    common = ("task=adding", "task.seq_len=100", "model.hidden_size=64", "trainer.max_steps=2000",
              "probe.every_n_steps=250", "logger.mode=disabled")
    last = {}
    for model in ("rnn", "lstm", "nfg_lstm"):
        _, run_dir = train(*common, f"model={model}")
        df = pd.read_csv(run_dir / "bptt.csv")
        last[model] = df[(df.step == 2000) & (df.layer == 0)]

    def curve(model, quantity):
        return last[model][last[model].quantity == quantity].sort_values("t").value.to_numpy()

    rnn, lstm, nfg_c = curve("rnn", "dL_dh_norm"), curve("lstm", "dL_dh_norm"), curve("nfg_lstm", "dL_dc_norm")
    assert rnn[0] <= 1e-3 * rnn[-1], rnn[0] / rnn[-1]
    assert lstm[0] / lstm[-1] > rnn[0] / rnn[-1]
    assert nfg_c.min() >= 0.1 * nfg_c[-1], nfg_c.min() / nfg_c[-1]
    assert nfg_c.max() <= 100 * nfg_c.min(), nfg_c.max() / nfg_c.min()
    runs = [str(tmp_path / "runs" / f"adding-T100-{m}-none-s0") for m in ("rnn", "lstm", "nfg_lstm")]
    subprocess.run([sys.executable, str(ROOT / "pipelines" / "compare.py"), *runs, "--out",
                    str(tmp_path / "cmp.png")], check=True)
