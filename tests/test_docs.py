"""The README a newcomer reads: short, with every choice of every config group in its overrides table, its links
alive, `make` alone listing the targets, and a repository that cites nothing outside itself."""

from __future__ import annotations

import re
import subprocess
from enum import Enum

from conftest import ROOT

from gradlab import cells
from gradlab.core import choices

README = ROOT / "README.md"
MAX_LINES = 200
# conf/<group>/ -> the override that picks it, where that is not `<group>=`
GROUP_KEY = {"study": "PROFILE="}
# the choice Enums of src/gradlab/core/choices.py -> the key they are the choices of
ENUM_KEY = {"RecurrentInit": "model.recurrent_init=", "OptimizerName": "optim=", "RegulariserName": "regulariser=",
            "ClipMode": "clip=", "Accelerator": "trainer.accelerator=", "Strategy": "trainer.strategy=",
            "Precision": "trainer.precision=", "ProbeDtype": "probe.dtype=", "LoggerMode": "logger.mode=",
            "Distribution": "geometry.distributions="}
# Hydra's own launchers, chosen as `hydra/launcher=` beside conf/hydra/launcher/slurm.yaml
HYDRA_LAUNCHERS = ("basic", "submitit_local")
# what cites a file outside the repository: the shared reference, the shared design, the seeds by number
OUTSIDE = re.compile(r"science\.md|(?<![\w-])design\.md|\.\./shared|\bshared/|/work/|\bseeds?[ _]?0\d\d(?!\d)|"
                     r"\bseeds/\d{3}_", re.IGNORECASE)


def overrides_table() -> dict[str, str]:
    """README's overrides table: each key the first cell names (`task=`, `model.hidden_size=`, …) -> its row."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| override |"))
    rows: dict[str, str] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        first = line.split("|")[1]
        for key in re.findall(r"`([^`]+=)`", first):
            rows[key] = line
    return rows


def listed(row: str) -> set[str]:
    return set(re.findall(r"`([^`=]+)`", row.split("|", 2)[2]))


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; move detail to docs/ (at most {MAX_LINES})"


def test_every_choice_of_every_config_group_is_in_the_overrides_table():
    rows = overrides_table()
    missing = []
    groups = sorted({p.parent for p in (ROOT / "conf").rglob("*.yaml") if p.parent != ROOT / "conf"})
    assert len(groups) >= 12, groups
    for folder in groups:
        group = str(folder.relative_to(ROOT / "conf"))
        key = GROUP_KEY.get(group, f"{group}=")
        assert key in rows, f"conf/{group}/ has no row `{key}` in README's overrides table"
        wanted = {p.stem for p in folder.glob("*.yaml")}
        if group == "hydra/launcher":
            wanted |= set(HYDRA_LAUNCHERS)
        missing += [f"{key}{c}" for c in sorted(wanted - listed(rows[key]))]
    enums = {name for name, obj in vars(choices).items()
             if isinstance(obj, type) and issubclass(obj, Enum) and obj.__module__ == choices.__name__}
    assert enums == set(ENUM_KEY), f"map the new choice Enums to their key: {sorted(enums ^ set(ENUM_KEY))}"
    for name, key in ENUM_KEY.items():
        assert key in rows, f"{name}'s key `{key}` has no row in README's overrides table"
        missing += [f"{key}{m.value}" for m in getattr(choices, name) if m.value not in listed(rows[key])]
    missing += [f"model={m}" for m in cells.names() if m not in listed(rows["model="])]  # the registry's cells
    assert not missing, f"choices missing from README's overrides table: {missing}"


def test_links_in_readme_and_docs_point_at_files_that_exist():
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_make_alone_lists_every_target_one_line_each():
    done = subprocess.run(["make", "--no-print-directory"], cwd=ROOT, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = [line.split()[1] for line in done.stdout.splitlines()]
    assert all(line.startswith("  make ") for line in done.stdout.splitlines()), done.stdout
    targets = re.findall(r"^([a-z][\w-]*):(?!=)", (ROOT / "Makefile").read_text(), re.M)
    assert sorted(shown) == sorted(set(targets)), "every target needs a `## ` comment (what `make` shows)"
    assert {"repro", "test", "view", "experiment"} <= set(shown)


def test_nothing_in_the_repository_cites_files_outside_it():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, text=True,
                           capture_output=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or name == "tests/test_docs.py":  # the pattern itself
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:  # a figure, a binary
            continue
        hits += [f"{name}:{n}: {line.strip()[:100]}" for n, line in enumerate(text.splitlines(), 1)
                 if OUTSIDE.search(line)]
    assert not hits, "cite docs/ or the papers instead:\n" + "\n".join(hits)


def _paper_models() -> dict[str, set[str]]:
    """Each conf/paper/<name>.yaml -> the models it runs: its own `model` and those a profile runs it with."""
    import yaml

    from gradlab.launch.cli import load

    runs = {p.stem: {load("config", [f"paper={p.stem}"]).model.name} for p in (ROOT / "conf" / "paper").glob("*.yaml")}
    for profile in (ROOT / "conf" / "study").glob("*.yaml"):
        for setup in (yaml.safe_load(profile.read_text()).get("papers") or {}).get("setups", []):
            runs[setup["name"]].add(setup["model"])
    return runs


def test_every_paper_setup_the_docs_name_runs_the_model_they_say():
    """A model the README or a doc page names beside a paper's setup is one that setup runs: on a `paper=<name>`
    line (unless the line picks another with `model=`), and as "gradlab's `<model>`" in a paragraph about the paper
    (its setup or its authors named). docs/literature.md once said H&S's model "is gradlab's `nfg_lstm`" where
    conf/paper/hs97_adding.yaml runs `lstm97`."""
    from gradlab.study.claims import PUBLISHED

    runs, models = _paper_models(), set(cells.names())
    authors = {p.paper: p.source.split(",")[0] for p in PUBLISHED if p.paper}
    checked = 0
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for line in text.splitlines():
            for name in re.findall(r"\bpaper=(\w+)", line):
                if page.name == "bad-inputs.md":  # a bad value, as a user types it
                    continue
                assert name in runs, (page.name, line)
                picked = set(re.findall(r"\bmodel=(\w+)", line))
                said = {w for w in re.findall(r"[\w]+", line.split("#", 1)[-1] if "#" in line else line)
                        if w in models} - picked
                assert said <= runs[name], (page.name, line, runs[name])
                checked += 1
        for paragraph in re.split(r"\n\s*\n|\n(?=- )", text):
            named = {n for n in runs if f"`{n}`" in paragraph or f"paper={n}" in paragraph}
            named |= {n for n, who in authors.items() if paragraph.lstrip("- ").startswith(f"**{who}")}
            for model in re.findall(r"gradlab's `(\w+)`", paragraph):
                if model in models and named:
                    assert any(model in runs[n] for n in named), (page.name, model, named, paragraph[:200])
                    checked += 1
    assert checked >= 3
