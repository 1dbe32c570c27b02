"""`make bench`: run every benchmark side by side in one process; write benchmarks/results.md and results.json.

`make bench ONLY=lyapunov` (names: the modules below, without `_bench`) reruns only those benchmarks and replaces
their groups in results.json, keeping the others; every group records the date and machine it was measured on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from gradlab.pages.recording import machine, machine_line

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import geometry_bench  # noqa: E402
import lyapunov_bench  # noqa: E402
import network_bench  # noqa: E402
import probe_bench  # noqa: E402
import scan_bench  # noqa: E402
import study_bench  # noqa: E402
import training_bench  # noqa: E402

BENCHES = {"geometry": geometry_bench, "training": training_bench, "probe": probe_bench, "lyapunov": lyapunov_bench,
           "network": network_bench, "study": study_bench,
           "scan": scan_bench}


def markdown(rows: list[dict], header: str, measured: dict[str, dict] | None = None) -> str:
    lines = [header, ""]
    groups = dict.fromkeys(r["group"] for r in rows)
    for group in groups:
        sel = [r for r in rows if r["group"] == group]
        keys = [k for k in sel[0] if k != "group"]
        lines += [f"### {group}", ""]
        if measured and group in measured:
            m = measured[group]
            lines += [f"Measured {m['date']} on {machine_line(m['machine'])}, {m['threads']} threads.", ""]
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in sel]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    only = [name for name in (argv if argv is not None else sys.argv[1:]) if name]
    unknown = [name for name in only if name not in BENCHES]
    if unknown:
        raise SystemExit(f"error: ONLY={','.join(unknown)} is not a benchmark; choose from: {', '.join(BENCHES)}")
    started = time.time()
    rows = [row for name, bench in BENCHES.items() if not only or name in only for row in bench.run()]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "wall_s": round(time.time() - started, 1)}
    measured = {r["group"]: meta for r in rows}
    if only and (HERE / "results.json").is_file():  # keep the other groups, each with where it was measured
        old = json.loads((HERE / "results.json").read_text())
        kept = [r for r in old["rows"] if r["group"] not in measured]
        measured = {r["group"]: old.get("measured", {}).get(r["group"], old["meta"]) for r in kept} | measured
        rows = kept + rows
        meta = old["meta"] | {"updated": meta["date"], "updated_groups": only}
    header = ("# gradlab benchmarks\n\n"
              f"{meta['date']}, {machine_line(meta['machine'])}, {meta['threads']} threads, CUDA: {meta['cuda']}. "
              "Medians over rounds run side by side in one process (`make bench`)"
              + (f"; updated {meta['updated']} (`make bench ONLY={','.join(meta['updated_groups'])}`), each group "
                 "with where it was measured." if "updated" in meta else "."))
    (HERE / "results.md").write_text(markdown(rows, header, measured))
    (HERE / "results.json").write_text(json.dumps({"meta": meta, "measured": measured, "rows": rows}, indent=1))
    print(markdown(rows, header, measured))


if __name__ == "__main__":
    main()
