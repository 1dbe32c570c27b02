"""The study on W&B: `make wandb-report` (sync the offline runs, build and save a W&B Report), `make sync`.

python pipelines/wandb_report.py [--sync-only] [--project gradlab] [--entity E] [--root .]
python pipelines/wandb_report.py --check     # offline: the report's keys against the local offline runs

Online only: with no W&B API key or no answer from the server (2 s), it says what is missing and what to do,
exits 2 and changes nothing (nothing synced, no file written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wandb_report.py", description=__doc__.split("\n")[0])
    parser.add_argument("--sync-only", action="store_true", help="only upload the offline runs (make sync)")
    parser.add_argument("--project", default="gradlab", help="W&B project of the runs and the report")
    parser.add_argument("--entity", default=None, help="W&B entity (default: the API key's default entity)")
    parser.add_argument("--root", default=".", type=Path, help="the study's folder (holds runs/ and results/)")
    parser.add_argument("--check", action="store_true",
                        help="offline: check that the local offline runs logged every key the report shows")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gradlab.stages import wandb_report

    if args.check:
        return wandb_report.check(args.root)
    return wandb_report.upload(args.root, args.project, args.entity, args.sync_only)

if __name__ == "__main__":
    sys.exit(main())
