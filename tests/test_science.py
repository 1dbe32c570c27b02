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
