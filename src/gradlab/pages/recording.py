"""docs/results/*.json: what the code measured, with the machine it ran on (write_result, read_result, machine), and
the record of a finished study (study_record, for pipelines/record_study.py). gradlab.pages.markers renders the
pages' result blocks from these files."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from gradlab.core.runfolder import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[3]


RESULTS_DIR = ROOT / "docs" / "results"


def machine() -> dict[str, Any]:
    """What results are bitwise reproducible on: the CPU, its vector instructions, and the numeric software."""
    import torch

    cpu, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == platform.machine():
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = next((f for f in ("avx512f", "avx2", "sse4_2") if f in flags), "other").upper().replace("_", ".")
    mkl = next((line.strip(" -") for line in torch.__config__.show().splitlines() if "Math Kernel Library" in line),
               "no MKL")
    return {"cpu": cpu, "isa": isa, "cores": _cores(), "torch": torch.__version__, "mkl": mkl[:60]}


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_line(m: dict[str, Any]) -> str:
    return f"{m['cpu']} ({m['isa']}, {m['cores']} cores), torch {m['torch']}"


def write_result(name: str, data: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """docs/results/<name>.json, with the machine it was measured on."""
    path = results_dir / f"{name}.json"
    atomic_write_bytes(path, (json.dumps({**data, "machine": machine()}, indent=1, sort_keys=True) + "\n").encode())
    return path


def read_result(name: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    return json.loads((results_dir / f"{name}.json").read_text())


def _finished_study(clone: Path) -> dict[str, Any]:
    """What one finished `make repro` left in a checkout: its timing record and the grid it ran."""
    import yaml

    record = clone / "results" / "repro.json"
    if not record.is_file():
        raise FileNotFoundError(f"{record} is missing: run `make repro` in {clone} first (it writes the record)")
    return {"repro": json.loads(record.read_text()), "params": yaml.safe_load((clone / "params.yaml").read_text())}


def _same_files(a: Path, b: Path, pattern: str) -> tuple[int, list[str]]:
    """How many files matching `pattern` there are under a, and those (relative paths) not byte-identical in b or
    found in b only."""
    files = sorted(p.relative_to(a) for p in a.glob(pattern))
    differ = [str(p) for p in files if not (b / p).is_file() or (a / p).read_bytes() != (b / p).read_bytes()]
    return len(files), differ + [str(p.relative_to(b)) for p in b.glob(pattern) if not (a / p.relative_to(b)).exists()]


def reproduction_record(clone: Path) -> list[dict[str, Any]] | None:
    """results/summary/reproduction.csv of a finished study, each row with its runs' wall time per seed and time per
    optimizer step (from runs/<run>/run_info.json and metrics.json: what the process measured, kept out of the
    table itself so that it stays the same on every machine)."""
    import statistics

    import pandas as pd

    path = clone / "results" / "summary" / "reproduction.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, keep_default_na=False)
    rows = json.loads(table.drop(columns=["their setup"], errors="ignore").to_json(orient="records"))
    for row in rows:
        seconds, per_step = [], []
        for run in str(row.pop("runs", "")).split():
            info, metrics = (clone / "runs" / run / f for f in ("run_info.json", "metrics.json"))
            if info.is_file() and metrics.is_file():
                wall, steps = json.loads(info.read_text())["wall_time_s"], json.loads(metrics.read_text())["steps"]
                seconds.append(wall)
                per_step.append(wall / steps if steps else None)
        if seconds:
            row["seconds per seed"] = {"median": statistics.median(seconds), "min": min(seconds),
                                       "max": max(seconds)}
            row["ms per step"] = 1000 * statistics.median([x for x in per_step if x] or [0.0])
    return rows


def cpu_estimates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each setup of the GPU-sized paper profile (conf/study/paper.yaml) that this study did not run: its budget
    (conf/paper/<name>.yaml's trainer.max_steps) times the time a step took in this study's run of the same setup at
    another T, scaled by the length (a step's cost is linear in T): the estimated time a seed on this machine. None
    where this study ran no step of that setup."""
    import yaml

    conf = ROOT / "conf"
    ran = {(r["setup"], r["model"]): (int(r["T"]), r["ms per step"]) for r in rows if r.get("ms per step")}
    done = {(r["setup"], r["model"], str(r["T"])) for r in rows if r.get("seeds")}
    out = []
    for setup in yaml.safe_load((conf / "study" / "paper.yaml").read_text())["papers"]["setups"]:
        key = f"conf/paper/{setup['name']}.yaml"
        if (key, setup["model"], str(setup["T"])) in done:
            continue
        steps = yaml.safe_load((conf / "paper" / f"{setup['name']}.yaml").read_text())["trainer"]["max_steps"]
        basis = ran.get((key, setup["model"]))
        out.append({**setup, "max_steps": steps, "basis_T": basis[0] if basis else None,
                    "seconds": steps * basis[1] / 1000 * setup["T"] / basis[0] if basis else None})
    return out


def _beside_other_clone(data: dict[str, Any], clone: Path, other: Path) -> None:
    """The same grid from another fresh clone: its reproduction table beside ours, and whether each verdict agrees."""
    p = _finished_study(clone)["params"]
    oth = _finished_study(other)
    if oth["params"] != p:
        raise ValueError(f"{other}/params.yaml is not {clone}/params.yaml: not the same grid")
    theirs = {(r["source"], r["claim"], r["model"], str(r["T"])): r for r in reproduction_record(other) or []}
    n, differ = _same_files(clone / "runs", other / "runs", "paper-*/metrics.json")
    runs = sorted(p.parent.name for p in (clone / "runs").glob("paper-*/metrics.json"))
    data["other"] = {"repro": oth["repro"], "reproduction": list(theirs.values()), "paper_runs": runs,
                     "metrics_json_differ": [d.split("/")[0] for d in differ]}
    for row in data.get("reproduction", []):
        twin = theirs.get((row["source"], row["claim"], row["model"], str(row["T"])), {})
        row["other verdict"] = twin.get("verdict")
        row["other in the band"] = twin.get("in the band")
        row["verdicts agree"] = twin.get("verdict") == row["verdict"]


def _beside_serial_run(data: dict[str, Any], key: str, clone: Path, other: Path) -> None:
    """The same grid run serially (`key` serial: JOBS=1; serial_same_threads: JOBS=1 at the clone's threads): the
    wall-time ratio and whether summary.csv and every run's metrics.json are byte-identical."""
    par, ser = _finished_study(clone), _finished_study(other)
    if ser["params"] != par["params"]:
        raise ValueError(f"{other}/params.yaml is not {clone}/params.yaml: not the same grid")
    if key == "serial_same_threads" and ser["repro"]["threads"] != par["repro"]["threads"]:
        raise ValueError(f"{other} ran with {ser['repro']['threads']} threads, {clone} with "
                         f"{par['repro']['threads']}: not the same threads per run")
    n, differ = _same_files(clone / "runs", other / "runs", "*/metrics.json")
    _, summary = _same_files(clone / "results" / "summary", other / "results" / "summary", "summary.csv")
    data[key] = ser["repro"]
    data["compare" if key == "serial" else "compare_same_threads"] = {
        "wall_ratio": round(par["repro"]["wall_s"] / ser["repro"]["wall_s"], 3),
        "metrics_json_identical": n - len(differ), "metrics_json_runs": n,
        "metrics_json_differ": differ, "summary_csv_identical": not summary}


def study_record(clone: Path, serial: Path | None = None, serial_same_threads: Path | None = None,
                 other: Path | None = None) -> dict[str, Any]:
    """A finished study for README (pipelines/record_study.py): the grid, the wall time, the headline and the
    per-cell table of `clone`; with `serial` (a checkout of the same grid where `make repro JOBS=1` ran) the wall
    time ratio and whether summary.csv and every run's metrics.json are byte-identical between the two; with
    `serial_same_threads` (`make repro JOBS=1 THREADS=<clone's threads>`) the same comparison at equal threads per
    run, which is what bitwise equality needs (a run's floating-point sums depend on its thread count); with `other`
    (the same grid from another fresh clone, e.g. other THREADS: other rounding, as another CPU) its reproduction
    table beside this one and whether each row's verdict is the same in both."""
    import subprocess

    import pandas as pd

    from gradlab.study.summary import headline, lyapunov_agreement, pooled, read_summary

    par = _finished_study(clone)
    p = par["params"]
    steps_per_T(p["train"]["max_steps"])  # an integer or {T: steps} (a string in params.yaml), recorded as it is
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    df = read_summary(clone / "results" / "summary" / "summary.csv")
    data: dict[str, Any] = {
        "setup": {"profile": p["profile"], "tasks": p["study"]["tasks"], "seq_lens": p["study"]["seq_lens"],
                  "seeds": p["study"]["seeds"], "models": p["study"]["models"],
                  "clips": [c["tag"] for c in p["study"]["clips"]], "runs": len(df), **p["train"]},
        "parallel": par["repro"], "headline": headline(df),
        **({"commit": head.stdout.strip()} if head.returncode == 0 else {}),
        "cells": json.loads(pooled(df).drop(columns=["published"]).to_json(orient="records")),
        "lyapunov": json.loads(lyapunov_agreement(df).to_json(orient="records"))}
    geometry = clone / "results" / "geometry" / "reference.csv"
    if geometry.is_file():
        data["geometry"] = json.loads(pd.read_csv(geometry).to_json(orient="records"))
        data["setup"]["geometry"] = p.get("geometry")
    rows = reproduction_record(clone)
    if rows is not None:
        data["reproduction"] = rows
        data["setup"]["papers"] = p.get("papers")
    if rows:
        data["estimates"] = cpu_estimates(rows)
    if other is not None:
        _beside_other_clone(data, clone, other)
    for key, again in (("serial", serial), ("serial_same_threads", serial_same_threads)):
        if again is not None:
            _beside_serial_run(data, key, clone, again)
    return data


def steps_per_T(max_steps: int | str | dict) -> int | dict[int, int]:
    """train.max_steps as a study gives it: one integer for every T, or {T: steps}, written as a string
    ("{20:400,50:800,100:1600}": params.yaml's form, which DVC hands to Hydra as it is) or, read back from a JSON
    record, a mapping with string keys. ValueError for anything else."""
    if isinstance(max_steps, int) and not isinstance(max_steps, bool):
        return max_steps
    try:
        if isinstance(max_steps, dict):
            return {int(T): int(n) for T, n in max_steps.items()}
        if isinstance(max_steps, str):
            text = max_steps.strip()
            if not (text.startswith("{") and text.endswith("}")):
                return int(text)
            pairs = [item.split(":") for item in text[1:-1].split(",") if item.strip()]
            if pairs and all(len(p) == 2 for p in pairs):
                return {int(T): int(n) for T, n in pairs}
    except (TypeError, ValueError):
        pass
    raise ValueError(f"train.max_steps={max_steps!r}: expected an integer or {{T: steps}} such as "
                     "'{20:400,50:800,100:1600}'")
