"""docs/results/*.json: what the code measured, with the machine it ran on (write_result, read_result, machine), and
the record of a finished study (study_record, for pipelines/record_study.py). gradlab.readme_results renders the
pages' result blocks from these files.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from gradlab.runfolder import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[2]
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


def study_record(clone: Path, serial: Path | None = None, serial_same_threads: Path | None = None) -> dict[str, Any]:
    """A finished study for README (pipelines/record_study.py): the grid, the wall time, the headline and the
    per-cell table of `clone`; with `serial` (a checkout of the same grid where `make repro JOBS=1` ran) the wall
    time ratio and whether summary.csv and every run's metrics.json are byte-identical between the two; with
    `serial_same_threads` (`make repro JOBS=1 THREADS=<clone's threads>`) the same comparison at equal threads per
    run, which is what bitwise equality needs (a run's floating-point sums depend on its thread count)."""
    import subprocess

    import pandas as pd

    from gradlab.summary import cells, headline, lyapunov_agreement, read_summary

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
        "cells": json.loads(cells(df).drop(columns=["published"]).to_json(orient="records")),
        "lyapunov": json.loads(lyapunov_agreement(df).to_json(orient="records"))}
    geometry = clone / "results" / "geometry" / "reference.csv"
    if geometry.is_file():
        data["geometry"] = json.loads(pd.read_csv(geometry).to_json(orient="records"))
        data["setup"]["geometry"] = p.get("geometry")
    repro = clone / "results" / "summary" / "reproduction.csv"
    if repro.is_file():
        table = pd.read_csv(repro, keep_default_na=False).drop(columns=["runs", "their setup"], errors="ignore")
        data["reproduction"] = json.loads(table.to_json(orient="records"))
        data["setup"]["papers"] = p.get("papers")
    for key, other in (("serial", serial), ("serial_same_threads", serial_same_threads)):
        if other is None:
            continue
        ser = _finished_study(other)
        if ser["params"] != p:
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
