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
lose it to the rounding of its last steps. tests/test_margin.py checks the rule on edited result files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradlab.tasks import SOLVED_FRACTION, TaskSpec

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
    """("solved" | "failed" | "band", value / line) for one run (a dict as gradlab.reproduction.paper_row)."""
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
