"""Geometry speed and memory: every pair statistic for 10,000 pairs at D=10,000 against only drawing the same
2x10^8 random numbers (the limit), and query-to-set distances for 100,000 points at D=1,000 in bounded memory."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch

from gradlab.theory import geometry as g

N_PAIRS, D = 10_000, 10_000
GROUP_PAIRS = "geometry: 10,000 pairs at D=10,000 (cube, CPU), median s over repeats"
GROUP_MEMORY = "geometry: query-to-set distances, 100,000 points at D=1,000, 100 queries (fresh process)"


def draw_only_chunked(gen: torch.Generator) -> None:
    rows = g._rows_per_chunk(D, 2)
    for start in range(0, N_PAIRS, rows):
        g.sample("cube", 2 * min(rows, N_PAIRS - start), D, gen)


def draw_only_one_call(gen: torch.Generator) -> None:
    torch.rand(2 * N_PAIRS * D, generator=gen)


def all_statistics(gen: torch.Generator) -> None:
    g.summary(g.random_pairs("cube", D, N_PAIRS, gen), D)


def _peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would carry over the parent's peak across exec on Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def memory_probe() -> dict:
    """Run in a fresh process: peak RSS growth while streaming 100,000 points past 100 queries."""
    gen = torch.Generator().manual_seed(0)
    queries = g.sample("cube", 100, 1000, gen)
    before = _peak_rss_mb()
    t0 = time.perf_counter()
    qd = g.query_distances(queries, g.random_point_chunks("cube", 100_000, 1000, gen), n_points=100_000)
    took = time.perf_counter() - t0
    peak = _peak_rss_mb()
    return {"seconds": took, "peak_rss_growth_mb": peak - before, "peak_rss_mb": peak,
            "rc_mean": float(qd.relative_contrast.mean())}


def run(repeats: int = 5) -> list[dict]:
    variants = {"all pair statistics (gradlab.theory.geometry)": all_statistics,
                "draw only, same chunks": draw_only_chunked,
                "draw only, one torch.rand(2e8)": draw_only_one_call}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats):
        for name, fn in variants.items():
            gen = torch.Generator().manual_seed(r)
            t0 = time.perf_counter()
            fn(gen)
            times[name].append(time.perf_counter() - t0)
    draw = min(statistics.median(times["draw only, same chunks"]), statistics.median(times[
        "draw only, one torch.rand(2e8)"]))
    rows = [{"group": GROUP_PAIRS, "name": name, "median_s": round(statistics.median(v), 3),
             "runs_s": [round(x, 3) for x in v], "vs_fastest_draw": round(statistics.median(v) / draw, 3)}
            for name, v in times.items()]
    out = subprocess.run([sys.executable, __file__, "--memory"], capture_output=True, text=True, check=True)
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append({"group": GROUP_MEMORY, "name": "streamed in chunks of 4,194 points",
                 "seconds": round(mem["seconds"], 2), "peak_rss_growth_mb": round(mem["peak_rss_growth_mb"], 1),
                 "peak_rss_mb": round(mem["peak_rss_mb"], 1), "relative_contrast_mean": round(mem["rc_mean"], 4)})
    return rows


if __name__ == "__main__" and "--memory" in sys.argv:
    print(json.dumps(memory_probe()))
