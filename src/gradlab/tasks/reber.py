"""Gers, Schmidhuber & Cummins 2000's own task: the continual embedded Reber grammar (CERG).

The Reber grammar (Reber 1967; Cleeremans et al. 1989) over seven symbols B T P S X V E, embedded as in
Hochreiter & Schmidhuber 1997 (Experiment 1): B, then T or P, then a Reber string, then the same T or P again, then
E; every branch taken with probability 1/2. The continual version concatenates embedded strings into one stream with
no mark of where a string ends other than the grammar's own E B, and the network is never reset.

Input: the current symbol (a token, one-hot encoded by the model). Target at every step: the set of symbols the
grammar allows next (7 units, multi-label: spec kind "multilabel"; loss BCE on the logits, gradlab.training.module). A
step
is predicted correctly when every output unit is on the right side of 0.5 (Gers et al.: a prediction is wrong as
soon as one output unit is).

Training and validation sequences: the first seq_len symbols of their own stream, each from a fresh state (the
training approximation: the network starts from zeros at each window, as Gers' training streams started fresh).
The test split: data.n_test streams of test_len symbols, each never reset (stream.csv: errors and ‖c_t‖ along it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from gradlab.core.errors import out_of_range
from gradlab.tasks.base import Task, TaskSpec, register

if TYPE_CHECKING:
    from torch import Tensor


SYMBOLS = "BTPSXVE"  # token ids 0..6; the output units in the same order


# The Reber grammar: state -> its edges (symbol, next state); two edges: each taken with probability 1/2.
# Its strings run from state 0 to the E out of state 6, e.g. BTXSE, BPVVE, BTSSXXTVVE, BPTVPSE.
REBER: tuple[tuple[tuple[str, int], ...], ...] = (
    (("B", 1),),
    (("T", 2), ("P", 3)),
    (("S", 2), ("X", 4)),
    (("T", 3), ("V", 5)),
    (("X", 3), ("S", 6)),
    (("P", 4), ("V", 6)),
    (("E", 7),),  # 7: the Reber string has ended
)


def _embedded() -> tuple[tuple[tuple[str, int], ...], ...]:
    """The embedded grammar, 19 states: 0 emits the outer B; 1 the branch (T -> 2, P -> 10); 2-8 the Reber grammar
    inside the T branch (REBER shifted by 2), its E leading to 9, which emits the T again; 10-16 the Reber grammar
    inside the P branch, its E leading to 17, which emits the P again; 18 emits the outer E and returns to 0: the
    next string's B follows at once (the continual stream)."""
    def inner(offset: int, exit_state: int):
        return tuple(tuple((s, exit_state if n == len(REBER) else n + offset) for s, n in edges) for edges in REBER)

    return ((("B", 1),), (("T", 2), ("P", 10)), *inner(2, 9), (("T", 18),), *inner(10, 17), (("P", 18),),
            (("E", 0),))


EMBEDDED = _embedded()


def legal_next(state: int) -> frozenset[str]:
    """The symbols the embedded grammar allows out of `state`: the target after a symbol that led to it."""
    return frozenset(s for s, _ in EMBEDDED[state])


def _tables():
    """EMBEDDED as arrays: each state's edge symbols and next states (a one-edge state repeats its edge) and its
    legal-next set as a 0/1 row over SYMBOLS."""
    import numpy as np

    sym = np.array([[SYMBOLS.index(e[k % len(e)][0]) for k in range(2)] for e in EMBEDDED])
    nxt = np.array([[e[k % len(e)][1] for k in range(2)] for e in EMBEDDED])
    legal = np.array([[int(c in legal_next(s)) for c in SYMBOLS] for s in range(len(EMBEDDED))])
    return sym, nxt, legal


def stationary() -> list[float]:
    """The stationary distribution of the grammar's state along the continual stream (the state after a symbol, out
    of which the next is emitted): expected visits per string, normalised. Exact: power iteration of the chain
    (aperiodic: loops S, T, X...), converged to 1e-15."""
    n = len(EMBEDDED)
    p = [1.0 / n] * n
    for _ in range(100_000):
        q = [0.0] * n
        for s, edges in enumerate(EMBEDDED):
            for _, t in edges:
                q[t] += p[s] / len(edges)
        if max(abs(a - b) for a, b in zip(p, q, strict=True)) < 1e-15:
            return q
        p = q
    return p


def memoryless_guess() -> tuple[list[float], float, float]:
    """The best input-free prediction of the stream's targets: each unit's stationary frequency of being legal next,
    its loss (BCE, mean over the 7 units: the binary entropy of each frequency) and accuracy (the steps whose legal
    set is exactly {units with frequency > 1/2})."""
    pi = stationary()
    freq = [sum(p for s, p in enumerate(pi) if c in legal_next(s)) for c in SYMBOLS]
    loss = sum(-(f * math.log(f) + (1 - f) * math.log(1 - f)) for f in freq if 0 < f < 1) / len(SYMBOLS)
    guess = frozenset(c for c, f in zip(SYMBOLS, freq, strict=True) if f > 0.5)
    return freq, loss, float(sum(p for s, p in enumerate(pi) if legal_next(s) == guess))


@register
@dataclass
class ReberContinualTask(Task):
    """The continual embedded Reber grammar (Gers et al. 2000): predict the legal next symbols of a stream of
    embedded Reber strings that is never reset. seq_len: the training/validation windows (each the start of its own
    stream, fresh state); test_len: the test streams (data.n_test of them), never reset.

    Solved: an error rate of at most 10^-6 over the test streams (solved_accuracy 0.999999): Gers et al.'s "perfect
    solution" is 10^6 successive symbols right; on 10 streams of 10^5 it is no error at all, at least test_len
    successive correct predictions in each (a line above 0: gradlab.study.verdicts judges a run by its distance to
    it)."""

    name: str = "reber_continual"
    order: ClassVar[int] = 80  # its place in TASKS (tables, error texts)
    seq_len: int = 100
    test_len: int = 10_000  # symbols per test stream: far longer than any training window
    solved_accuracy: float = 0.999999  # the fraction of correctly predicted steps needed: 1 error in 10^6 fails

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_len < 2:
            raise out_of_range("task.test_len", self.test_len, "an integer >= 2")
        if not 0 < self.solved_accuracy <= 1:
            raise out_of_range("task.solved_accuracy", self.solved_accuracy, "a number in (0, 1]")

    def for_split(self, split: str) -> Task:
        return replace(self, seq_len=self.test_len) if split == "test" else self

    def spec(self) -> TaskSpec:
        _, loss, acc = memoryless_guess()  # BCE 0.3314 per unit, accuracy 0.2286 (docs/theory.md)
        return TaskSpec(self.name, self.seq_len, self.seq_len, len(SYMBOLS), len(SYMBOLS), "multilabel", True, True,
                        loss, acc, None, self.solved_accuracy, continual=True)

    def generate(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        return generate_reber_continual(seed, self.seq_len, n)




def generate_reber_continual(seed: int, length: int, n: int) -> tuple[Tensor, Tensor]:
    """n continual streams of `length` symbols, each from the start of a string (state 0), never reset: x (n, length)
    token ids, y (n, length, 7) 0/1, y[:, t] the symbols legal after x[:, t]. Deterministic in seed (one
    torch.Generator draws every branch; a numpy loop over the steps, vectorised over the streams)."""
    import numpy as np
    import torch

    sym, nxt, legal = _tables()
    two = np.array([len(e) - 1 for e in EMBEDDED])  # 1 where the state branches
    coins = torch.randint(0, 2, (n, length), generator=torch.Generator().manual_seed(seed)).numpy()
    x = np.empty((n, length), dtype=np.int64)
    after = np.empty((n, length), dtype=np.int64)
    state = np.zeros(n, dtype=np.int64)
    for t in range(length):
        edge = coins[:, t] & two[state]
        x[:, t] = sym[state, edge]
        state = nxt[state, edge]
        after[:, t] = state
    return torch.from_numpy(x), torch.from_numpy(legal[after])
