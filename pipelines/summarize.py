"""Stage `summarize`: every run of the study (params.yaml) in one table, beside the published results.

    python pipelines/summarize.py            # -> results/summary/ (summary.csv, summary.md, metrics.json, plots/)

Reads each run's metrics.json and its analysis (runs/<run>/analysis/); a run that is missing is listed as such, a
record that cannot be read fails the stage (naming the file) before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.launch.cli import reported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study grid")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results/summary"))
    parser.add_argument("--logger-mode", default="offline", help="wandb mode (default: offline; WANDB_MODE wins)")
    args = parser.parse_args(argv)

    from gradlab.stages import summarize
    from gradlab.study.grid import paper_runs, read_params, study_runs

    def run() -> None:
        params = read_params(args.params)
        summarize.run(study_runs(params), args.runs_dir, args.out, args.logger_mode, paper_runs(params))

    reported(run, where=args.out)


if __name__ == "__main__":
    main()
