"""The verdict with a margin: a published claim is reproduced or not only when every seed lies clearly on one side of
the paper's criterion; a seed near the line makes the row inconclusive, naming it.

Each task's solved rule is a statistic against a line (gradlab.tasks.TaskSpec.solved): the test loss against 1% of
the memoryless baseline, or, where the paper judges sequences (|error| < tolerance, a class), the test error rate
against 1 − solved_accuracy. A seed's value is that statistic divided by its line (1: on the line), and the band
around the line is a factor BAND = 2 either side:

- clearly solved: value ≤ 1/2, or the paper's rule held with at least half the step budget to spare
  (solved_at_step ≤ max_steps/2) and the run ended below twice the line. The second clause is for the papers'
  protocol of stopping once solved (trainer.stop_when_solved), whose test value sits next to the line by design.
- clearly failed: value ≥ 2 and the rule never held during training (a diverged run counts: divergence is a result).
- otherwise in the band.

Why a factor 2: a different CPU (or thread count) rounds differently, and a trained network's final loss moves with
it. The recorded study's Gers NFG seed read 1.12% of the baseline on a Xeon and 0.92% on an EPYC, a factor 1.2 across
the 1% line; a factor 2 either side holds that with room, and a run that solved with half its budget left does not
lose it to the rounding of its last steps. tests/test_py checks the rule on edited result files."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gradlab.core.runfolder import RunFolder, read_json
from gradlab.study.claims import PUBLISHED, Published, _get
from gradlab.study.grid import PaperRun
from gradlab.tasks import TaskSpec, task_from
from gradlab.tasks.base import SOLVED_FRACTION

BAND = 2.0


@dataclass(frozen=True)
class Rule:
    """A task's solved rule as a statistic against a line."""

    what: str  # the statistic, e.g. "test loss / baseline"
    line: float

    def describe(self) -> str:
        pct = lambda v: f"{v:.3g}%"  # noqa: E731
        return (f"{self.what}: solved ≤ {pct(100 * self.line / BAND)}, failed ≥ {pct(100 * self.line * BAND)} "
                f"(line {pct(100 * self.line)}; or solved with half the steps to spare and < {pct(200 * self.line)})")


def rule_of(spec: TaskSpec) -> Rule:
    if spec.solved_accuracy is not None:
        return Rule("test error rate", 1 - spec.solved_accuracy)
    return Rule("test loss / baseline", SOLVED_FRACTION)


def statistic(rule: Rule, run: dict[str, Any]) -> float | None:
    """The run's value of the rule's statistic (None: no test result). The error rate of a continual task's test
    streams is counted exactly (stream_error_rate, float64 over the errors) rather than read from float32 accuracy."""
    if rule.what == "test error rate":
        if run.get("stream_error_rate") is not None:
            return float(run["stream_error_rate"])
        return None if run.get("test_acc") is None else 1 - float(run["test_acc"])
    return None if run.get("loss_rel_baseline") is None else float(run["loss_rel_baseline"])


def side(rule: Rule, run: dict[str, Any]) -> tuple[str, float | None]:
    """("solved" | "failed" | "band", value / line) for one run (a dict as paper_row below)."""
    value = statistic(rule, run)
    if value is None or value != value:
        ratio = None
    else:  # a line at 0 (no error allowed): any error is infinitely over it
        ratio = value / rule.line if rule.line > 0 else (0.0 if value == 0 else float("inf"))
    if run.get("status") == "diverged" and run.get("solved_at_step") is None:
        return "failed", ratio
    if ratio is None:
        return "band", None
    early = (run.get("solved_at_step") is not None and run.get("max_steps")
             and run["solved_at_step"] <= run["max_steps"] / BAND)
    if ratio <= 1 / BAND or (early and ratio < BAND):
        return "solved", ratio
    if ratio >= BAND and run.get("solved_at_step") is None:
        return "failed", ratio
    return "band", ratio


def verdict(expected: bool | None, rule: Rule | None, runs: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(verdict, each seed's value and side, the seeds in the band): `not comparable` without a claimed outcome,
    `not run` without finished runs, `inconclusive` when any seed is in the band, else `reproduced` when most seeds'
    clear outcome is the paper's and `not reproduced` otherwise."""
    finished = [r for r in runs if r.get("status") in ("completed", "diverged")]
    if expected is None:
        return "not comparable", "", ""
    if not finished or rule is None:
        return "not run", "", ""
    sides = [(r, *side(rule, r)) for r in finished]
    values = ", ".join(f"s{r['seed']} {'–' if x is None else f'{100 * x * rule.line:.3g}%'} ({s})"
                       for r, s, x in sides)
    band = [f"s{r['seed']}" for r, s, _ in sides if s == "band"]
    if band:
        return "inconclusive", values, " ".join(band)
    agree = sum((s == "solved") == expected for _, s, _ in sides)
    return ("reproduced" if 2 * agree > len(sides) else "not reproduced"), values, ""


VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not comparable", "not run")


def _span(values: list[float], fmt: str = "{:,.0f}") -> str:
    """'median [min-max]' of a list (one value: itself)."""
    med = fmt.format(statistics.median(values))
    return med if len(values) == 1 else f"{med} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def _rule(p: Published, runs: list[dict[str, Any]]) -> Rule | None:
    """The claim's own error-rate line, or the solved rule of the runs' task (from the first resolved config)."""
    if p.line is not None:
        return Rule("test error rate", p.line)
    for r in runs:
        if r.get("config") and r["config"].get("task"):
            return rule_of(task_from(r["config"]["task"]).spec())
    return None


def _final_train_loss(folder: Path, last: int = 50) -> float | None:
    """The mean training loss of the run's last `last` logged steps (metrics.csv), as their notebook's last-epoch
    mean training loss; None without one."""
    path = folder / "metrics.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if "train/loss" not in frame:
        return None
    losses = frame["train/loss"].dropna()
    return float(losses.tail(last).mean()) if len(losses) else None


def grid_row(runs_dir: Path, name: str) -> dict[str, Any]:
    """One run of a grid setup (a claim with `ratio_rule`), read from its folder: its config says model, T, seed and
    the grid's values (task.nu0, optim.lr)."""
    folder = Path(runs_dir) / name
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    m = read_json(folder / "metrics.json") or {}
    return {"paper": config.get("paper_name"), "model": (config.get("model") or {}).get("name"),
            "T": (config.get("task") or {}).get("seq_len"), "seed": config.get("seed"), "run": name,
            "status": m.get("status", "missing"), "config": config, "lr": (config.get("optim") or {}).get("lr"),
            "final_loss": _final_train_loss(folder), "test_loss": m.get("test_loss"),
            "decay_rate": m.get("bptt_decay_rate")}


def grid_runs(runs_dir: Path, paper: str) -> list[dict[str, Any]]:
    """Every run of a grid setup under runs_dir: runs/paper-<paper>-*/ holding a config.yaml of that paper."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows = [grid_row(root, d.name) for d in sorted(root.glob(f"paper-{paper}-*")) if (d / "config.yaml").is_file()]
    return [r for r in rows if r["paper"] == paper]


def _ratio_side(rule: str, line: float, ratio: float | None) -> str:
    """A seed's side of a ratio rule, with the factor-BAND margin: "gap" holds when the ratio is ≥ BAND·line and
    fails when ≤ line/BAND; "equal" holds within a factor line/BAND either way and fails outside line·BAND."""
    if ratio is None or ratio != ratio or ratio <= 0:
        return "band"
    if rule == "gap":
        return "holds" if ratio >= BAND * line else "fails" if ratio <= line / BAND else "band"
    spread = max(ratio, 1 / ratio)
    return "holds" if spread <= line / BAND else "fails" if spread >= line * BAND else "band"


def grid_rows(p: Published, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a two-student claim over a grid (Published.ratio_rule): per grid value, each student's best lr
    (lowest seed-mean final training loss, diverged seeds dropped, as their notebook), the per-seed loss ratio
    first/second at those lrs against the rule's line with the factor-BAND margin, and each student's probe decay
    rate of ‖∂ℓ/∂h_t‖ beside. One row per judged value and one per value only reported; the verdict (every row):
    inconclusive if any judged seed is in the band, else reproduced when most seeds hold at every judged value."""
    (key, rules), = p.ratio_rule.items()
    first, second = p.models
    fmt = lambda v: "–" if v is None or v != v else f"{v:.3g}"  # noqa: E731
    by_value: dict[float, dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        if r["status"] not in ("completed", "diverged") or r["model"] not in p.models:
            continue
        value = _get(r["config"], key)
        by_value.setdefault(float(value), {}).setdefault(r["model"], []).append(r)
    rows, judged, bands = [], [], []
    for value in sorted(by_value):
        best = {m: b for m, mruns in by_value[value].items() if (b := _best_lr(mruns)) is not None}
        if first not in best or second not in best:
            continue
        a = {r["seed"]: r for r in best[first][1]}
        b = {r["seed"]: r for r in best[second][1]}
        rule = rules.get(value)
        seeds, parts = [], []
        for seed in sorted(set(a) & set(b)):
            la, lb = a[seed]["final_loss"], b[seed]["final_loss"]
            ratio = la / lb if la is not None and lb not in (None, 0) else None
            sd = _ratio_side(*rule, ratio) if rule else "reported"
            seeds.append((seed, sd))
            parts.append(f"s{seed} {first} {fmt(la)} / {second} {fmt(lb)} = {fmt(ratio)} ({sd})")
        if rule:
            judged.append(sum(s == "holds" for _, s in seeds) * 2 > len(seeds))
            bands += [f"{_fmt_value(value)}:s{s}" for s, sd in seeds if sd == "band"]
        theirs = p.theirs_losses.get(value)
        decay = "; ".join(f"{m} {_span([r['decay_rate'] for r in best[m][1] if r['decay_rate'] is not None], '{:.3g}')}"
                          if any(r["decay_rate"] is not None for r in best[m][1]) else f"{m} –" for m in p.models)
        means = {m: statistics.mean([r["final_loss"] for r in best[m][1] if r["final_loss"] is not None]
                                    or [float("nan")])
                 for m in p.models}
        rule_text = ("" if not rule else f"{first}/{second} ≥ {BAND * rule[1]:g} holds, ≤ {rule[1] / BAND:g} fails"
                     if rule[0] == "gap" else f"within ×{rule[1] / BAND:g} holds, beyond ×{rule[1] * BAND:g} fails")
        rows.append({"model": f"{first}/{second}", "T": best[first][1][0]["T"], "seeds": len(seeds),
                     f"{key}": value, "best lr": f"{first} {best[first][0]:g}, {second} {best[second][0]:g}",
                     "final loss": f"{first} {fmt(means[first])}, {second} {fmt(means[second])} (MSE, last 50 steps)",
                     "theirs": "" if not theirs else f"{first} {theirs[0]:.2g}, {second} {theirs[1]:.2g} (0.5·MSE); "
                                                     f"ratio {theirs[0] / theirs[1]:.2g}",
                     "decay rate": decay, "band": rule_text or "reported, not judged", "seed values": "; ".join(parts),
                     "runs": " ".join(r["run"] for m in p.models for r in best[m][1])})
    if not judged or len(judged) < len(rules):
        said = "not run"
    elif bands:
        said = "inconclusive"
    else:
        said = "reproduced" if all(judged) else "not reproduced"
    for row in rows:
        row |= {"verdict": said, "in the band": " ".join(bands), "solved": "", "sequences to solve": "",
                "loss/baseline": row["final loss"]}
    return rows


def _best_lr(runs: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]] | None:
    """(lr, its runs by seed) with the lowest seed-mean final training loss; non-finite seeds dropped (their
    notebook: ±inf to NaN, pandas' mean skips NaN); None when no lr has a finite one."""
    lrs: dict[float, list[dict[str, Any]]] = {}
    for r in runs:
        lrs.setdefault(float(r["lr"]), []).append(r)
    means = {lr: statistics.mean(ok) for lr, rs in lrs.items()
             if (ok := [r["final_loss"] for r in rs if r["final_loss"] is not None
                        and r["final_loss"] == r["final_loss"] and abs(r["final_loss"]) != float("inf")])}
    if not means:
        return None
    lr = min(means, key=means.get)
    return lr, sorted(lrs[lr], key=lambda r: r["seed"])


def _fmt_value(value: float) -> str:
    return f"{value:g}"


def reproduction_rows(paper_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per published claim and (model, T) that gradlab ran in the claim's own setup (conf/paper/), and one
    per claim it did not run. `paper_runs`: one dict per run with paper, model, T, seed, status, solved,
    solved_at_step, batch_size, loss_rel_baseline and config (its resolved config.yaml; None when missing)."""
    rows = []
    for p in PUBLISHED:
        mine = [r for r in paper_runs if p.paper and r["paper"] == p.paper and r["model"] in p.models]
        if p.ratio_rule:  # a two-student grid (its runs: grid_runs)
            base = {"source": p.source, "claim": p.claim, "their setup": p.describe_setup(),
                    "setup": f"conf/paper/{p.paper}.yaml"}
            grid = grid_rows(p, mine)
            diffs = "; ".join(sorted({d for r in mine for d in p.differences(r.get("config"))}))
            rows += [base | {"ours differs": diffs} | r for r in grid] or [base | {
                "model": "/".join(p.models), "T": f"{p.T[0]}-{p.T[1]}", "ours differs": "not in this profile",
                "seeds": 0, "solved": "", "sequences to solve": "", "theirs": "", "loss/baseline": "",
                "verdict": "not run", "band": "", "seed values": "", "in the band": "", "runs": ""}]
            continue
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in mine:
            groups.setdefault((r["model"], int(r["T"])), []).append(r)
        base = {"source": p.source, "claim": p.claim, "their setup": p.describe_setup(),
                "setup": f"conf/paper/{p.paper}.yaml" if p.paper else "no gradlab setup"}
        if not groups:
            why = "no gradlab task" if p.family is None and p.paper is None else "not in this profile"
            rows.append(base | {"model": "/".join(p.models), "T": f"{p.T[0]}-{p.T[1]}" if p.T[1] < 10**9 else "",
                                "ours differs": why, "seeds": 0, "solved": "", "sequences to solve": "",
                                "theirs": "", "loss/baseline": "", "verdict": "not run", "band": "",
                                "seed values": "", "in the band": "", "runs": ""})
            continue
        for (model, T), runs in sorted(groups.items()):
            runs = sorted(runs, key=lambda r: r["seed"])
            solved = [r for r in runs if r.get("solved")]
            # sequences until the paper's rule first held (its stop), whether or not the test then agreed
            seqs = [r["solved_at_step"] * r["batch_size"] for r in runs
                    if r.get("solved_at_step") is not None and r.get("batch_size")]
            losses = [r["loss_rel_baseline"] for r in runs if r.get("loss_rel_baseline") is not None]
            diffs = sorted({d for r in runs for d in p.differences(r.get("config"))})
            theirs = p.sequences.get(T)
            rule = _rule(p, runs)
            said, values, band = verdict(p.expect.get(model, p.solved), rule, runs)
            rows.append(base | {
                "model": model, "T": T, "ours differs": "; ".join(diffs) or "same setup", "seeds": len(runs),
                "solved": f"{len(solved)}/{len(runs)}", "sequences to solve": _span(seqs) if seqs else "",
                "theirs": f"{theirs:,}" + (f" (ours/theirs {_span([s / theirs for s in seqs], '{:.1f}x')})"
                                          if seqs else "") if theirs else "",
                "loss/baseline": _span(losses, "{:.2%}") if losses else "",
                "verdict": said, "band": rule.describe() if rule else "", "seed values": values,
                "in the band": band, "runs": " ".join(r["run"] for r in runs)})
    return rows


def paper_row(runs_dir: Path, run: PaperRun) -> dict[str, Any]:
    """One paper run (stage `paper`) as the reproduction table reads it."""
    folder = RunFolder.of(runs_dir, run.name)
    config = yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else None
    m = read_json(folder.metrics) or {}
    trainer = (config or {}).get("trainer", {})
    return {"paper": run.paper, "model": run.model, "T": run.seq_len, "seed": run.seed, "run": run.name,
            "status": m.get("status", "missing"), "solved": bool(m.get("solved", False)),
            "solved_at_step": m.get("solved_at_step"), "steps": m.get("steps"),
            "batch_size": trainer.get("batch_size"), "max_steps": trainer.get("max_steps"),
            "loss_rel_baseline": m.get("test_loss_rel_baseline"), "test_acc": m.get("test_acc"),
            "stream_error_rate": m.get("stream_error_rate"), "config": config}


def reproduction(papers: list[PaperRun], runs_dir: Path) -> pd.DataFrame:
    """The reproduction table: every published claim, our runs of its setup over seeds, and the verdict."""
    grids = [r for p in PUBLISHED if p.ratio_rule and p.paper for r in grid_runs(runs_dir, p.paper)]
    return pd.DataFrame(reproduction_rows([paper_row(runs_dir, r) for r in papers] + grids))


REPRODUCTION_KEYS = ["source", "setup", "model", "T", "seeds", "solved", "sequences to solve", "theirs",
                     "loss/baseline", "verdict", "in the band", "ours differs"]


def reproduction_markdown(table: pd.DataFrame, keys: list[str] = REPRODUCTION_KEYS) -> str:
    """The reproduction table as Markdown (reproduction.md, docs/literature.md's block): the setup as its conf/paper/
    name."""
    def cell(r: pd.Series, key: str) -> str:
        text = str(r.get(key, ""))
        if key == "setup":
            text = f"`{text.removeprefix('conf/paper/').removesuffix('.yaml')}`" if text.startswith("conf/") else "–"
        return text.replace("|", "/")

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r, k) for k in keys) + " |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"
