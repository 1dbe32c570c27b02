"""Compare the last BPTT probe of trained runs in one figure.

    python pipelines/compare.py runs/adding-T100-rnn-none-s0 runs/adding-T100-lstm-none-s0 --out cmp.png

Reads each run's bptt.csv (or analysis/bptt.csv with --analysis) and prints the ratio of the first to the last
step's norms: how much of the gradient at t=T-1 reaches t=0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (runs/<run_name>)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--analysis", action="store_true", help="use analysis/bptt.csv (test data) instead")
    parser.add_argument("--title", default="per-step gradient norms after training")
    args = parser.parse_args(argv)
    tables = {}
    for run in args.runs:
        csv = run / "analysis" / "bptt.csv" if args.analysis else run / "bptt.csv"
        if not csv.is_file():
            sys.exit(f"error: {csv} does not exist; train the run with the probe on (probe.enabled=true)"
                     + (" and run pipelines/analyze.py" if args.analysis else ""))
        tables[run.name] = csv
    import pandas as pd

    from gradlab import plots

    frames = {name: pd.read_csv(csv) for name, csv in tables.items()}
    for name, df in frames.items():
        last = df[(df.step == df.step.max()) & (df.layer == 0)]
        for quantity in ("dL_dh_norm", "dL_dc_norm"):
            v = last[last.quantity == quantity].sort_values("t").value.to_numpy()
            if len(v):
                print(f"{name}: {quantity} t=0 / t=T-1 = {v[0] / v[-1]:.3g}  (min/max over t {v.min() / v.max():.3g})")
    plots.compare_final_probes(frames, args.title, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
