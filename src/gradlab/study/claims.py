"""Published results, each with the setup it holds for, and how a gradlab run's setup differs from it.

Sources: the papers, listed with their setups in docs/literature.md (checked against the authors' reference code where
public). A
published number is only comparable like for like: every entry names its task variant, model, optimizer, sizes and
budget as far as the source gives them (`setup`, in gradlab's config keys, and `also` for what gradlab has no key
for), and `differences` lists where a run's resolved config departs from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """What a claim states about its runs, as a number (gradlab.study.judging holds our seeds' interval against it).

    kind "rate": `value` of their `n` runs met the claim's criterion (what `of` says); `other` is the rate of the
    answer the paper sets against it (the other model's, or no run at all), so that an interval holding both cannot
    tell them apart (too few seeds). kind "central": the training sequences their runs needed to solve (per T in
    Published.sequences), `of` their statistic. `budget`: the training sequences a run of theirs had (None: not
    stated), `budget_is` where that comes from."""

    kind: str
    value: float | None = None
    n: int | None = None
    of: str = ""
    other: float | None = None
    other_is: str = ""
    budget: int | None = None
    budget_is: str = ""


@dataclass(frozen=True)
class Published:
    """One published claim. `family` and `models` place it beside the study's cells (the task it speaks to, in
    gradlab's names; None: no cell of gradlab's tasks), `T` the lengths it covers, `solved` what it found (None: a
    setup the paper used, not a result)."""

    source: str
    claim: str
    family: str | None
    models: tuple[str, ...]
    T: tuple[int, int]
    solved: bool | None
    setup: dict[str, Any] = field(default_factory=dict)  # config key -> the paper's value
    also: str = ""  # what the paper did that gradlab has no config key for
    paper: str | None = None  # the setup gradlab runs for it: conf/paper/<paper>.yaml (None: none)
    expect: dict[str, bool] = field(default_factory=dict)  # model -> solved? where it differs per model (else solved)
    sequences: dict[int, int] = field(default_factory=dict)  # T -> training sequences they needed to solve it
    # the claim's own error-rate line where its criterion is not the task's solved rule (gradlab.study.verdicts)
    line: float | None = None
    # a claim comparing two students over a grid of task values (Zucchet & Orvieto 2024): task key -> {value:
    # (rule, line)}, rule "gap" (first model's loss / second's ≥ line) or "equal" (within a factor `line` either way);
    # judged per seed at each model's best lr (gradlab.study.verdicts.grid_rows)
    ratio_rule: dict[str, dict[float, tuple[str, float]]] = field(default_factory=dict)
    theirs_losses: dict[float, tuple[float, float]] = field(default_factory=dict)  # value -> their (first, second)
    figure: Figure | None = None  # the claim as a number, with its budget (None: a setup or a claim with no runs)

    def speaks_to(self, task: str, model: str, seq_len: int) -> bool:
        return task == self.family and model in self.models and self.T[0] <= seq_len <= self.T[1]

    def describe_setup(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.setup.items())
        return "; ".join(part for part in (keys, self.also) if part)

    def differences(self, config: Mapping[str, Any] | None) -> list[str]:
        """`key: ours vs theirs` for every setup key where a run's resolved (nested) config departs from the paper;
        what `also` names always differs (gradlab has no key for it)."""
        if config is None:
            return ["(run missing)"]
        diffs = [f"{key} {_get(config, key)!r} vs {theirs!r}" for key, theirs in self.setup.items()
                 if _get(config, key) != theirs]
        return diffs + ([f"not in gradlab: {self.also}"] if self.also else [])


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


_URNN = ("their uRNN is complex unitary, W = D3 R2 F⁻¹ D2 Π R1 F D1 (diagonal phases, reflections, a permutation, "
         "FFTs); gradlab's exprnn stands in for it: real orthogonal W_hh = exp(A), A skew-symmetric, with the same "
         "modReLU (Lezcano-Casado & Martínez-Rubio 2019)")


_GERS_SETUP = {"task.name": "reber_continual", "model.hidden_size": 8, "optim.name": "sgd", "optim.lr": 0.5}


_GERS_ALSO = ("theirs: 4 memory blocks of 2 cells (gates shared per block, input->output shortcuts, forget biases "
              "+0.5..+2), an online truncated (RTRL-style) gradient, one symbol per update, squared error on sigmoid "
              "outputs, training streams of up to 10^5 symbols stopped at the first error; perfect: 10^6 successive "
              "symbols right (ours: gates per cell, full BPTT over 500-symbol windows each from a fresh state, BCE, "
              "Adam; the test: 10 streams of 10^5 symbols never reset, every error counted)")


_ZUCCHET_ALSO = (
    "their students fit a fixed seed-42 teacher (jax's draw; ours torch's) at T=300 for 10,000 steps of batch 128, "
    "fresh sequences each step, Adam with cosine decay to 1e-7, no clipping, 10 seeds, lr grids of 5 (LRU 0.0032-0.32, "
    "RNN 3.2e-5-3.2e-3), best lr per (model, ν₀) by the seed-mean final training loss, loss 0.5·MSE; their dense RNN "
    "is linear with the teacher's tanh|Ginibre| eigenvalue init, their LRU r_max = 1 and C ~ N(0, 1). Ours (cuts): "
    "T=100, 500 steps of batch 64 (32,000 sequences, each seen once), Adam at a constant lr (gradlab has no "
    "schedule), 3 seeds, lrs LRU {0.01, 0.032} and RNN {0.001, 0.0032}, best lr picked as theirs (the last 50 steps' "
    "mean training loss); gradlab's rnn is tanh (fused nn.RNN, PyTorch init, a bias); the LRU's r_max 0.999, C "
    "nn.Linear's init; loss MSE (2 × theirs); the grid runs from the entry point (conf/paper/zucchet24_teacher.yaml)")


_PASCANU = Figure("rate", 1.0, 5, of="runs solving (under 1% of 10,000 fresh sequences wrong), of 5 per length "
                  "(their Figure 7)", other=0.0, other_is="no run", budget=5_000_000 * 20,
                  budget_is="5M updates of batch 20 (their maxiters; their code stops a run once 0 of 10,000 are "
                            "wrong)")


_GERS_BUDGET = {"budget": 30_000, "budget_is": "training streams (theirs each up to 10^5 symbols, ended at its first "
                "error; ours windows of 500 symbols): the cap of 30,000 as a summary of the paper gives it (its own "
                "sentence not found in what gradlab could read)"}


def _le(rate: float, other_is: str) -> Figure:
    return Figure("rate", rate, None, of="their Figure 2's runs (how many: not read)", other=1.0 - rate,
                  other_is=other_is, budget=None,
                  budget_is="not read: their Figure 2's steps (Section 4.1 was not in what gradlab could read)")


PUBLISHED: tuple[Published, ...] = (
    Published(
        "Hochreiter & Schmidhuber 1997, Exp. 4 (Table 7)",
        "the 1997 LSTM solves the adding problem at T=100/500/1000 after 74k/209k/853k training sequences",
        "adding", ("lstm97", "nfg_lstm"), (100, 1000), True,  # beside the grid's NFG, the 1997 cell's descendant
        setup={"task.name": "adding_hs97", "model.name": "lstm97", "model.hidden_size": 4, "model.block_size": 2,
               "model.truncate": True, "optim.name": "sgd", "optim.lr": 0.25, "trainer.batch_size": 1},
        also="their lr 0.5 on E = ½e² (gradlab's 0.25 on e²); the recurrent input is cells and gates (ours: the "
             "cells); a sigmoid output unit (ours: linear); a fresh sequence every update (ours: a fixed 100k set, "
             "reshuffled after the first pass); input gate biases -3/-6 as we read their text (chosen)",
        paper="hs97_adding", sequences={100: 74_000, 500: 209_000, 1000: 853_000},
        figure=Figure("central", n=10, of="the mean of 10 trials' training sequences until their stopping rule held "
                      "(Table 7); every trial's test error stayed below 0.01",
                      budget_is="not stated: their trials trained until the stopping rule held (a run of ours "
                                "needs at least their mean)")),
    Published(
        "Pascanu, Mikolov & Bengio 2013",
        "tanh RNN: ~100% success on their addition task up to T=200, with norm clipping AND their regulariser",
        "adding", ("rnn",), (50, 200), True,
        setup={"task.name": "addition_pascanu", "model.name": "rnn", "model.hidden_size": 50, "optim.name": "sgd",
               "optim.lr": 0.01, "trainer.batch_size": 20, "clip.mode": "norm", "clip.threshold": 1.0,
               "regulariser.name": "pascanu", "regulariser.alpha": 2.0},
        also="both markers in the first half, target the mean; lengths drawn in [50, 200]; 'smart' init (sparse "
             "W_hh at spectral radius 0.95); up to 5M iterations",
        paper="pascanu13_addition", figure=_PASCANU),
    Published(
        "Pascanu, Mikolov & Bengio 2013",
        "tanh RNN: ~100% success on the temporal-order task up to T=200, with norm clipping AND their regulariser",
        "first_token", ("rnn",), (50, 200), True,
        setup={"task.name": "temporal_order", "model.name": "rnn", "model.hidden_size": 50, "optim.name": "sgd",
               "optim.lr": 0.01, "trainer.batch_size": 20, "clip.mode": "norm", "clip.threshold": 1.0,
               "regulariser.name": "pascanu", "regulariser.alpha": 2.0},
        also="classifies the order of two symbols at random early positions (not first-token); 'smart' init; "
             "up to 5M iterations", paper="pascanu13_temporal", figure=_PASCANU),
    Published(
        "Le, Jaitly & Hinton 2015", "tanh RNN fails on the adding problem beyond T=150", "adding", ("rnn",),
        (151, 400), False, setup={"task.name": "adding", "model.name": "rnn", "model.hidden_size": 100},
        also="budgets and optimizer: the paper's figures", paper="le15_adding", figure=_le(0.0, "an IRNN solving")),
    Published(
        "Le, Jaitly & Hinton 2015", "LSTM solves the adding problem at T=150-400", "adding", ("lstm",), (150, 400),
        True, setup={"task.name": "adding", "model.name": "lstm", "model.hidden_size": 100},
        also="budgets and optimizer: the paper's figures", paper="le15_adding", figure=_le(1.0, "no run solving")),
    Published(
        "Le, Jaitly & Hinton 2015", "IRNN (their model) solves the adding problem at T=150-400, as the LSTM does",
        "adding", ("irnn",), (150, 400), True,
        setup={"task.name": "adding", "model.name": "irnn", "model.hidden_size": 100},
        also="budgets and optimizer: the paper's figures", paper="le15_adding", figure=_le(1.0, "no run solving")),
    Published(
        "Arjovsky, Shah & Bengio 2016", "setup of their RNN/LSTM baselines and uRNN on adding, T=100/200/400/750",
        "adding", ("rnn", "lstm", "exprnn"), (100, 750), None,
        setup={"task.name": "adding", "optim.name": "rmsprop", "optim.lr": 0.001, "trainer.batch_size": 20,
               "clip.mode": "value", "clip.threshold": 1.0},
        also=f"hidden sizes per task and model: the paper's table; {_URNN}", paper="arjovsky16_adding"),
    Published(
        "Arjovsky, Shah & Bengio 2016", "setup of their RNN/LSTM baselines and uRNN on copy, T=100/200/300/500",
        "copy", ("rnn", "lstm", "exprnn"), (100, 500), None,
        setup={"task.name": "copy", "optim.name": "rmsprop", "optim.lr": 0.001, "trainer.batch_size": 20,
               "clip.mode": "value", "clip.threshold": 1.0},
        also=f"hidden sizes per task and model: the paper's table; {_URNN}", paper="arjovsky16_copy"),
    Published(
        "Gers, Schmidhuber & Cummins 2000",
        "on the continual embedded Reber grammar, never reset, the LSTM without forget gate fails: 0% of 100 runs "
        "perfect (10^6 successive symbols right) and 1% 'good' (over 1000 successive symbols right on average); its "
        "cell state grows without bound; judged here by 'good', read as a test error rate of at most 1 in 1000 "
        "symbols", None, ("nfg_lstm",),
        (1, 10**9), False, setup=_GERS_SETUP, also=_GERS_ALSO + "; judged by their 'good'",
        paper="gers00_continual", line=1e-3,
        figure=Figure("rate", 0.01, 100, of="runs 'good' or better (Table 2: 0 perfect + 1 good of 100)",
                      other=0.47, other_is="the forget-gate LSTM's 18 perfect + 29 good of 100", **_GERS_BUDGET)),
    Published(
        "Gers, Schmidhuber & Cummins 2000",
        "with forget gates the LSTM learns to reset itself on the same stream: 18% of runs perfect (62% with a "
        "decaying learning rate); judged here by their 'good' (over 1000 successive symbols right on average), read "
        "as a test error rate of at most 1 in 1000 symbols", None, ("lstm",), (1, 10**9), True,
        setup=_GERS_SETUP, also=_GERS_ALSO + "; their 'good': over 1000 successive symbols right on average",
        paper="gers00_continual", line=1e-3,
        figure=Figure("rate", 0.47, 100, of="runs 'good' or better (Table 2: 18 perfect + 29 good of 100, constant "
                      "learning rate)", other=0.01, other_is="the LSTM without forget gate's 0 perfect + 1 good of 100",
                      **_GERS_BUDGET)),
    Published(
        "Zucchet & Orvieto 2024, Fig. 3A",
        "on a linear teacher with eigenvalue moduli in (ν₀, 1), the dense RNN's final loss is orders of magnitude "
        "above the LRU's at ν₀ = 0.99 (theirs: 0.42 vs 2.4e-5, ratio ~2e4; ~35 at 0.92), while at ν₀ = 0.68 they "
        "are about equal (1.3e-7 each); neither student's gradient vanishes or explodes (‖∂ℓ/∂h_t‖'s decay rate "
        "beside): the gap is the loss landscape, not the gradient", "linear_teacher", ("rnn", "lru"), (100, 300), True,
        setup={"task.name": "linear_teacher", "task.seq_len": 300, "trainer.max_steps": 10_000,
               "trainer.batch_size": 128, "optim.name": "adam", "clip.mode": "none"},
        also=_ZUCCHET_ALSO, paper="zucchet24_teacher",
        ratio_rule={"task.nu0": {0.99: ("gap", 100.0), 0.68: ("equal", 10.0)}},
        theirs_losses={0.68: (1.3e-7, 1.3e-7), 0.92: (8.7e-5, 2.4e-6), 0.99: (4.2e-1, 2.4e-5)},
        figure=Figure("rate", 1.0, 10, of="seeds holding the rule at each judged ν₀ (their 10 seeds' mean losses; "
                      "read as every seed)", other=0.0, other_is="no seed", budget=10_000 * 128,
                      budget_is="10,000 steps of batch 128 (their scans' config)")),
    Published(
        "Greff et al. 2017", "no forget gate (NFG) is clearly worse on TIMIT, IAM and JSB (5400 runs)", None,
        ("nfg_lstm",), (1, 10**9), False, also="speech, handwriting and music data, not synthetic tasks"),
)


def published_for(task: str, model: str, seq_len: int, config: Mapping[str, Any] | None) -> str:
    """The claims beside one cell, each with its source and how the run's setup differs ('same setup' if not)."""
    parts = []
    for p in PUBLISHED:
        if p.speaks_to(task, model, seq_len):
            diffs = p.differences(config)
            parts.append(f"{p.claim} ({p.source}); ours differs: {', '.join(diffs)}" if diffs else
                         f"{p.claim} ({p.source}); same setup")
    return " | ".join(parts)


def published_table() -> list[dict[str, Any]]:
    """PUBLISHED as rows (published.csv, the report): the claim, its setup, and where it sits in gradlab's grid."""
    verdict = {True: "solved", False: "not solved", None: "setup only"}
    return [{"source": p.source, "claim": p.claim, "found": verdict[p.solved],
             "beside": f"{p.family} {'/'.join(p.models)} T={p.T[0]}-{p.T[1]}" if p.family else "no gradlab task",
             "their setup": p.describe_setup()} for p in PUBLISHED]
