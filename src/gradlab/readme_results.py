"""Result numbers in README.md and docs/*.md come from files the code wrote: marked blocks that `make readme`
rewrites.

A block is `<!-- results:NAME -->` ... `<!-- /results:NAME -->`; its text is rendered from docs/results/NAME.json
(NAME up to its first `/`; written by the code that measured it, with the machine it ran on) by the renderer
registered for NAME. A block may sit in any of the pages (README.md, docs/*.md); a renderer writes links from the
repository's root (`docs/x.png`) and a page in docs/ gets them relative to itself. A test renders every block from
its file and fails when a page says anything else.
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradlab.runfolder import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "docs" / "results"
# <!-- results:<file>[/<part>] --> … <!-- /results:<file>[/<part>] -->: rendered from docs/results/<file>.json
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w/-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


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

# ------------------------------------------------------------------------------------------------ renderers


def g(x: float | None, digits: int = 2) -> str:
    """A number as README prints it: `digits` significant digits, e.g. 9.9e-11, 0.23, 12."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def render_documented_run(r: dict[str, Any]) -> str:
    rnn, lstm, nfg = r["models"]["rnn"], r["models"]["lstm"], r["models"]["nfg_lstm"]
    s = r["setup"]
    losses = ", ".join(f"{m} {g(v['test_loss'], 3)}" for m, v in r["models"].items())
    lr = f"{s['lr']:.0e}".replace("e-0", "e-")
    return (
        f"**The documented run** (`make documented-run` makes it, `make test-slow` repeats it): adding task, "
        f"T={s['seq_len']}, H={s['hidden_size']}, B={s['batch_size']}, Adam {lr}, {s['max_steps']} steps, "
        f"seed {s['seed']}, then `analyze.py` on {s['probe_batch']} test sequences; measured on "
        f"{machine_line(r['machine'])} (`docs/results/documented_run.json`; bitwise on that machine and software "
        f"only: `tests/test_science.py::test_the_documented_run_reproduces_readme_figures` asks for equality there, "
        f"and elsewhere for the spread of seeds). ‖∂ℓ/∂h_0‖/‖∂ℓ/∂h_{{T−1}}‖ is {g(rnn['h_ratio'])} for the tanh RNN "
        f"(measured rate {g(rnn['decay_rate'])}/step; mean-field prediction {g(rnn['decay_rate_predicted'])}, "
        f"Pascanu bound {g(rnn['decay_rate_bound'])}), {g(lstm['h_ratio'])} for the LSTM "
        f"(‖∂ℓ/∂c_t‖: {g(lstm['c_ratio'])}, rate {g(lstm['decay_rate'])}/step; forget-gate prediction "
        f"{g(lstm['decay_rate_predicted'])}), and the NFG's "
        f"‖∂ℓ/∂c_t‖ does not vanish: ‖∂ℓ/∂c_0‖/‖∂ℓ/∂c_{{T−1}}‖ = {g(nfg['c_ratio'])}, max/min over t "
        f"{g(nfg['c_max_over_min'])} (rate {g(nfg['decay_rate_c'])}/step). The direct cell path is the identity; "
        f"what varies is the total derivative through h and the gates. Test MSE after {s['max_steps']} steps: "
        f"{losses} (baseline {g(r['baseline_loss'], 3)}). The LSTM's hidden states across samples lie "
        f"{g(lstm['hidden_angle_mean_deg'], 3)}° apart on average (random vectors in {s['hidden_size']} dimensions: "
        f"90° ± {g(lstm['hidden_random_sd_deg'], 2)}°), its W_hh contributions from different steps "
        f"{g(lstm['dW_hh_angle_mean_deg'], 3)}° ± {g(lstm['dW_hh_angle_sd_deg'], 2)}° (random in "
        f"{lstm['dW_hh_dim']} dimensions: 90° ± {g(lstm['dW_hh_random_sd_deg'], 2)}°).\n"
        f"\n![per-step gradient norms after training, adding T=100](docs/bptt_adding_T100.png)\n\n"
        f"The same RNN's ‖∂ℓ/∂h_t‖ over training (`figures/bptt_heatmap_dL_dh_norm_l0.png`; the probe computes "
        f"in {s['probe_dtype']}, and the smallest value it measured is {g(rnn['h_min_training'])}): at the start "
        f"the gradient from t=T−1 falls below 1e-3 of its value within "
        f"{rnn['horizon_at_start']:.0f} steps back, after training within {rnn['horizon_at_end']:.0f}.\n"
        f"\n![heatmap of log10 ‖∂ℓ/∂h_t‖ over training, rnn](docs/bptt_heatmap_rnn_T100.png)\n")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def render_repro_time(r: dict[str, Any]) -> str:
    """One line for README's commands: how long `make repro` took from a fresh clone, and on what."""
    par = r["parallel"]
    return (f"`make repro` took {_minutes(par['wall_s_since_make'])} from a fresh clone to the report (cpu profile, "
            f"JOBS={par['jobs']}, installing `.venv` included) on {machine_line(r['machine'])}.")


def _study_run(r: dict[str, Any]) -> str:
    """How a recorded study ran: its grid, its wall time, and (where recorded) the serial runs beside it."""
    s, par = r["setup"], r["parallel"]
    models = ", ".join(f"{m['name']} (H={m['hidden_size']})" for m in s["models"])
    lr = f"{s['lr']:.0e}".replace("e-0", "e-")
    threads = f"{par['threads']} thread{'s' if par['threads'] != 1 else ''}"
    record = r.get("record", "docs/results/cpu_profile.json")
    commit = f" of commit {r['commit']}" if r.get("commit") else ""
    text = (f"**The cpu profile** as `make repro` ran it from a fresh clone{commit} on {machine_line(r['machine'])} "
            f"(`{record}`, written by `pipelines/record_study.py` from the clone's "
            f"`results/repro.json` and summary): {' and '.join(s['tasks'])} task, "
            f"T ∈ {{{', '.join(map(str, s['seq_lens']))}}}, {models}, clip {', '.join(s['clips'])}, "
            f"seeds {', '.join(map(str, s['seeds']))}: {s['runs']} runs of {s['max_steps']} steps, "
            f"B={s['batch_size']}, Adam {lr}. With JOBS={par['jobs']} and {threads} per stage it took "
            f"{_minutes(par['wall_s_since_make'])} from `make repro` to the report, installing `.venv` included "
            f"({_minutes(par['wall_s'])} for the {par['stages']} stages).")
    if "serial" in r:
        ser, c = r["serial"], r["compare"]
        text += (f" The same grid with `make repro JOBS=1` (a plain `dvc repro`, {ser['threads']} threads) in "
                 f"another clone of the same commit took {_minutes(ser['wall_s'])} for the stages: the parallel "
                 f"study took {c['wall_ratio']:.2f}x its time. metrics.json was byte-identical between the two in "
                 f"{c['metrics_json_identical']} of {c['metrics_json_runs']} runs, and summary.csv "
                 f"{'was identical' if c['summary_csv_identical'] else 'differed'}.")
    if "serial_same_threads" in r:
        ser, c = r["serial_same_threads"], r["compare_same_threads"]
        text += (f" With {threads} per run there as well (`make repro JOBS=1 THREADS={ser['threads']}`, "
                 f"{_minutes(ser['wall_s'])}; the parallel study took {c['wall_ratio']:.2f}x its time), metrics.json "
                 f"was byte-identical in {c['metrics_json_identical']} of {c['metrics_json_runs']} runs, and "
                 f"summary.csv {'was identical' if c['summary_csv_identical'] else 'differed'}: what differs at "
                 f"default threads is the thread count, not the runner.")
    return text


def render_study_runner(r: dict[str, Any]) -> str:
    """A recorded study's run and its comparison with the serial runner, without the headline and table (the
    README's cpu_profile block shows those)."""
    return _study_run(r) + " The per-run figures are bitwise only on that CPU and software.\n"


def render_cpu_profile(r: dict[str, Any]) -> str:
    """The cpu profile as `make repro` ran it from a fresh clone (pipelines/record_study.py wrote the file)."""
    s = r["setup"]
    text = _study_run(r)
    text += (" The per-run figures are bitwise only on that CPU and software; across machines what holds is the "
             "pattern over seeds. The headline, as the summary computes it:\n\n> " + r["headline"] + "\n\n")
    longest = max(s["seq_lens"])
    rows = [c for c in r["cells"] if c["T"] == longest]
    lines = [f"| T={longest}, median over seeds | " + " | ".join(f"{c['model']} {c['clip']}" for c in rows) + " |",
             "|---|" + "---|" * len(rows),
             "| solved | " + " | ".join(c["solved"] for c in rows) + " |",
             "| test MSE / baseline | " + " | ".join(g(c["loss/baseline"]) for c in rows) + " |",
             "| solved at step (val < 1%) | " + " | ".join(
                 "–" if c["steps_to_solve"] is None else f"{c['steps_to_solve']:.0f}" for c in rows) + " |",
             "| steps clipped | " + " | ".join(
                 "–" if c["clip"] == "none" else f"{c['clip_fraction']:.0%}" for c in rows) + " |",
             "| ‖∂ℓ/∂h_0‖ / ‖∂ℓ/∂h_T−1‖ while training | " + " | ".join(
                 g(c["h_0/h_T-1 (training)"]) for c in rows) + " |"]
    text += "\n".join(lines) + "\n"
    for T in [t for t in s["seq_lens"] if t != longest]:
        short = [c for c in r["cells"] if c["T"] == T]
        text += (f"\nAt T={T}: " + "; ".join(f"{c['model']} {c['clip']} solved {c['solved']} "
                                             f"({g(c['loss/baseline'])} of the baseline)" for c in short) + ".\n")
    return text


def render_reproduction(r: dict[str, Any]) -> str:
    """The reproduction table of the recorded study (rows as the summarize stage computed them, verdicts included)."""
    rows = r.get("reproduction")
    if not rows:
        return "The recorded study has no reproduction table (recorded before the `paper` stage existed).\n"
    import pandas as pd

    from gradlab.summary import REPRODUCTION_KEYS, reproduction_markdown

    table = reproduction_markdown(pd.DataFrame(rows).fillna(""), [k for k in REPRODUCTION_KEYS if k != "seeds"])
    return (f"From the same recorded study ({machine_line(r['machine'])}; `results/summary/reproduction.md`), one row "
            "per published claim; the verdict is computed from the runs (reproduced: most seeds' outcome is the "
            "paper's):\n\n" + table)


def render_lyapunov(r: dict[str, Any]) -> str:
    """λ_1 against the probe's measured decay rate, per model, over the recorded study's runs."""
    rows = r.get("lyapunov")
    if not rows:
        return "The recorded study has no Lyapunov spectra (recorded before the analyze stage computed them).\n"
    lines = ["| model | runs | λ_1 trained | λ_1 at init | measured decay rate | median gap / rate |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {x['model']} | {x['runs']} | {g(x['lyapunov_max'], 3)} | {g(x['lyapunov_max_init'], 3)} | "
              f"{g(x['decay_rate'], 3)} | {x['rel_gap']:.0%} |" for x in rows]
    return (f"Medians over the recorded cpu-profile runs ({machine_line(r['machine'])}), ln per step:\n\n"
            + "\n".join(lines) + "\n")


def render_geometry(r: dict[str, Any]) -> str:
    """The geometry stage's measurements against theory, from the recorded study's results/geometry/reference.csv."""
    rows = r.get("geometry")
    if not rows:
        return "The recorded study has no geometry table.\n"

    def value(dist: str, D: int, stat: str, key: str = "value") -> float | None:
        hit = [x[key] for x in rows if x["distribution"] == dist and x["D"] == D and x["statistic"] == stat]
        return hit[0] if hit else None

    def worst(stat: str) -> float:
        return max(abs(x["value"] / x["theory"] - 1) for x in rows if x["statistic"] == stat and x["theory"])

    dims = sorted({x["D"] for x in rows if x["distribution"] == "sphere"})
    sd = [D for D in dims if value("sphere", D, "angle_sd_deg") is not None and D <= 1000]
    cube = [D for D in dims if value("cube", D, "relative_contrast") is not None]
    big = [D for D in cube if D >= 100]
    shell = [D for D in (2, 3) if value("ball", D, "shell_fraction_mc") is not None]
    return (f"Measured with the study's defaults ({machine_line(r['machine'])}; `results/geometry/reference.csv`): the "
            f"largest gap to theory over all distributions and dimensions is {worst('cos_var_times_D'):.1%} for "
            f"D·Var(cos), {worst('angle_sd_deg'):.1%} for the angle sd and {worst('dist_sq_mean_over_D'):.1%} for "
            f"E‖x−y‖²/D; the sphere's angle sd is "
            + ", ".join(f"{value('sphere', D, 'angle_sd_deg'):.4g}°" for D in sd)
            + f" at D = {', '.join(map(str, sd))} (exact "
            + ", ".join(f"{value('sphere', D, 'angle_sd_deg', 'theory'):.4g}°" for D in sd) + "); shell fractions "
            + " and ".join(f"{value('ball', D, 'shell_fraction'):.3g} (D={D})" for D in shell)
            + " as in the curse-of-dimensionality article, Monte Carlo "
            + " and ".join(f"{value('ball', D, 'shell_fraction_mc'):.4g} ± "
                           f"{value('ball', D, 'shell_fraction_mc_se'):.2g}" for D in shell)
            + "; the cube's relative contrast falls "
            + ", ".join(f"{value('cube', D, 'relative_contrast'):.3g}" for D in cube)
            + f" over D = {', '.join(map(str, cube))} (an earlier simulation of the same kind, 100 uniform points, "
            "gave 1.69, 0.322, 0.091 at D = 10, 100, 1000; these are not numbers from Aggarwal et al.'s paper) and "
            "RC·√D = "
            + ", ".join(f"{value('cube', D, 'relative_contrast_times_sqrtD'):.3g}" for D in big)
            + f" at D = {', '.join(map(str, big))}.\n")


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {"documented_run": render_documented_run,
                                                          "cpu_profile": render_cpu_profile,
                                                          "cpu_profile/time": render_repro_time,
                                                          # the JOBS=1 comparisons, recorded on an earlier commit
                                                          "cpu_profile_682ae68/runner": render_study_runner,
                                                          "cpu_profile/reproduction": render_reproduction,
                                                          "cpu_profile/lyapunov": render_lyapunov,
                                                          "cpu_profile/geometry": render_geometry}
WIDTH = 120  # the pages' line length


def _wrapped(text: str) -> str:
    """Each paragraph of a rendered block folded to README's line length (Markdown joins the lines again); table
    rows stay whole."""
    import textwrap

    return "".join((p if p.startswith("|") else textwrap.fill(p, WIDTH, break_on_hyphens=False,
                                                              break_long_words=False)) + "\n"
                   for p in text.rstrip("\n").split("\n"))


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose blocks `make readme` renders: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _rendered(name: str, results_dir: Path, page: Path | None) -> str:
    text = _wrapped(RENDERERS[name](read_result(name.split("/")[0], results_dir)))
    if page is not None and page.resolve().parent.name == "docs":  # links from the root, relative to docs/
        text = text.replace("](docs/", "](")
    return text


def render(text: str, results_dir: Path = RESULTS_DIR, page: Path | None = None) -> str:
    """text (of page, README.md by default) with every results block rendered from its file (KeyError for a block
    without a renderer)."""
    def block(m: re.Match) -> str:
        return m.group(1) + _rendered(m["name"], results_dir, page) + m.group(4)

    return BLOCK.sub(block, text)


def blocks(text: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(text)]


def stale_blocks(text: str, results_dir: Path = RESULTS_DIR, page: Path | None = None) -> list[str]:
    """The blocks whose text is not what their result file renders to."""
    return [m["name"] for m in BLOCK.finditer(text) if m["body"] != _rendered(m["name"], results_dir, page)]


def stale_pages(root: Path = ROOT, results_dir: Path = RESULTS_DIR) -> dict[str, list[str]]:
    """page (relative to root) -> its stale blocks, for every page that has one."""
    stale = {str(p.relative_to(root)): stale_blocks(p.read_text(), results_dir, p) for p in pages(root)}
    return {page: names for page, names in stale.items() if names}


def update_pages(root: Path = ROOT, results_dir: Path = RESULTS_DIR) -> list[str]:
    """Rewrite the blocks of every page from the result files; the pages (relative to root) that changed."""
    changed = []
    for page in pages(root):
        old = page.read_text()
        new = render(old, results_dir, page)
        if new != old:
            atomic_write_bytes(page, new.encode())
            changed.append(str(page.relative_to(root)))
    return changed

