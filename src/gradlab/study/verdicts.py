"""The reproduction table: every published claim, our runs of its setup over seeds, and the verdict
(gradlab.study.judging: the margin per seed, our interval against the paper's number, the budget); the two-student
grid of Zucchet & Orvieto's claim judged per grid value at each student's best learning rate."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gradlab.core.runfolder import RunFolder, read_json
from gradlab.study.claims import PUBLISHED, Published, _get
from gradlab.study.grid import PaperRun
from gradlab.study.judging import BAND, Rule, _budget, judge, rate_judgement, rule_of
from gradlab.tasks import task_from


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
            "decay_rate": m.get("bptt_decay_rate"), "max_steps": (config.get("trainer") or {}).get("max_steps"),
            "batch_size": (config.get("trainer") or {}).get("batch_size")}


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
    rate of ‖∂ℓ/∂h_t‖ beside. One row per judged value and one per value only reported (not comparable); a judged
    row's verdict is the claim's rate (every seed holding) against the seeds that hold (`rate_judgement`), after the
    budget's check."""
    (key, rules), = p.ratio_rule.items()
    first, second = p.models
    fmt = lambda v: "–" if v is None or v != v else f"{v:.3g}"  # noqa: E731
    by_value: dict[float, dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        if r["status"] not in ("completed", "diverged") or r["model"] not in p.models:
            continue
        value = _get(r["config"], key)
        by_value.setdefault(float(value), {}).setdefault(r["model"], []).append(r)
    rows = []
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
        judged = {"verdict": "not comparable"}  # a value the claim reports but does not judge
        if rule:
            band = [f"{_fmt_value(value)}:s{s}" for s, sd in seeds if sd == "band"]
            under, _ = _budget(p.figure, [*best[first][1], *best[second][1]], None)
            judged = rate_judgement(p.figure, sum(sd == "holds" for _, sd in seeds),
                                    sum(sd in ("holds", "fails") for _, sd in seeds), len(band), under)
            judged |= {"in the band": " ".join(band), "kind": "rate"}
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
                     "runs": " ".join(r["run"] for m in p.models for r in best[m][1]),
                     "sequences to solve": "", "loss/baseline": f"{first} {fmt(means[first])}, {second} "
                                                                f"{fmt(means[second])} (MSE, last 50 steps)"}
                    | {"in the band": "", "solved": ""} | judged)
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
            rows.append(base | judge(p, None, []) | {
                "model": "/".join(p.models), "T": f"{p.T[0]}-{p.T[1]}" if p.T[1] < 10**9 else "",
                "ours differs": why, "seeds": 0, "sequences to solve": "", "theirs": theirs_text(p),
                "loss/baseline": "", "verdict": "not run", "band": "", "runs": ""})
            continue
        for (model, T), runs in sorted(groups.items()):
            runs = sorted(runs, key=lambda r: r["seed"])
            # sequences until the paper's rule first held (its stop), whether or not the test then agreed
            seqs = [r["solved_at_step"] * r["batch_size"] for r in runs
                    if r.get("solved_at_step") is not None and r.get("batch_size")]
            losses = [r["loss_rel_baseline"] for r in runs if r.get("loss_rel_baseline") is not None]
            diffs = sorted({d for r in runs for d in p.differences(r.get("config"))})
            rule = _rule(p, runs)
            judged = judge(p, rule, runs, T)
            rows.append(base | judged | {
                "model": model, "T": T, "ours differs": "; ".join(diffs) or "same setup", "seeds": len(runs),
                "sequences to solve": _span(seqs) if seqs else "", "theirs": theirs_text(p, T),
                "loss/baseline": _span(losses, "{:.2%}") if losses else "",
                "band": rule.describe() if rule else "", "runs": " ".join(r["run"] for r in runs)})
    return rows


def theirs_text(p: Published, T: int | None = None) -> str:
    """The paper's number as the table shows it: '47% of 100' (a rate) or '74,000 (mean of 10)' (central)."""
    fig = p.figure
    if fig is None or p.solved is None:
        return ""
    if fig.kind == "central":
        value = p.sequences.get(T)
        return "" if value is None else f"{value:,}" + (f" (mean of {fig.n})" if fig.n else "")
    return f"{fig.value:.0%}" + (f" of {fig.n}" if fig.n else " (runs: not read)")


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


REPRODUCTION_KEYS = ["source", "setup", "model", "T", "seeds", "solved", "theirs", "ours", "verdict",
                     "would decide", "sequences to solve", "in the band", "ours differs"]


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
