"""Science sanity runs (slow): the headline behaviour the study rests on, on CPU."""

import pytest

pytestmark = pytest.mark.slow


def test_lstm_learns_adding_T50_while_tanh_rnn_does_not(train):
    """The study's premise (Hochreiter & Schmidhuber 1997; docs/literature.md): adding T=50, H=64, B=64, Adam 1e-3 —
    LSTM below 5% of the baseline MSE within 3000 steps, the tanh RNN above 90% of it."""
    common = ("task=adding", "task.seq_len=50", "model.hidden_size=64", "trainer.batch_size=64", "optim=adam",
              "optim.lr=1e-3", "trainer.max_steps=3000", "trainer.val_every_n_steps=100")
    lstm, _ = train(*common, "model=lstm")
    rnn, _ = train(*common, "model=rnn")
    assert lstm["solved_at_step"] is not None or lstm["test_loss_rel_baseline"] < 0.05
    assert lstm["test_loss_rel_baseline"] < 0.05, lstm
    assert rnn["test_loss_rel_baseline"] > 0.90, rnn


# How far the documented run's figures may move on another machine or software (on the same one they are bitwise
# equal): float rounding differences grow over 2000 training steps like a change of seed. The spreads below are
# those of seeds 0-2 measured on one machine, with room: ratios of gradient norms (log10) within 1.5 decades, rates
# within 0.1/step, test losses within 20%.
LOG10_RATIO_TOL, RATE_TOL, LOSS_RTOL = 1.5, 0.1, 0.2


def test_the_documented_run_reproduces_readme_figures(tmp_path):
    """The documented run, repeated as docs/probe.md describes it (train, then analyze.py on test data): its figures
    match docs/results/documented_run.json, which docs/probe.md's block is rendered from; and the science holds: the
    rnn's gradient vanishes at least 1e3-fold over T=100, the lstm's less, the nfg's cell gradient does not vanish."""
    import math

    from gradlab.pages.recording import machine, read_result
    from gradlab.stages import documented_run

    new = documented_run.run(tmp_path / "work", tmp_path / "results", tmp_path)
    old = read_result("documented_run")
    assert new["setup"] == old["setup"]
    same_machine = old["machine"] == machine()
    for model, figures in new["models"].items():
        for key, value in figures.items():
            ref = old["models"][model][key]
            if same_machine or isinstance(value, bool | int):
                assert value == ref, (model, key, value, ref)
            elif "ratio" in key or "over_min" in key:
                assert abs(math.log10(value / ref)) <= LOG10_RATIO_TOL, (model, key, value, ref)
            elif "rate" in key:
                assert abs(value - ref) <= RATE_TOL, (model, key, value, ref)
            elif key == "test_loss":
                assert value == pytest.approx(ref, rel=LOSS_RTOL), (model, key)
    rnn, lstm, nfg = (new["models"][m] for m in ("rnn", "lstm", "nfg_lstm"))
    assert rnn["h_ratio"] <= 1e-3 and lstm["h_ratio"] > rnn["h_ratio"]
    assert nfg["c_max_over_min"] <= 100 and nfg["c_ratio"] >= 0.1
