"""Stage `summarize`: every run of the study (params.yaml) in one table, beside the published results.

    python pipelines/summarize.py            # -> results/summary/ (summary.csv, summary.md, metrics.json, plots/)

Reads each run's metrics.json and its analysis (runs/<run>/analysis/); a run that is missing is listed as such.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study grid")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results/summary"))
    parser.add_argument("--logger-mode", default=None, help="wandb mode (default: offline; WANDB_MODE wins)")
    args = parser.parse_args(argv)

    from gradlab.config import ConfigError
    from gradlab.tasks import DataError

    try:
        from gradlab.study import read_params, study_runs

        runs = study_runs(read_params(args.params))
        from gradlab.summary_stage import run_summary

        run_summary(runs, args.runs_dir, args.out, args.logger_mode or "offline")
    except (ConfigError, DataError) as err:  # nothing is written before every run's records have been read
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
