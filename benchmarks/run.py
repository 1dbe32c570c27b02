"""`make bench`: run every benchmark side by side in one process; write benchmarks/results.md and results.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from gradlab.readme_results import machine, machine_line

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import geometry_bench  # noqa: E402
import lyapunov_bench  # noqa: E402
import network_bench  # noqa: E402
import probe_bench  # noqa: E402
import study_bench  # noqa: E402
import training_bench  # noqa: E402


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, ""]
    groups = dict.fromkeys(r["group"] for r in rows)
    for group in groups:
        sel = [r for r in rows if r["group"] == group]
        keys = [k for k in sel[0] if k != "group"]
        lines += [f"### {group}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in sel]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    started = time.time()
    rows = (geometry_bench.run() + training_bench.run() + probe_bench.run() + lyapunov_bench.run() + network_bench.run()
            + study_bench.run())
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "wall_s": round(time.time() - started, 1)}
    header = ("# gradlab benchmarks\n\n"
              f"{meta['date']}, {machine_line(meta['machine'])}, {meta['threads']} threads, CUDA: {meta['cuda']}. "
              "Medians over rounds run side by side in one process (`make bench`).")
    (HERE / "results.md").write_text(markdown(rows, header))
    (HERE / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(markdown(rows, header))


if __name__ == "__main__":
    main()
