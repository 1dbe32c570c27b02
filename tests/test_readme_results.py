"""The result numbers of README.md and docs/*.md are rendered from the files the code wrote (docs/results/*.json),
never typed."""

import json

import pytest
from conftest import ROOT

from gradlab.pages import markers as rr


def test_readme_blocks_say_what_their_result_files_say():
    assert set(rr.blocks((ROOT / "README.md").read_text())) >= {"cpu_profile"}
    everywhere = [name for page in rr.pages() for name in rr.blocks(page.read_text())]
    assert set(everywhere) >= {"documented_run", "cpu_profile", "cpu_profile/reproduction"}
    assert len(everywhere) == len(set(everywhere)), "a block is shown twice"
    assert rr.stale_pages() == {}, "run `make readme`"
    for page in rr.pages():
        flat = " ".join(page.read_text().split())
        for name in rr.blocks(page.read_text()):  # every block names the machine its numbers were measured on
            assert rr.machine_line(rr.read_result(name.split("/")[0])["machine"]) in flat


def test_readmes_picture_is_of_the_recorded_cpu_profile():
    """docs/report.png carries what it shows (gradlab.pages.picture: written by pipelines/record_study.py from the
    clone it
    recorded): the commit, profile, tasks, T, models and run count of docs/results/cpu_profile.json, the record of the
    README's block. A picture taken by hand, or of another study, has another record or none."""
    from gradlab.pages import picture

    shown = picture.read(ROOT / "docs" / "report.png")
    assert shown is not None, "docs/report.png has no record: pipelines/record_study.py takes it"
    assert shown == picture.picture_record("cpu_profile", rr.read_result("cpu_profile"))


def test_a_changed_result_file_makes_the_readme_stale(tmp_path):
    page = next(p for p in rr.pages() if "documented_run" in rr.blocks(p.read_text()))
    text = page.read_text()
    data = rr.read_result("documented_run")
    data["models"]["rnn"]["h_ratio"] *= 10
    for other in rr.RESULTS_DIR.glob("*.json"):  # the other blocks' files as they are
        (tmp_path / other.name).write_bytes(other.read_bytes())
    (tmp_path / "documented_run.json").write_text(json.dumps(data))
    assert rr.stale_blocks(text, tmp_path, page) == ["documented_run"]
    assert rr.stale_blocks(rr.render(text, tmp_path, page), tmp_path, page) == []


def test_number_formatting():
    assert rr.g(9.93e-11) == "9.9e-11" and rr.g(-0.2312) == "-0.23" and rr.g(None) == "–"
    with pytest.raises(KeyError):
        rr.render("<!-- results:nothing -->\nx\n<!-- /results:nothing -->", ROOT)


def test_per_T_step_budgets_are_read_from_params_and_written_out():
    from gradlab.pages.blocks import steps_text
    from gradlab.pages.recording import steps_per_T

    assert steps_per_T("{20:400,50:800,100:1600}") == {20: 400, 50: 800, 100: 1600}
    assert steps_per_T({"20": 400, "50": 800}) == {20: 400, 50: 800} and steps_per_T(300) == 300
    assert steps_text("{20:400,50:800,100:1600}") == "400/800/1600 steps at T=20/50/100"
    with pytest.raises(ValueError, match="'{20:400'"):
        steps_per_T("{20:400")


def _finished_study(root, params, wall_s, jobs, metrics, threads=1):
    """A checkout as `make repro` leaves it: params.yaml, results/repro.json, the summary and runs' metrics.json."""
    import pandas as pd
    import yaml

    from gradlab.study import summary

    (root / "results" / "summary").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "results" / "repro.json").write_text(json.dumps(
        {"jobs": jobs, "threads": threads, "stages": 9, "wall_s": wall_s, "wall_s_since_make": wall_s + 60}))
    rows = [{**dict.fromkeys(summary.COLUMNS), "task": "adding", "seq_len": T, "model": m, "hidden_size": 4,
             "clip": "none", "seed": 0, "run": f"adding-T{T}-{m}-none-s0", "status": "completed",
             "solved": m == "lstm" or T == 10, "loss_rel_baseline": 0.005 if m == "lstm" or T == 10 else 0.9,
             "diverged": False, "published": ""} for T in (10, 100) for m in ("rnn", "lstm")]
    summary.write_summary(pd.DataFrame(rows, columns=summary.COLUMNS), root / "results" / "summary")
    for run, text in metrics.items():
        (root / "runs" / run).mkdir(parents=True)
        (root / "runs" / run / "metrics.json").write_text(text)


def test_a_study_record_compares_the_parallel_and_serial_checkouts_and_renders_its_table(tmp_path):
    params = {"profile": "cpu", "study": {"tasks": ["adding"], "seq_lens": [10, 100], "seeds": [0],
                                         "models": [{"name": m, "hidden_size": 4} for m in ("rnn", "lstm")],
                                         "clips": [{"mode": "none", "threshold": "null", "tag": "none"}]},
              "train": {"max_steps": 50, "batch_size": 8, "lr": 0.01}}
    runs = {"a": '{"x": 1}', "b": '{"x": 2}'}
    _finished_study(tmp_path / "par", params, 600.0, 2, runs)
    _finished_study(tmp_path / "ser", params, 1000.0, 1, {**runs, "b": '{"x": 2.0}'})
    data = rr.study_record(tmp_path / "par", tmp_path / "ser")
    assert data["compare"] == {"wall_ratio": 0.6, "metrics_json_identical": 1, "metrics_json_runs": 2,
                               "metrics_json_differ": ["b/metrics.json"], "summary_csv_identical": True}
    text = rr._wrapped(rr.render_cpu_profile({**data, "machine": rr.machine()}))
    flat = " ".join(text.split())
    assert "took 0.60x its time. metrics.json was byte-identical between the two in 1 of 2 runs" in flat
    assert "\n| solved | 0/1 | 1/1 |\n" in text  # table rows are not folded
    assert "At T=10: rnn none solved 1/1 (0.005 of the baseline); lstm none solved 1/1" in flat
    # the same comparison at the same threads per run: identical where the default-threads one was not
    _finished_study(tmp_path / "ser1", params, 1100.0, 1, runs)
    data = rr.study_record(tmp_path / "par", tmp_path / "ser", tmp_path / "ser1")
    assert data["compare_same_threads"]["metrics_json_identical"] == 2
    assert data["compare_same_threads"]["wall_ratio"] == round(600 / 1100, 3)
    flat = " ".join(rr._wrapped(rr.render_cpu_profile({**data, "machine": rr.machine()})).split())
    assert "(`make repro JOBS=1 THREADS=1`, 18.3 min): the parallel study took 0.55x its time. metrics.json was " \
           "byte-identical between the two in 2 of 2 runs, and summary.csv was identical" in flat
    _finished_study(tmp_path / "ser2", params, 1100.0, 1, runs, threads=2)
    with pytest.raises(ValueError, match="not the same threads per run"):
        rr.study_record(tmp_path / "par", None, tmp_path / "ser2")
    with pytest.raises(ValueError, match="not the same grid"):
        params["train"]["max_steps"] = 60
        _finished_study(tmp_path / "other", params, 1.0, 1, runs)
        rr.study_record(tmp_path / "par", tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="run `make repro` in"):
        rr.study_record(tmp_path)


def test_the_record_carries_the_reproduction_table_and_the_geometry_and_renders_them(tmp_path):
    params = {"profile": "cpu", "study": {"tasks": ["adding"], "seq_lens": [100], "seeds": [0],
                                         "models": [{"name": "lstm", "hidden_size": 4}],
                                         "clips": [{"mode": "none", "threshold": "null", "tag": "none"}]},
              "train": {"max_steps": 50, "batch_size": 8, "lr": 0.01}}
    _finished_study(tmp_path / "par", params, 600.0, 2, {})
    geometry = tmp_path / "par" / "results" / "geometry"
    geometry.mkdir(parents=True)
    rows = ["distribution,D,statistic,value,theory"]
    for D, sd, exact in ((2, 51.0, 51.96), (100, 5.7, 5.758)):
        rows += [f"sphere,{D},angle_sd_deg,{sd},{exact}", f"sphere,{D},cos_var_times_D,1.01,1.0",
                 f"sphere,{D},dist_sq_mean_over_D,0.99,1.0", f"cube,{D},relative_contrast,{30 / D},",
                 f"cube,{D},relative_contrast_times_sqrtD,{30 / D ** 0.5},"]
    rows += ["ball,2,shell_fraction,0.0199,0.0199", "ball,2,shell_fraction_mc,0.0198,0.0199",
             "ball,2,shell_fraction_mc_se,0.0001,"]
    (geometry / "reference.csv").write_text("\n".join(rows) + "\n")
    data = {**rr.study_record(tmp_path / "par"), "machine": rr.machine()}
    table = rr.render_reproduction(data)
    hs97 = next(line for line in table.splitlines() if line.startswith("| Hochreiter"))
    # no paper runs in this study: the verdict is computed, not typed
    assert hs97.endswith("| `hs97_adding` | lstm97/nfg_lstm | 100-1000 |  |  |  | not run |  |  |  | "
                         "not in this profile |")
    flat = " ".join(rr._wrapped(rr.render_geometry(data)).split())
    assert ("the largest gap to theory over all distributions and dimensions is 1.0% for D·Var(cos), 1.8% for the "
            "angle sd and 1.0% for E‖x−y‖²/D") in flat
    assert "angle sd is 51°, 5.7° at D = 2, 100 (exact 51.96°, 5.758°)" in flat
    assert "Monte Carlo 0.0198 ± 0.0001" in flat and "RC·√D = 3 at D = 100." in flat


def test_a_papers_record_sets_two_clones_verdicts_side_by_side_with_each_rows_time(tmp_path):
    """record_study --other: each reproduction row gets the other clone's verdict and whether it agrees, its time a
    seed from the runs' run_info.json, and the setups left to a GPU an estimated time; the block renders them."""
    from gradlab.study.grid import PaperRun
    from gradlab.study.verdicts import reproduction

    params = {"profile": "papers-cpu", "study": {"tasks": ["adding"], "seq_lens": [10], "seeds": [0],
                                                "models": [{"name": "lstm", "hidden_size": 4}],
                                                "clips": [{"mode": "none", "threshold": "null", "tag": "none"}]},
              "train": {"max_steps": 20, "batch_size": 8, "lr": 0.01}}
    papers = [PaperRun("le15_adding", 150, "irnn", s) for s in range(5)]
    gers = [PaperRun("gers00_continual", 500, "lstm", s) for s in range(5)]
    for clone, threads, finished, losses in (("a", 1, "2026-12-06T04:00:00Z", [0.001] * 5),
                                             ("b", 2, "2026-12-06T04:10:00Z", [0.001, 0.001, 0.012, 0.001, 0.001])):
        root = tmp_path / clone
        _finished_study(root, params, 1200.0, 1, {}, threads=threads)
        record = json.loads((root / "results" / "repro.json").read_text())
        (root / "results" / "repro.json").write_text(json.dumps(record | {"finished": finished}))
        for run, loss in zip(papers + gers, losses + losses, strict=True):
            folder = root / "runs" / run.name
            folder.mkdir(parents=True)
            if run.paper == "le15_adding":
                config = {"task": {"name": "adding", "seq_len": 150}, "model": {"name": "irnn"},
                          "trainer": {"batch_size": 64, "max_steps": 5000}}
                metrics = {"status": "completed", "solved": True, "solved_at_step": 3000, "steps": 3000,
                           "test_loss_rel_baseline": loss}
            else:  # at their budget (48,000 windows against 30,000 streams); s2 of clone b on the 1e-3 line
                config = {"task": {"name": "reber_continual", "seq_len": 500}, "model": {"name": "lstm"},
                          "trainer": {"batch_size": 16, "max_steps": 3000}}
                metrics = {"status": "completed", "steps": 3000, "stream_error_rate": loss / 10 if loss < 0.01
                           else 1.2e-3}
            (folder / "config.yaml").write_text(json.dumps(config))
            (folder / "metrics.json").write_text(json.dumps(metrics))
            (folder / "run_info.json").write_text(json.dumps({"wall_time_s": 60.0 + run.seed}))
        table = reproduction(papers + gers, root / "runs")
        (root / "results" / "summary" / "reproduction.csv").write_text(table.to_csv(index=False))
    data = {**rr.study_record(tmp_path / "a", other=tmp_path / "b"), "machine": rr.machine()}
    row = next(r for r in data["reproduction"] if r["model"] == "irnn" and r["seeds"])
    assert (row["verdict"], row["other verdict"]) == ("under budget (theirs not read)",) * 2 and row["verdicts agree"]
    assert row["seconds per seed"] == {"median": 62.0, "min": 60.0, "max": 64.0}
    assert row["ms per step"] == pytest.approx(1000 * 62.0 / 3000)
    row = next(r for r in data["reproduction"] if r["model"] == "lstm" and r["seeds"] and "Gers" in r["source"])
    # 5/5: [48%, 100%] misses their 47%; with s2 in the band, 4/4: [40%, 100%] holds it
    assert (row["verdict"], row["other verdict"], row["other in the band"]) == ("inconsistent", "consistent", "s2")
    assert row["verdicts agree"] is False
    le200 = next(e for e in data["estimates"] if e["name"] == "le15_adding" and e["T"] == 200 and e["model"] == "irnn")
    assert le200["seconds"] == pytest.approx(le200["max_steps"] * 62.0 / 3000 * 200 / 150)
    text = " ".join(rr._wrapped(rr.render_papers(data)).split())
    assert "took 20.0 min (JOBS=1, THREADS=1) and 20.0 min (JOBS=1, THREADS=2); the verdicts agree in 1 of 2 rows" \
           " (the two ran at the same time on the same cores" in text
    assert "metrics.json was byte-identical between the two in 8 of 10 paper runs (the " not in text
    assert "byte-identical between the two in 8 of 10 paper runs (`docs" in text  # s2 differs: no setup whole
    assert "| irnn | 150 | 5 | 5/5 | 100% (runs: not read) | 5/5 = 100%, 95% interval [48%, 100%]" in text
    assert "| inconsistent | consistent (s2) | – | – | 62 [60-64] |" in text
