"""The report for a reader: on the smoke study in headless Chromium at 1280x800, the answer (a one-line headline and
the headline figure) on the first screen, a summary table no wider than the window, the sections in the order of a
reader's questions, nothing broken or fetched; and, without a browser, the one-line headline and the literature's
links."""

from __future__ import annotations

import html
import os
import re

import pandas as pd
import pytest
import yaml

from gradlab.report.browser import VIEWPORT, chromium, render
from gradlab.stages import report
from gradlab.study import summary as study
from gradlab.study.claims import PUBLISHED

# smoke_study (tests/conftest.py): a copy of the repository with the smoke study reproduced, once per session

# a reader's questions, in the page's order
SECTIONS = ("#summary", "#bptt", "#dynamics", "#memory", "#literature", "#geometry", "#appendix")
FIRST_SCREEN = ("#headline", "#headline-figure img", "table[id^='summary-']", *SECTIONS)


@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="no chromium (make browser)")
def test_the_first_screen_holds_the_answer(smoke_study, tmp_path):
    shot = tmp_path / "first_screen.png"
    found = render(smoke_study / "reports" / "index.html", shot, full_page=False, boxes=FIRST_SCREEN)
    boxes = found["boxes"]
    print({k: [{q: round(v) for q, v in b.items()} for b in bs] for k, bs in boxes.items()})  # -s: the measures
    assert found["window"] == VIEWPORT
    assert found["console_errors"] == [] and found["page_errors"] == [], found
    assert found["broken_images"] == [] and found["failed_requests"] == [] and found["external_requests"] == []
    (headline,), (figure,) = boxes["#headline"], boxes["#headline-figure img"]
    assert headline["height"] < 2 * headline["lineHeight"], headline  # one line (and its padding)
    assert 0 <= figure["top"] < VIEWPORT["height"], figure  # the headline figure starts on the first screen
    # its text (>= 9 pt at 110 dpi: 13.75 px in the PNG) is >= 10 px as shown
    assert figure["width"] / figure["naturalWidth"] >= 10 / 13.75, figure
    tables = boxes["table[id^='summary-']"]
    assert tables and all(t["width"] <= VIEWPORT["width"] and t["right"] <= VIEWPORT["width"] for t in tables)
    assert found["page_size"]["width"] <= VIEWPORT["width"]  # nothing scrolls sideways
    tops = [boxes[s][0]["top"] for s in SECTIONS]
    assert tops == sorted(tops), dict(zip(SECTIONS, tops, strict=True))
    from PIL import Image

    assert Image.open(shot).size == (VIEWPORT["width"], VIEWPORT["height"])  # `make screenshot`: the first screen


@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="no chromium (make browser)")
@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="no chromium (make browser)")
def test_the_forest_plot_opens_the_literature_section_legibly(smoke_study, tmp_path):
    """At 1280x800: the forest plot is the literature section's first figure, before its tables, within the window,
    its text (>= 9 pt at 110 dpi) >= 10 px as shown; the smoke study's paper rows are drawn (under budget)."""
    found = render(smoke_study / "reports" / "index.html", tmp_path / "page.png", full_page=True,
                   boxes=("#literature", "#forest img", "#literature ~ table", "#geometry"))
    boxes = found["boxes"]
    (section,), (forest,), (geometry,) = boxes["#literature"], boxes["#forest img"], boxes["#geometry"]
    assert section["top"] < forest["top"] < min(t["top"] for t in boxes["#literature ~ table"]) < geometry["top"]
    assert forest["right"] <= VIEWPORT["width"] and forest["width"] / forest["naturalWidth"] >= 10 / 13.75, forest
    repro = pd.read_csv(smoke_study / "results" / "summary" / "reproduction.csv")
    from gradlab.report.forest import judged_rows

    assert len(judged_rows(repro)) >= 1 and found["broken_images"] == []


def test_the_forest_plot_draws_each_judged_row_and_leaves_the_rest(tmp_path):
    """A rate row and a sequences row are drawn, each in its panel; a row not run or without a number is not."""
    from gradlab.report.forest import forest_figure, judged_rows

    rows = pd.DataFrame([
        {"source": "Gers, Schmidhuber & Cummins 2000", "model": "lstm", "T": 500, "kind": "rate",
         "verdict": "consistent", "ours point": 1.0, "ours lo": 0.4, "ours hi": 1.0, "theirs value": 0.47,
         "theirs lo": 0.37, "theirs hi": 0.57},
        {"source": "Hochreiter & Schmidhuber 1997, Exp. 4", "model": "lstm97", "T": 100, "kind": "central",
         "verdict": "too few seeds", "ours point": 9e4, "ours lo": 6e4, "ours hi": float("inf"),
         "theirs value": 74_000, "theirs lo": None, "theirs hi": None},
        {"source": "Greff et al. 2017", "model": "nfg_lstm", "T": "", "kind": "", "verdict": "not run",
         "ours point": None, "ours lo": None, "ours hi": None, "theirs value": None, "theirs lo": None,
         "theirs hi": None}])
    assert list(judged_rows(rows).model) == ["lstm", "lstm97"]
    from PIL import Image

    path = forest_figure(rows, tmp_path / "forest.png")
    assert Image.open(path).size[1] > Image.open(path).size[0] / 4  # two panels stacked
    assert forest_figure(rows.iloc[2:], tmp_path / "none.png") is None


def test_the_record_steps_picture_is_the_first_screen_and_says_what_it_shows(smoke_study, tmp_path):
    """What pipelines/record_study.py does for README's picture, on the smoke study: the report's first screen at
    1280x800, its record (from the study's own record) in the PNG; a second take replaces it whole."""
    from PIL import Image

    from gradlab.pages import picture
    from gradlab.pages.recording import study_record

    record = picture.picture_record("smoke", study_record(smoke_study))
    assert record["models"] == [m["name"] for m in yaml.safe_load((smoke_study / "params.yaml").read_text())
                                ["study"]["models"]] and record["runs"] > 0
    png = picture.take(smoke_study / "reports" / "index.html", tmp_path / "report.png", record)
    assert picture.read(png) == record and Image.open(png).size == (VIEWPORT["width"], VIEWPORT["height"])
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]  # no temporary left
    broken = tmp_path / "broken.html"
    broken.write_text('<img src="missing.png" alt="gone">')
    with pytest.raises(RuntimeError, match="no picture taken"):
        picture.take(broken, png, record)
    assert picture.read(png) == record  # the picture there is kept


def test_each_published_setup_is_on_the_page_once(smoke_study):
    """Each published result appears once, in the literature section, with an anchor the tables link to; the summary
    table has no column of their text."""
    page = (smoke_study / "reports" / "index.html").read_text()
    for i, p in enumerate(PUBLISHED):
        assert page.count(f'id="pub-{i + 1}"') == 1
        if p.describe_setup():
            assert page.count(html.escape(p.describe_setup())) == 1, p.source
    summary = page[page.index('id="summary"'):page.index('id="bptt"')]
    assert ">published</th>" not in summary and "ours differs" not in summary


def _summary(rows: list[dict]) -> pd.DataFrame:
    base = dict.fromkeys(study.COLUMNS)
    return pd.DataFrame([{**base, "task": "adding", "hidden_size": 8, "clip": "none", "status": "completed",
                          "diverged": False, "published": "", **r} for r in rows], columns=study.COLUMNS)


def test_the_headline_is_one_line_of_who_learns_it():
    rows = [{"seq_len": 10, "model": "rnn", "seed": 0, "solved": True, "h_ratio_first_last": 0.5}]
    for seed in (0, 1, 2):
        rows += [{"seq_len": 100, "model": "rnn", "seed": seed, "solved": False,
                  "h_ratio_first_last": 1e-12 * 10**seed},
                 {"seq_len": 100, "model": "lstm", "seed": seed, "solved": seed < 2, "h_ratio_first_last": 0.31},
                 {"seq_len": 100, "model": "nfg_lstm", "seed": seed, "solved": True, "h_ratio_first_last": 0.52}]
    df = _summary(rows)
    assert study.headline_line(df) == ("adding, T=100: lstm 2/3 and nfg_lstm 3/3 learn it, "
                                       "rnn 0/3 does not (runs solved).")
    assert study.headline_line(df[df.seq_len == 10]) == "adding, T=10: every model learns it: rnn 1/1 (runs solved)."
    nobody = df[df.seq_len == 100].assign(solved=False, h_ratio_first_last=None)
    assert study.headline_line(nobody) == ("adding, T=100: no model learns it: rnn 0/3, lstm 0/3 and nfg_lstm 0/3 "
                                           "(runs solved).")
    # two clip settings: solved pools them
    clipped = df[df.seq_len == 100].assign(clip="norm1.0", h_ratio_first_last=1e-40, solved=True)
    assert study.headline_line(pd.concat([df[df.seq_len == 100], clipped])) == (
        "adding, T=100: lstm 5/6 and nfg_lstm 6/6 learn it, rnn 3/6 does not (runs solved).")


def test_the_summary_table_is_numbers_with_links_to_the_literature():
    df = _summary([{"seq_len": 200, "model": "rnn", "seed": s, "solved": False, "loss_rel_baseline": v,
                    "published": "a long text of the published claims"} for s, v in ((0, 0.9), (1, 0.8))]
                  + [{"seq_len": 200, "model": "lstm", "seed": s, "solved": True, "solved_at_step": step,
                      "loss_rel_baseline": v} for s, step, v in ((0, 1000.0, 0.002), (1, 1500.0, 0.004))])
    table = report.summary_table(df, "adding")
    assert list(table.columns) == ["model", "clip", "T", "solved", "steps to solve", "loss / baseline", "diverged",
                                   "horizon", "h₀/h_T−1", "h₀/h_T−1 train", "decay", "predicted", "λ₁", "clipped",
                                   "lit."]
    assert set(table.columns) <= set(report.SUMMARY_TITLES) | {"model", "clip", "T"}  # every number defined
    rnn, lstm = table.iloc[0], table.iloc[1]
    assert (rnn["solved"], rnn["loss / baseline"], rnn["steps to solve"]) == ("0/2", "85% [80–90]", "–")
    assert (lstm["solved"], lstm["steps to solve"], lstm["loss / baseline"]) == ("2/2", "1250 [1000–1500]",
                                                                                  "0.3% [0.2–0.4]")
    # the published results that speak to a cell, as links to their one row in the literature section
    linked = [int(n) for n in re.findall(r'href="#pub-(\d+)"', rnn["lit."])]
    assert linked == [i + 1 for i, p in enumerate(PUBLISHED) if p.speaks_to("adding", "rnn", 200)] and linked


@pytest.mark.slow  # three runs side by side (16 s of make test's 5 min): CI runs it (make test-ci-slow)
@pytest.mark.ci
def test_the_demo_trains_probes_and_writes_its_page(tmp_path):
    """`make demo`'s code path on a tiny setup: the three runs side by side (the training and analyze stages' own
    code), then one page with the headline figure and the summary table."""
    from gradlab.stages import demo

    setup = demo.Setup(seq_len=10, hidden_size=8, batch_size=16, max_steps=20, val_every=10, probe_every=10,
                       n_train=128, n_val=32, n_test=32)
    page = demo.run(tmp_path, setup)
    text = page.read_text()
    assert page == tmp_path / "index.html" and "<title>gradlab demo</title>" in text
    assert 'id="headline-figure"' in text and 'id="summary-adding"' in text and 'href="#pub-' not in text
    for model in demo.MODELS:
        run = tmp_path / "runs" / f"adding-T10-{model}-norm1.0-s0"
        assert (run / "metrics.json").is_file() and (run / "analysis" / "bptt.csv").is_file(), model


def test_a_one_word_cell_does_not_break_mid_word_and_a_long_one_still_wraps():
    """At 1280 px the summary table broke "nfg_lstm" and "norm1.0" mid-word (overflow-wrap:anywhere on every left
    cell); a short word now gets white-space:nowrap, a run name or a paper's setup still wraps anywhere."""
    import pandas as pd

    from gradlab.report.html import CSS, html_table

    page = html_table(pd.DataFrame({"model": ["nfg_lstm"], "run": ["adding-T100-nfg_lstm-norm1.0-s0"],
                                    "setup": ["two words"], "T": [100]}), left=("model", "run", "setup"))
    assert '<td class="l k">nfg_lstm</td>' in page
    assert '<td class="l">adding-T100-nfg_lstm-norm1.0-s0</td>' in page and '<td class="l">two words</td>' in page
    assert '<td class="">100</td>' in page and "td.k{white-space:nowrap}" in CSS
