"""Compare the last BPTT probe of trained runs in one figure.

    python pipelines/compare.py runs/adding-T100-rnn-none-s0 runs/adding-T100-lstm-none-s0 --out cmp.png

Reads each run's bptt.csv (or analysis/bptt.csv with --analysis) and prints the ratio of the first to the last
step's norms: how much of the gradient at t=T-1 reaches t=0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.launch.cli import reported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (runs/<run_name>)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--analysis", action="store_true", help="use analysis/bptt.csv (test data) instead")
    parser.add_argument("--title", default="per-step gradient norms after training")
    args = parser.parse_args(argv)

    from gradlab.stages import compare

    reported(lambda: compare.run(args.runs, args.out, args.title, args.analysis))


if __name__ == "__main__":
    main()
