"""The study's wandb runs in `wandb leet`, W&B's terminal viewer, offline: `python pipelines/view.py [PATTERN ...]`.

= `make view ARGS="[PATTERN ...]"`. Every run of the study in one list (runs/*/wandb, runs/*/analysis/wandb,
results/*/wandb), or those whose name or run folder matches a glob PATTERN (`adding-T100-lstm-*`, `*.analysis`,
`summary`). leet is pointed at `.view/wandb/`, a folder of symlinks rebuilt on every call (gradlab.tracking.view), so
that
nothing is written into the runs (DVC outputs). `--build-only` builds it and prints its path instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.launch.cli import reported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", help="glob patterns of run names (default: every run)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the study's checkout (default: here)")
    parser.add_argument("--build-only", action="store_true", help="build .view/wandb/ and print its path; no viewer")
    args = parser.parse_args(argv)

    from gradlab.tracking import view

    folder, runs = reported(lambda: view.prepare(args.root, args.patterns), where=args.root / view.VIEW_DIR)
    if args.build_only:
        print(folder)
        return
    reported(lambda: view.launch(folder, len(runs)))


if __name__ == "__main__":
    main()
