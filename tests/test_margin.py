"""The verdicts (gradlab.study.verdicts) on edited result files: each seed solved, failed or in the band (the
margin), our interval over the seeds against the paper's number (consistent, inconsistent, too few seeds), and
the budget before either (under budget)."""

from __future__ import annotations

import json

import pytest
import yaml

from gradlab.study.grid import PaperRun
from gradlab.study.judging import BAND, VERDICTS, Rule, side, verdict_kind
from gradlab.study.verdicts import reproduction


def _run(tmp_path, paper: str, model: str, T: int, seed: int, task: dict, trainer: dict, metrics: dict) -> PaperRun:
    run = PaperRun(paper, T, model, seed)
    folder = tmp_path / "runs" / run.name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"task": task, "model": {"name": model}, "trainer": trainer, "paper_name": paper}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.json").write_text(json.dumps({"status": "completed", "solved_at_step": None} | metrics))
    return run


def _edit(tmp_path, run: PaperRun, **metrics) -> None:
    path = tmp_path / "runs" / run.name / "metrics.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | metrics))


def _row(tmp_path, runs: list[PaperRun], source: str, model: str):
    table = reproduction(runs, tmp_path / "runs")
    assert {verdict_kind(v) for v in table.verdict} <= set(VERDICTS)
    return table[table.source.str.startswith(source) & (table.model == model)].iloc[0]


def _hs97(tmp_path, steps: list[int | None], max_steps: int = 200_000) -> list[PaperRun]:
    trainer = {"batch_size": 1, "max_steps": max_steps}
    return [_run(tmp_path, "hs97_adding", "lstm97", 100, s, {"name": "adding_hs97"}, trainer,
                 {"solved_at_step": at, "test_acc": 0.9995 if at else 0.5}) for s, at in enumerate(steps)]


def test_hs97_sequences_to_solve_as_a_median_interval_against_their_mean(tmp_path):
    """lstm97 on adding_hs97 (batch 1: sequences = steps): 5 seeds have no 95% median interval (too few seeds); 10
    seeds at 50k-95k: [x_(2), x_(9)] = [55k, 90k] holds their 74k (consistent); at 150k-195k it does not
    (inconsistent); 4 of 10 never solving put +inf at x_(9) (too few seeds); a budget below their 74k: under budget.
    reproduction.csv's row carries the band and each seed's value."""
    row = _row(tmp_path, _hs97(tmp_path, [60_000 + 5_000 * s for s in range(5)]), "Hochreiter", "lstm97")
    assert (row.verdict, row.solved) == ("too few seeds", "5/5")  # solved: their stopping rule held
    assert "test error rate: solved ≤ 0.05%, failed ≥ 0.2%" in row.band
    assert row["seed values"].startswith("s0 0.05% (solved), s1 0.05% (solved)")
    assert row["sequences to solve"] == "70,000 [60,000-80,000]" and row.theirs == "74,000 (mean of 10)"

    row = _row(tmp_path, _hs97(tmp_path, [50_000 + 5_000 * s for s in range(10)]), "Hochreiter", "lstm97")
    assert (row.verdict, row["ours lo"], row["ours hi"]) == ("consistent", 55_000, 90_000)
    assert row.ours == "median 72,500, 97.9% interval [55,000, 90,000] (order statistics)"
    row = _row(tmp_path, _hs97(tmp_path, [150_000 + 5_000 * s for s in range(10)]), "Hochreiter", "lstm97")
    assert row.verdict == "inconsistent"
    row = _row(tmp_path, _hs97(tmp_path, [50_000 + 5_000 * s for s in range(6)] + [None] * 4), "Hochreiter",
               "lstm97")
    assert row.verdict == "too few seeds" and row.solved == "6/10"
    row = _row(tmp_path, _hs97(tmp_path, [30_000] * 10, max_steps=50_000), "Hochreiter", "lstm97")
    assert row.verdict == "under budget (68% of theirs)"


def _gers(tmp_path, model: str, error_rates: list[float], max_steps: int = 3000) -> list[PaperRun]:
    trainer = {"batch_size": 16, "max_steps": max_steps}  # 48,000 windows against their 30,000 streams
    return [_run(tmp_path, "gers00_continual", model, 500, s, {"name": "reber_continual"}, trainer,
                 {"stream_error_rate": e}) for s, e in enumerate(error_rates)]


@pytest.mark.parametrize(("rates", "verdict", "solved", "band", "decide"), [
    # four clearly good and one on the line: the four decide it, 4/4 -> [40%, 100%] holds their 47%, not 1%
    ([1e-5, 2e-5, 1e-5, 3e-5, 1.2e-3], "consistent", "4/4 (+1 in the band)", "s4", ""),
    ([1e-5] * 10, "inconsistent", "10/10", "", ""),  # [69%, 100%]: more often good than theirs
    ([0.05] * 5, "too few seeds", "0/5", "", "6 seeds at this rate"),  # [0%, 52%] holds 47% and 1%
    ([1.2e-3] * 5, "too few seeds", "0/0 (+5 in the band)", "s0 s1 s2 s3 s4", "a seed outside the band"),
])
def test_a_rate_claim_by_its_interval(tmp_path, rates, verdict, solved, band, decide):
    """Gers et al.'s forget-gate LSTM: 47 of 100 runs 'good' (a test error rate ≤ 1e-3: solved ≤ 5e-4, failed
    ≥ 2e-3), against the NFG's 1 of 100."""
    row = _row(tmp_path, _gers(tmp_path, "lstm", rates), "Gers", "lstm")
    assert (row.verdict, row.solved, row["in the band"], row["would decide"]) == (verdict, solved, band, decide)
    assert row.theirs == "47% of 100" and row["theirs lo"] < 0.47 < row["theirs hi"]


def test_the_nfg_row_by_the_same_criterion_and_under_budget(tmp_path):
    """The NFG row is judged by 'good' too (its claim says so), its solved column by the same rule; 16,000
    windows against their 30,000 streams is under budget whatever the seeds did."""
    row = _row(tmp_path, _gers(tmp_path, "nfg_lstm", [0.05] * 10), "Gers", "nfg_lstm")
    assert (row.verdict, row.solved, row.theirs) == ("consistent", "0/10", "1% of 100")  # [0%, 31%]: 1%, not 47%
    row = _row(tmp_path, _gers(tmp_path, "nfg_lstm", [0.05] * 5), "Gers", "nfg_lstm")
    assert (row.verdict, row["would decide"]) == ("too few seeds", "6 seeds at this rate")  # 1 − 0.025^(1/6) < 47%
    row = _row(tmp_path, _gers(tmp_path, "nfg_lstm", [1e-5] * 10, max_steps=1000), "Gers", "nfg_lstm")
    assert row.verdict == "under budget (53% of theirs)" and row.solved == "10/10"


def test_rows_without_their_budget_or_at_a_fraction_of_it_are_under_budget(tmp_path):
    """Pascanu et al.: 8,000 updates of batch 20 against their 5M (0.16%); Le et al.: their budget not read. Never
    "inconsistent", whatever the runs did."""
    runs = [_run(tmp_path, "pascanu13_addition", "rnn", 50, s, {"name": "addition_pascanu", "seq_len": 50},
                 {"batch_size": 20, "max_steps": 8000}, {"test_acc": 0.5}) for s in range(5)]
    row = _row(tmp_path, runs, "Pascanu", "rnn")
    assert row.verdict == "under budget (0.16% of theirs)" and row.solved == "0/5"
    runs = [_run(tmp_path, "le15_adding", "irnn", 150, s, {"name": "adding", "seq_len": 150},
                 {"batch_size": 64, "max_steps": 2000}, {"test_loss_rel_baseline": 0.9}) for s in range(5)]
    assert _row(tmp_path, runs, "Le, Jaitly & Hinton 2015", "irnn").verdict == "under budget (theirs not read)"


def test_the_side_of_one_run():
    """The stop-when-solved clause: solved with half the budget to spare and ending under twice the line is
    solved; the same run solving after half the budget is in the band; no test value is in the band."""
    rule = Rule("test loss / baseline", 0.01)
    run = {"status": "completed", "max_steps": 1000, "solved_at_step": 400, "loss_rel_baseline": 0.015}
    assert side(rule, run) == ("solved", pytest.approx(1.5))
    assert side(rule, run | {"solved_at_step": 600})[0] == "band"
    assert side(rule, run | {"loss_rel_baseline": 0.01 * BAND})[0] == "band"
    assert side(rule, run | {"loss_rel_baseline": None}) == ("band", None)
    assert side(rule, run | {"solved_at_step": None, "loss_rel_baseline": 0.02})[0] == "failed"
