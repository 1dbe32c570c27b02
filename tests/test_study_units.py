"""The study's grid, profiles, published-results lookup, headline and metrics, without running anything."""

import json
import shutil

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from gradlab.core.errors import ConfigError
from gradlab.study import summary as study
from gradlab.study.claims import PUBLISHED, published_for, published_table
from gradlab.study.grid import profiles, read_params, study_runs, switch_profile
from gradlab.study.judging import VERDICTS


def test_shipped_params_are_the_cpu_profile():
    assert read_params(ROOT / "params.yaml") == yaml.safe_load((ROOT / "conf/study/cpu.yaml").read_text())


@pytest.mark.parametrize("profile", profiles())
def test_every_profile_is_a_valid_grid(profile):
    params = read_params(ROOT / "conf" / "study" / f"{profile}.yaml")
    runs = study_runs(params)
    s = params["study"]
    assert params["profile"] == profile
    assert len(runs) == len(s["tasks"]) * len(s["seq_lens"]) * len(s["models"]) * len(s["clips"]) * len(s["seeds"])
    assert len({r.name for r in runs}) == len(runs)  # every run has its own folder
    first = f"{s['tasks'][0]}-T{s['seq_lens'][0]}-{s['models'][0]['name']}-{s['clips'][0]['tag']}-s{s['seeds'][0]}"
    assert runs[0].name == first


def test_switching_profiles_keeps_hand_edits_of_the_current_one(tmp_path):
    params = tmp_path / "params.yaml"
    assert switch_profile(params, "smoke")
    edited = params.read_text().replace("hidden_size: 8}", "hidden_size: 12}", 1)
    params.write_text(edited)
    assert not switch_profile(params, "smoke") and params.read_text() == edited
    assert switch_profile(params, "cpu") and read_params(params)["profile"] == "cpu"
    with pytest.raises(ConfigError, match="PROFILE='big' is not a valid choice; choose one of: cpu, gpu, paper, "
                                          "papers-cpu, smoke"):
        switch_profile(params, "big")
    assert read_params(params)["profile"] == "cpu"  # untouched by the refused switch


def test_a_bad_grid_names_the_value(tmp_path):
    params = read_params(ROOT / "conf/study/smoke.yaml")
    params["study"]["models"][0]["name"] = "gur"
    with pytest.raises(ConfigError, match="'gur' is not a valid choice"):
        study_runs(params)
    (tmp_path / "p.yaml").write_text("data: {}\n")
    with pytest.raises(ConfigError, match="no `study:` section"):
        read_params(tmp_path / "p.yaml")


def test_published_results_sit_beside_the_matching_cells_with_how_ours_differs():
    ours = {"task": {"name": "adding"}, "model": {"name": "nfg_lstm", "hidden_size": 64}, "optim": {"name": "adam"},
            "trainer": {"batch_size": 64}, "clip": {"mode": "none", "threshold": None}}
    hs97 = published_for("adding", "nfg_lstm", 100, ours)
    assert "Hochreiter & Schmidhuber 1997" in hs97  # the 1997 LSTM had no forget gate: beside nfg_lstm
    assert "task.name 'adding' vs 'adding_hs97'" in hs97 and "model.name 'nfg_lstm' vs 'lstm97'" in hs97
    assert "trainer.batch_size 64 vs 1" in hs97 and "not in gradlab: their lr 0.5 on E = ½e²" in hs97
    assert "Hochreiter" not in published_for("adding", "lstm", 100, {**ours, "model": {"name": "lstm"}})
    rnn = {**ours, "model": {"name": "rnn", "hidden_size": 50}, "clip": {"mode": "norm", "threshold": 1.0}}
    beside = published_for("adding", "rnn", 150, rnn).split(" | ")
    assert [c.split("(")[1].split(" ")[0] for c in beside] == ["Pascanu,", "Arjovsky,"]  # each claim, its own row
    pascanu = beside[0]
    assert "Pascanu" in pascanu and "optim.name 'adam' vs 'sgd'" in pascanu and "clip.mode" not in pascanu
    assert "regulariser.name None vs 'pascanu'" in pascanu  # part of their result: a setup key
    assert published_for("adding", "lstm", 10, ours) == ""
    assert published_for("adding", "rnn", 150, None).endswith("ours differs: (run missing)")
    le = next(p for p in PUBLISHED if p.source.startswith("Le") and p.models == ("lstm",))
    assert le.differences({"task": {"name": "adding"}, "model": {"name": "lstm", "hidden_size": 100}}) == [
        "not in gradlab: budgets and optimizer: the paper's figures"]
    rows = published_table()
    assert len(rows) == len(PUBLISHED) and all(r["their setup"] for r in rows)
    assert {p.source.split(",")[0].split(" 19")[0].split(" 20")[0] for p in PUBLISHED} >= {
        "Hochreiter & Schmidhuber", "Pascanu", "Le", "Arjovsky", "Gers", "Greff et al."}


def _probe_csv(path, ratios_h, ratios_c=None):
    """A bptt.csv with one probe per ratio: ‖∂ℓ/∂h_t‖ geometric from `ratio` at t=0 to 2.0 at t=T-1 (T=4)."""
    rows = []
    for step, (rh, rc) in enumerate(zip(ratios_h, ratios_c or [None] * len(ratios_h), strict=True)):
        for quantity, r in (("dL_dh_norm", rh), ("dL_dc_norm", rc)):
            if r is not None:
                rows += [{"step": 100 * step, "layer": 0, "t": t, "quantity": quantity,
                          "value": 2.0 * r ** ((3 - t) / 3)} for t in range(4)]
                rows.append({"step": 100 * step, "layer": 1, "t": 0, "quantity": quantity, "value": 99.0})  # layer 1
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_gradient_ratio_of_the_last_probe_and_over_training(tmp_path):
    csv = _probe_csv(tmp_path / "bptt.csv", [1e-6, 1e-4, 0.5], [2.0, 3.0, 1.0])
    assert study.h_ratio(csv) == pytest.approx(0.5)
    assert study.h_ratio(csv, probes="all") == pytest.approx(1e-4)
    assert study.h_ratio(csv, "dL_dc_norm", probes="all") == pytest.approx(2.0)
    rnn = _probe_csv(tmp_path / "rnn.csv", [1e-9, 1e-7])
    assert study.h_ratio(rnn, "dL_dc_norm") is None and study.h_ratio(tmp_path / "missing.csv") is None


def _summary(rows):
    base = dict.fromkeys(study.COLUMNS)
    return pd.DataFrame([{**base, "task": "adding", "hidden_size": 8, "seed": 0, "status": "completed",
                          "diverged": False, "bptt_horizon": 50.0, "h_ratio_first_last": 0.1, "published": "",
                          **r} for r in rows], columns=study.COLUMNS)


def test_headline_names_who_solves_the_longest_T_and_the_gradient_that_reached_t0():
    df = _summary([
        {"seq_len": 10, "model": "rnn", "clip": "none", "solved": True, "loss_rel_baseline": 0.005,
         "h_ratio_training": 0.5},
        {"seq_len": 50, "model": "rnn", "clip": "none", "solved": False, "loss_rel_baseline": 0.93,
         "h_ratio_training": 2.5e-8},
        {"seq_len": 50, "model": "rnn", "clip": "norm1.0", "solved": False, "loss_rel_baseline": 0.67,
         "h_ratio_training": 5.4e-7},
        {"seq_len": 50, "model": "lstm", "clip": "none", "solved": True, "loss_rel_baseline": 0.0016,
         "h_ratio_training": 0.29, "c_ratio_training": 1.7},
        {"seq_len": 50, "model": "lstm", "clip": "norm1.0", "solved": True, "loss_rel_baseline": 0.0013,
         "h_ratio_training": 0.2, "c_ratio_training": 1.3},
    ])
    line = study.headline(df)
    assert line.startswith("At the longest adding T=50 (1 seed x clip none, norm1.0): rnn solved it in 0/2 runs "
                           "(test loss median 80.00%, best 67.00% of the baseline); lstm solved it in 2/2 runs "
                           "(test loss median 0.14%, best 0.13% of the baseline).")
    assert ("(median over the probes), ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ was rnn 2.5e-08, 5.4e-07; lstm 0.29, 0.2 "
            "(clip none, norm1.0)") in line
    assert line.endswith("‖∂ℓ/∂c_0‖ / ‖∂ℓ/∂c_T−1‖ lstm 1.7, 1.3.")
    # seeds pooled: solved k/n over seeds and clips, the gradient per clip as the median over seeds
    seeds = pd.concat([df.assign(seed=s, h_ratio_training=df.h_ratio_training * f, solved=df.solved & (s < 2),
                                 diverged=(s == 2) & (df.model == "rnn"))
                       for s, f in ((0, 1.0), (1, 10.0), (2, 100.0))], ignore_index=True)
    pooled = study.headline(seeds)
    assert pooled.startswith("At the longest adding T=50 (3 seeds x clip none, norm1.0): rnn solved it in 0/6 runs "
                             "(test loss median 80.00%, best 67.00% of the baseline; 2 diverged); lstm solved it "
                             "in 4/6 runs")
    assert "(median over the probes and seeds), ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ was rnn 2.5e-07, 5.4e-06; lstm 2.9, 2" in pooled
    metrics = study.dvc_metrics(df)["adding"]
    assert set(metrics) == {"T10", "T50", "longest"} and metrics["longest"]["T"] == 50
    assert metrics["longest"]["lstm-none"] == metrics["T50"]["lstm-none"]
    assert metrics["longest"]["rnn-norm1.0"]["h0_rel_training"] == pytest.approx(5.4e-7)
    assert study.headline(df[df.seq_len == 10]).endswith("rnn 0.5 (clip none).")


def test_the_report_reads_the_summary_table_back_as_written(tmp_path):
    df = _summary([{"seq_len": 50, "model": "lstm", "clip": "none", "solved": True, "loss_rel_baseline": 0.0016,
                    "h_ratio_training": 0.29, "c_ratio_training": 1.7, "solved_at_step": 3700.0},
                   {"seq_len": 50, "model": "rnn", "clip": "none", "solved": False, "loss_rel_baseline": 0.93,
                    "published": "tanh RNN fails beyond T=150 (Le, Jaitly & Hinton 2015)"}])
    files = study.write_summary(df, tmp_path)
    back = study.read_summary(files["csv"])
    assert study.headline(back) == study.headline(df)
    assert study.markdown(back) == study.markdown(df)
    with pytest.raises(ConfigError, match="no study summary at .*missing.csv: run `make summary`"):
        study.read_summary(tmp_path / "missing.csv")
    (tmp_path / "old.csv").write_text("task,model\nadding,rnn\n")
    with pytest.raises(ConfigError, match="old.csv is not a summary of this version"):
        study.read_summary(tmp_path / "old.csv")


@pytest.mark.parametrize("record", ["metrics.json", "analysis/metrics.json", "analysis/bptt.csv"])
def test_a_corrupt_run_record_fails_the_summary_and_writes_nothing(tmp_path, record):
    """A run whose record cannot be read is not 'missing': the summary names the file and publishes no table."""
    from conftest import run_entry

    shutil.copy(ROOT / "conf/study/smoke.yaml", tmp_path / "params.yaml")
    path = tmp_path / "runs" / "adding-T10-lstm-norm1.0-s0" / record
    path.parent.mkdir(parents=True)
    (path.parent / "metrics.json").write_text('{"status": "completed"}')
    path.write_bytes(b'{"status": "compl' if record.endswith(".json") else b'step,layer\n1,"0\n')
    done = run_entry("summarize.py", "--logger-mode", "disabled", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: runs/adding-T10-lstm-norm1.0-s0/{record} is corrupt (")
    assert not (tmp_path / "results").exists()


def test_lyapunov_agreement_per_model_and_its_reading_follow_the_numbers():
    """λ_1 beside the measured decay rate, per model: the gap and the sentence change with the numbers."""
    def row(model, lam, rate):
        return {**dict.fromkeys(study.COLUMNS), "model": model, "lyapunov_max": lam, "lyapunov_max_init": -0.1,
                "bptt_decay_rate": rate}

    df = pd.DataFrame([row("rnn", -1.08, -1.12), row("rnn", -8.70, -8.87), row("nfg_lstm", -0.003, -0.13),
                       row("lstm", None, -0.01)], columns=study.COLUMNS)
    agreement = study.lyapunov_agreement(df).set_index("model")
    assert list(agreement.index) == ["rnn", "nfg_lstm"] and agreement.loc["rnn", "runs"] == 2
    assert agreement.loc["rnn", "abs_gap"] == pytest.approx((0.04 + 0.17) / 2)
    text = study.lyapunov_reading(study.lyapunov_agreement(df))
    assert text.startswith("λ_1 tracks the measured decay rate of ∂ℓ/∂h for rnn (median gap 3% of the rate over 2 "
                           "runs)")
    assert ("It does not for nfg_lstm (λ_1 -0.003 against a rate of -0.13): the state of nfg_lstm includes the cell"
            in text)
    df.loc[df.model == "rnn", "lyapunov_max"] = [-0.5, -4.0]  # far from the rates now: the verdict follows
    assert "tracks" not in study.lyapunov_reading(study.lyapunov_agreement(df))


def _paper_run(tmp_path, name, solved, solved_at_step, batch_size=64):
    """A finished paper run as the `paper` stage leaves it: config.yaml (resolved) and metrics.json."""
    from gradlab.study.grid import PaperRun

    run = PaperRun("hs97_adding", 100, "nfg_lstm", int(name[-1]))
    folder = tmp_path / "runs" / run.name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"task": {"name": "adding_hs97"}, "model": {"name": "nfg_lstm", "hidden_size": 16},
              "optim": {"name": "adam", "lr": 0.01}, "trainer": {"batch_size": batch_size}, "paper_name": "hs97_adding"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"status": "completed", "solved": solved, "solved_at_step": solved_at_step,
               "test_loss_rel_baseline": 0.001 if solved else 0.9}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return run, folder


def test_the_reproduction_row_follows_the_result_files(tmp_path):
    """The H&S 1997 row: their sequences beside ours and the setup's differences; solved k/n follows metrics.json;
    none run -> not run. (The verdict's margin: tests/test_margin.py.)"""
    from gradlab.study.judging import verdict_kind
    from gradlab.study.verdicts import reproduction

    runs = [_paper_run(tmp_path, f"s{s}", True, step) for s, step in ((0, 2000), (1, 3000), (2, 2500))]
    papers = [r for r, _ in runs]

    def hs97_row():
        table = reproduction(papers, tmp_path / "runs")
        assert {verdict_kind(v) for v in table.verdict} <= set(VERDICTS)
        assert table.source.str.startswith("Gers").any() and table.source.str.startswith("Arjovsky").any()
        return table[table.source.str.startswith("Hochreiter")].iloc[0]

    row = hs97_row()
    assert row.solved == "3/3" and row.seeds == 3
    assert row["sequences to solve"] == "160,000 [128,000-192,000]"  # steps x batch 64
    assert row.theirs == "74,000 (mean of 10)" and row.ours.startswith("median 160,000 of 3 (no 95% interval")
    assert "model.hidden_size 16 vs 4" in row["ours differs"] and "trainer.batch_size 64 vs 1" in row["ours differs"]
    for folder in (runs[0][1], runs[1][1]):
        metrics = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps(metrics | {"solved": False, "solved_at_step": None}))
    assert hs97_row().solved == "1/3"
    assert (reproduction([], tmp_path / "runs").verdict == "not run").all()


def test_cells_pool_seeds_with_ranges_and_say_when_there_is_one_seed():
    """Per cell: solved k/n, steps to solve as the median with the solved seeds' range, loss/baseline as the median
    with its interquartile range; a one-seed cell has no range."""
    base = {**dict.fromkeys(study.COLUMNS), "task": "adding", "seq_len": 100, "clip": "none", "status": "completed",
            "diverged": False, "published": ""}
    rows = [base | {"model": "lstm", "seed": s, "solved": s < 3, "solved_at_step": [1000, 1500, 2500, None][s],
                    "loss_rel_baseline": [0.001, 0.002, 0.004, 0.5][s]} for s in range(4)]
    rows.append(base | {"model": "rnn", "seed": 0, "solved": False, "loss_rel_baseline": 0.9})
    table = study.pooled(pd.DataFrame(rows, columns=study.COLUMNS)).set_index("model")
    lstm, rnn = table.loc["lstm"], table.loc["rnn"]
    assert lstm.solved == "3/4" and lstm.steps_to_solve == 1500 and lstm.steps_to_solve_range == "1000-2500"
    assert lstm["loss/baseline"] == pytest.approx(0.003) and lstm["loss/baseline_iqr"] == "0.00175-0.128"
    assert rnn.seeds == 1 and pd.isna(rnn.steps_to_solve_range) and pd.isna(rnn["loss/baseline_iqr"])
