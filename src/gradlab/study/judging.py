"""A claim against its seeds: each seed on one side of the paper's line or in the band around it (the margin), our
interval over the decided seeds against the paper's number, and the budget before either (gradlab.study.verdicts
builds the reproduction table from it).

Each task's solved rule is a statistic against a line (gradlab.tasks.TaskSpec.solved): the test loss against 1% of
the memoryless baseline, or, where the paper judges sequences (|error| < tolerance, a class), the test error rate
against 1 − solved_accuracy. A seed's value is that statistic divided by its line (1: on the line), and the band
around the line is a factor BAND = 2 either side:

- clearly solved: value ≤ 1/2, or the paper's rule held with at least half the step budget to spare
  (solved_at_step ≤ max_steps/2) and the run ended below twice the line. The second clause is for the papers'
  protocol of stopping once solved (trainer.stop_when_solved), whose test value sits next to the line by design.
- clearly failed: value ≥ 2 and the rule never held during training (a diverged run counts: divergence is a result).
- otherwise in the band: counted on neither side.

Why a factor 2: a different CPU (or thread count) rounds differently, and a trained network's final loss moves with
it. The recorded study's Gers NFG seed read 1.12% of the baseline on a Xeon and 0.92% on an EPYC, a factor 1.2 across
the 1% line; a factor 2 either side holds that with room, and a run that solved with half its budget left does not
lose it to the rounding of its last steps. The verdict from the seeds: `judge`. tests/test_margin.py checks both on
edited result files."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from gradlab.study.claims import Figure, Published
from gradlab.study.stats import clopper_pearson, median_interval, seeds_to_decide
from gradlab.tasks import TaskSpec
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


def seed_sides(rule: Rule, runs: list[dict[str, Any]]) -> tuple[list[tuple[dict[str, Any], str, float | None]], str]:
    """Each finished run's (run, side, value / line) and the text of every seed's value and side."""
    sides = [(r, *side(rule, r)) for r in runs]
    values = ", ".join(f"s{r['seed']} {'–' if x is None else f'{100 * x * rule.line:.3g}%'} ({s})"
                       for r, s, x in sides)
    return sides, values


VERDICT_RULE = ("Verdicts (`src/gradlab/study/judging.py`): each seed solved, failed or in the band around the "
                "claim's line (a factor 2 either side, counted on neither side); our 95% interval over the decided "
                "seeds (a rate: Clopper-Pearson; sequences to solve: the median's order statistics) holds the "
                "paper's number (consistent) or not (inconsistent), or holds the other answer too (too few seeds, "
                "with how many would decide it); a row whose runs had less than the claim's budget is under budget.")


VERDICTS = ("consistent", "inconsistent", "too few seeds", "under budget", "not comparable", "not run")


def verdict_kind(verdict: str) -> str:
    """The verdict's category: 'under budget (2.5% of theirs)' -> 'under budget'."""
    return verdict.split(" (")[0]


def _budget(fig: Figure, runs: list[dict[str, Any]], central: float | None) -> tuple[str, float | None]:
    """('under budget (x% of theirs)' or '', ours / theirs) from the runs' budget (max_steps x batch_size, the
    smallest over the seeds) against the claim's (a central figure without a stated budget: the figure itself)."""
    ours = [r["max_steps"] * r["batch_size"] for r in runs if r.get("max_steps") and r.get("batch_size")]
    theirs = fig.budget if fig.budget is not None else central
    if theirs is None:
        return "under budget (theirs not read)", None
    if not ours:
        return "", None
    share = min(ours) / theirs
    return (f"under budget ({100 * share:.2g}% of theirs)" if share < 1 else ""), share


def judge(p: Published, rule: Rule | None, runs: list[dict[str, Any]], T: int | None = None) -> dict[str, Any]:
    """A claim against its seeds (every finished run of one model and T): the verdict, our interval, theirs.

    rate (Figure.kind): each seed solved, failed or in the band by the claim's rule (`side`, the margin); k solved
    of the n decided, a Clopper-Pearson 95% interval (the band's seeds counted on neither side, and said);
    consistent when the paper's rate lies in it, inconsistent when it does not, too few seeds when it also holds
    the other answer's rate (with the seeds that would decide it at the observed rate). central: the seeds'
    training sequences until the paper's rule held (a seed that never held: +inf), the median's order-statistics
    interval; too few seeds without one (n < 6 at 95%) or when it reaches +inf. Before either: a row whose runs had
    less than the claim's budget is under budget (x% of theirs), whatever its runs did."""
    finished = [r for r in runs if r.get("status") in ("completed", "diverged")]
    out = {"verdict": "not run", "kind": "", "ours": "", "ours point": None, "ours lo": None, "ours hi": None,
           "theirs value": None, "theirs lo": None, "theirs hi": None, "seed values": "", "in the band": "",
           "solved": "", "would decide": "", "budget share": None}
    fig = p.figure
    if p.solved is None or fig is None:
        return out | {"verdict": "not comparable"}
    if not finished or rule is None:
        return out
    sides, values = seed_sides(rule, finished)
    band = [f"s{r['seed']}" for r, sd, _ in sides if sd == "band"]
    out |= {"kind": fig.kind, "seed values": values, "in the band": " ".join(band)}
    central = p.sequences.get(T) if fig.kind == "central" else None
    under, share = _budget(fig, finished, central)
    out["budget share"] = share
    if fig.kind == "central":
        seqs = [r["solved_at_step"] * r["batch_size"] if r.get("solved_at_step") is not None and r.get("batch_size")
                else math.inf for r in finished]
        held = sum(math.isfinite(v) for v in seqs)
        out |= {"solved": f"{held}/{len(seqs)}", "theirs value": central,
                "ours point": statistics.median(seqs) if held else None}
        interval = median_interval(seqs)
        if interval is not None:
            lo, hi, coverage = interval
            out |= {"ours lo": lo, "ours hi": hi,
                    "ours": f"median {_fmt_seq(statistics.median(seqs))}, {100 * coverage:.3g}% interval "
                            f"[{_fmt_seq(lo)}, {_fmt_seq(hi)}] (order statistics)"}
        else:
            out["ours"] = f"median {_fmt_seq(statistics.median(seqs))} of {len(seqs)} (no 95% interval below 6 seeds)"
        if under:
            return out | {"verdict": under}
        if interval is None or not math.isfinite(interval[1]):
            return out | {"verdict": "too few seeds", "would decide": "6 seeds or more, most of them solving"}
        inside = interval[0] <= central <= interval[1]
        return out | {"verdict": "consistent" if inside else "inconsistent"}
    k = sum(sd == "solved" for _, sd, _ in sides)
    n = sum(sd in ("solved", "failed") for _, sd, _ in sides)
    return out | rate_judgement(fig, k, n, len(band), under)


def rate_judgement(fig: Figure, k: int, n: int, in_band: int, under: str = "") -> dict[str, Any]:
    """k of n decided seeds met the claim (in_band more counted on neither side) against the paper's rate: the
    interval's fields and the verdict (`judge`)."""
    out: dict[str, Any] = {"solved": f"{k}/{n}" + (f" (+{in_band} in the band)" if in_band else ""),
                           "theirs value": fig.value, "would decide": ""}
    if fig.n:
        out["theirs lo"], out["theirs hi"] = clopper_pearson(round(fig.value * fig.n), fig.n)
    if n:
        lo, hi = clopper_pearson(k, n)
        out |= {"ours point": k / n, "ours lo": lo, "ours hi": hi,
                "ours": f"{k}/{n} = {k / n:.0%}, 95% interval [{lo:.0%}, {hi:.0%}] (Clopper-Pearson)"
                        + (f"; {in_band} seed{'s' if in_band > 1 else ''} in the band counted on neither side"
                           if in_band else "")}
    if under:
        return out | {"verdict": under}
    if not n:
        return out | {"verdict": "too few seeds", "would decide": "a seed outside the band"}
    if not lo <= fig.value <= hi:
        return out | {"verdict": "inconsistent"}
    if fig.other is not None and lo <= fig.other <= hi:
        need = seeds_to_decide(k / n, fig.value, fig.other, have=n)
        return out | {"verdict": "too few seeds",
                      "would decide": f"{need} seeds at this rate" if need else "no number of seeds at this rate"}
    return out | {"verdict": "consistent"}


def _fmt_seq(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{value:,.0f}"
