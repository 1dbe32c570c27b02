"""Stage `report`: the study as one self-contained HTML page.

    python pipelines/report.py               # -> reports/index.html (open it in any browser; no network needed)

Reads the summarize stage's table (results/summary/summary.csv), the runs' logs and figures, results/geometry,
results/cliff and results/memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.launch.cli import reported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, default=Path("results/summary/summary.csv"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--geometry-dir", type=Path, default=Path("results/geometry"))
    parser.add_argument("--cliff-dir", type=Path, default=Path("results/cliff"))
    parser.add_argument("--memory-dir", type=Path, default=Path("results/memory"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)

    import pandas as pd

    from gradlab.stages import report
    from gradlab.study.summary import read_summary

    def run():
        repro_csv = args.summary.parent / "reproduction.csv"
        repro = pd.read_csv(repro_csv) if repro_csv.is_file() else None
        return report.run(read_summary(args.summary), args.runs_dir, args.geometry_dir, args.out, args.cliff_dir, repro,
                          args.memory_dir)

    path = reported(run)
    print(f"report:      {path.resolve()}  ({path.stat().st_size / 1e6:.1f} MB, self-contained)")


if __name__ == "__main__":
    main()
