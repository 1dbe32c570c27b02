"""The study's grid, profiles and published-results lookup, without running anything."""

import pytest
import yaml
from conftest import ROOT

from gradlab.config import ConfigError
from gradlab.study import PROFILES, published_for, read_params, study_runs, switch_profile


def test_shipped_params_are_the_cpu_profile():
    assert read_params(ROOT / "params.yaml") == yaml.safe_load((ROOT / "conf/study/cpu.yaml").read_text())


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_is_a_valid_grid(profile):
    params = read_params(ROOT / "conf" / "study" / f"{profile}.yaml")
    runs = study_runs(params)
    s = params["study"]
    assert params["profile"] == profile
    assert len(runs) == len(s["tasks"]) * len(s["seq_lens"]) * len(s["models"]) * len(s["clips"]) * len(s["seeds"])
    assert len({r.name for r in runs}) == len(runs)  # every run has its own folder
    assert runs[0].name == f"{s['tasks'][0]}-T{s['seq_lens'][0]}-rnn-none-s{s['seeds'][0]}"


def test_switching_profiles_keeps_hand_edits_of_the_current_one(tmp_path):
    params = tmp_path / "params.yaml"
    assert switch_profile(params, "smoke")
    edited = params.read_text().replace("hidden_size: 8}", "hidden_size: 12}", 1)
    params.write_text(edited)
    assert not switch_profile(params, "smoke") and params.read_text() == edited
    assert switch_profile(params, "cpu") and read_params(params)["profile"] == "cpu"
    with pytest.raises(ConfigError, match="PROFILE='big' is not a valid choice; choose one of: smoke, cpu, gpu"):
        switch_profile(params, "big")
    assert read_params(params)["profile"] == "cpu"  # untouched by the refused switch


def test_a_bad_grid_names_the_value(tmp_path):
    params = read_params(ROOT / "conf/study/smoke.yaml")
    params["study"]["models"][0]["name"] = "gru"
    with pytest.raises(ConfigError, match="'gru' is not a valid choice"):
        study_runs(params)
    (tmp_path / "p.yaml").write_text("data: {}\n")
    with pytest.raises(ConfigError, match="no `study:` section"):
        read_params(tmp_path / "p.yaml")


def test_published_results_sit_beside_the_matching_cells():
    assert "Hochreiter" in published_for("adding", "lstm", "none", 100)
    assert "Pascanu" in published_for("adding", "rnn", "norm1.0", 150)
    assert "Pascanu" not in published_for("adding", "rnn", "none", 150)
    assert published_for("adding", "lstm", "none", 10) == ""
