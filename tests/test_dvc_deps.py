"""Every DVC stage lists what it runs: the import closure of its entry point within src/ and the conf/ files its
Hydra config composes. A change to any of them must make DVC rerun the stage; a missing dep leaves results stale."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT

SRC = ROOT / "src"
GRADLAB = SRC / "gradlab"


def _runtime_nodes(tree: ast.AST):
    """Every node that can run: all of them but the bodies of `if TYPE_CHECKING:` (imports for annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                todo += child.orelse
            else:
                todo.append(child)


def gradlab_imports(path: Path) -> set[Path]:
    """The gradlab modules a file imports, anywhere in it (lazy imports inside functions included; not those under
    `if TYPE_CHECKING:`, which never run)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "gradlab" or name.startswith("gradlab."):
                module = SRC / Path(*name.split("."))
                for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                    if candidate.is_file():
                        found.add(candidate)
    return found


def import_closure(entry: Path) -> set[Path]:
    """The files an entry point runs: its gradlab imports, transitively; importing a.b imports package a too, and a
    package whose __init__ imports all its modules (gradlab.cells, gradlab.tasks: a file there registers itself)
    brings all of them."""
    todo, seen = [entry], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += gradlab_imports(path)
        if path.name == "__init__.py" and "pkgutil.iter_modules(__path__)" in path.read_text():
            todo += sorted(path.parent.glob("*.py"))
        if path.is_relative_to(SRC):  # and every package above it
            todo += [d / "__init__.py" for d in path.parents if d.is_relative_to(GRADLAB) and d / "__init__.py" != path]
    return seen


def code_deps(entry: Path) -> set[Path]:
    """What a stage lists for its code: its entry point, gradlab/__init__.py, each package it imports from (as the
    package's folder: a change anywhere in a package reruns the stages that import it) and each gradlab.stages
    module it runs (one file each: a stage's own code reruns only that stage)."""
    deps = {entry}
    for path in import_closure(entry):
        if not path.is_relative_to(GRADLAB):
            continue
        parts = path.relative_to(GRADLAB).parts
        deps.add(path if len(parts) == 1 or parts[0] == "stages" else GRADLAB / parts[0])
    return deps


def composed_conf_files(config_name: str, overrides: list[str]) -> set[Path]:
    """conf/<config_name>.yaml and the file of every group choice it composes (conf/<group>/<choice>.yaml)."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    from gradlab.launch.cli import CONF_DIR, register_schemas

    register_schemas(config_name)
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra.compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    files = {CONF_DIR / f"{config_name}.yaml"}
    for group, choice in cfg.hydra.runtime.choices.items():
        path = CONF_DIR / group / f"{choice}.yaml"
        if choice is not None and path.is_file():
            files.add(path)
    return files


def stages():
    from dvc.repo import Repo

    return list(Repo(str(ROOT)).index.stages)


def covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


HYDRA_ENTRIES = {"train.py": "config", "analyze.py": "config", "generate.py": "generate", "geometry.py": "geometry",
                 "memory.py": "memory"}


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_stage_deps_are_the_packages_it_imports_and_its_config(stage):
    """Both ways: everything the stage runs is listed, and no code is listed that it does not run (a package it
    does not import would rerun it for nothing)."""
    argv = shlex.split(stage.cmd)
    assert argv[:2] == ["PYTHONPATH=src", "python"], stage.cmd
    entry = ROOT / argv[2]
    deps = [ROOT / d.def_path for d in stage.deps]
    needed = code_deps(entry)
    if entry.name in HYDRA_ENTRIES:
        needed |= composed_conf_files(HYDRA_ENTRIES[entry.name], argv[3:])
    missing = sorted(str(p.relative_to(ROOT)) for p in needed if not covered(p, deps))
    assert not missing, f"{stage.addressing} does not list {missing}"
    code = {d for d in deps if d.is_relative_to(SRC) or d.is_relative_to(ROOT / "pipelines")}
    extra = sorted(str(d.relative_to(ROOT)) for d in code - needed)
    assert not extra, f"{stage.addressing} lists code it does not import: {extra}"


def test_the_closure_follows_lazy_imports():
    """The train stage imports tracking.loggers, which imports wandb_online only inside a function: it counts; and
    importing gradlab.cells brings every cell file, which the package imports by listing itself."""
    closure = import_closure(ROOT / "pipelines" / "train.py")
    assert GRADLAB / "stages" / "train.py" in closure and GRADLAB / "tracking" / "wandb_online.py" in closure
    assert set((GRADLAB / "cells").glob("*.py")) <= closure


def test_a_report_figure_reruns_no_training_and_geometry_needs_no_model():
    """The figures live with their owners and the schemas with their stages: a training run's code is not the
    report's, and the geometry stage imports no cell, task or model."""
    train = code_deps(ROOT / "pipelines" / "train.py")
    assert GRADLAB / "report" not in train and GRADLAB / "study" not in train
    geometry = code_deps(ROOT / "pipelines" / "geometry.py")
    assert not {GRADLAB / p for p in ("cells", "tasks", "models", "training")} & geometry, sorted(geometry)


def test_dvc_sends_no_usage_analytics():
    from dvc.repo import Repo

    assert Repo(str(ROOT)).config.read("repo")["core"]["analytics"] == "false"  # .dvc/config, not a user setting


def test_run_outputs_follow_the_run_folder_naming_rule():
    """dvc.yaml's train/analyze outs, the Hydra default run_name= and gradlab.core.runfolder.run_name spell one rule; a
    paper stage's outs are a training run's files (RunFolder.DVC_OUTS: its last.ckpt is left for a rerun to resume)."""
    from gradlab.core.runfolder import RunFolder, run_name
    from gradlab.launch.cli import load

    checked, seen = set(), set()
    for stage in stages():
        kind = stage.addressing.split("@")[0]
        if kind not in ("train", "analyze", "paper"):
            continue
        # one stage per kind and model (or paper setup): the rule is the same for every T, clip and seed, and each
        # Hydra compose costs 0.1 s (all 82 of the cpu profile's stages took 11 s)
        item = re.search(r"\b(?:model|paper)=(\S+)", stage.cmd)[1]
        if (kind, item) in seen:
            continue
        seen.add((kind, item))
        cfg = load("config", shlex.split(stage.cmd)[3:])
        if kind != "paper":
            assert cfg.run_name == run_name(cfg.task.name, cfg.task.seq_len, cfg.model.name, cfg.clip.tag, cfg.seed)
        folder = RunFolder.of("runs", cfg.run_name)
        outs = {o.def_path for o in stage.outs}
        expected = ({str(folder.path / name) for name in RunFolder.DVC_OUTS} if kind != "analyze"
                    else {str(folder.analysis.path)})
        assert outs == expected, stage.addressing
        checked.add(kind)
    assert checked == {"train", "analyze", "paper"}
