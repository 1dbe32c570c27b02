"""The linear recurrences' training step (gradlab.cells.scan) against nn.RNN's fused tanh kernel, like for like.

One training step (forward, loss, backward, Adam step) of RecurrentNet on the adding task's batches, at the same
B, H and T for every model: `rnn` on the fused nn.RNN (oneDNN on CPU, cuDNN on GPU), `lru` and `linear` on the
blocked scan, and `lru` on its step loop (the probe's unrolled twin) to show what the scan buys. All variants are
interleaved round by round so that they share the machine's state; the table gives the median ms/step over rounds
and the ratio to the fused rnn of the same T.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from gradlab.models.net import RecurrentNet
from gradlab.tasks.adding import AddingTask, generate_adding

B, H = 64, 64
LENGTHS = (100, 1000)
GROUP = f"linear recurrences: one training step (Adam), B={B}, H={H}, median ms over rounds"


def variant(kind: str, T: int, unrolled: bool = False):
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = RecurrentNet(kind, AddingTask(seq_len=T).spec(), H).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = (t.to(device) for t in generate_adding(0, T, B))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = net.forward_unrolled(x)[0] if unrolled else net(x)
        F.mse_loss(out, y).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def run(rounds: int = 5, steps: int = 5) -> list[dict]:
    rows = []
    for T in LENGTHS:
        variants = {("rnn", "fused nn.RNN (tanh)"): variant("rnn", T), ("lru", "blocked scan"): variant("lru", T),
                    ("linear", "blocked scan"): variant("linear", T)}
        if T <= 100:  # the step loop at T = 1000 would take most of the benchmark's time
            variants[("lru", "step loop (the probe's twin)")] = variant("lru", T, unrolled=True)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in variants}
        for fn in variants.values():
            fn()  # warm-up
        for _ in range(rounds):
            for key, fn in variants.items():
                t0 = time.perf_counter()
                for _ in range(steps):
                    fn()
                times[key].append(1e3 * (time.perf_counter() - t0) / steps)
        base = statistics.median(times[("rnn", "fused nn.RNN (tanh)")])
        for (model, how), ts in times.items():
            median = statistics.median(ts)
            rows.append({"group": GROUP, "model": model, "T": T, "how": how, "ms/step": round(median, 2),
                         "x fused rnn": round(median / base, 2)})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
