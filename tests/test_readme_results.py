"""README's result numbers are rendered from the files the code wrote (docs/results/*.json), never typed."""

import json

import pytest
from conftest import ROOT

from gradlab import readme_results as rr


def test_readme_blocks_say_what_their_result_files_say():
    text = (ROOT / "README.md").read_text()
    assert set(rr.blocks(text)) >= {"documented_run"}
    assert rr.stale_blocks(text) == [], "run `make readme`"
    flat = " ".join(text.split())
    for name in rr.blocks(text):  # every block names the machine its numbers were measured on
        assert rr.machine_line(rr.read_result(name)["machine"]) in flat


def test_a_changed_result_file_makes_the_readme_stale(tmp_path):
    text = (ROOT / "README.md").read_text()
    data = rr.read_result("documented_run")
    data["models"]["rnn"]["h_ratio"] *= 10
    (tmp_path / "documented_run.json").write_text(json.dumps(data))
    assert rr.stale_blocks(text, tmp_path) == ["documented_run"]
    assert rr.stale_blocks(rr.render(text, tmp_path), tmp_path) == []


def test_number_formatting():
    assert rr.g(9.93e-11) == "9.9e-11" and rr.g(-0.2312) == "-0.23" and rr.g(None) == "–"
    with pytest.raises(KeyError):
        rr.render("<!-- results:nothing -->\nx\n<!-- /results:nothing -->", ROOT)
