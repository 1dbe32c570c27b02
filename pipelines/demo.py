"""The phenomenon in about a minute: `python pipelines/demo.py` (= `make demo`).

Trains rnn, lstm and nfg_lstm on adding T=100 (one seed; the cpu profile's hidden 64, Adam lr 1e-2, batch 64, clip
norm 1) side by side, probes each on test data, and writes a one-page report with the headline figure ->
demo/index.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("demo"), help="where data, runs and the page go")
    parser.add_argument("--jobs", type=int, default=None, help="trainings at once (default: all three)")
    parser.add_argument("--max-steps", type=int, default=None, help="each model's steps (default: 1300)")
    args = parser.parse_args(argv)

    from dataclasses import replace

    from gradlab.launch.cli import reported
    from gradlab.stages import demo

    setup = demo.Setup() if args.max_steps is None else replace(demo.Setup(), max_steps=args.max_steps)
    reported(lambda: demo.run(args.work, setup, args.jobs), where=args.work)


if __name__ == "__main__":
    main()
