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

EXIT_OFFLINE = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wandb_report.py", description=__doc__.split("\n")[0])
    parser.add_argument("--sync-only", action="store_true", help="only upload the offline runs (make sync)")
    parser.add_argument("--project", default="gradlab", help="W&B project of the runs and the report")
    parser.add_argument("--entity", default=None, help="W&B entity (default: the API key's default entity)")
    parser.add_argument("--root", default=".", type=Path, help="the study's folder (holds runs/ and results/)")
    parser.add_argument("--check", action="store_true",
                        help="offline: check that the local offline runs logged every key the report shows")
    return parser.parse_args(argv)


def check(root: Path) -> int:
    """The report spec against what the local offline runs logged (reads their .wandb logs; no network)."""
    from gradlab import wandb_report as w

    runs = w.find_offline_runs(root)
    if not runs:
        print(f"error: no offline wandb runs under {root}/runs or {root}/results", file=sys.stderr)
        return 1
    try:
        grid = w.geometry_grid(root)
    except ValueError:  # the geometry run's own log is unreadable: the loop below names it, and checks the rest
        grid = (w.DEFAULT_DIMS, w.DEFAULT_DISTRIBUTIONS)
    try:
        spec = w.study_spec(root, runs, grid)
    except ValueError as err:  # a train run's log is unreadable
        print(f"error: {err}", file=sys.stderr)
        return 1
    bad = 0
    for kind, folder in runs:
        try:
            missing = w.missing_keys(spec, w.read_offline_run(folder))
        except ValueError as err:  # a corrupt .wandb log: that run is bad, the others are still checked
            print(f"{kind:9s} {folder}: unreadable ({err})")
            bad += 1
            continue
        print(f"{kind:9s} {folder}: " + ("ok" if not missing else f"{len(missing)} keys missing"))
        for key, why in missing.items():
            print(f"    {key}: {why}")
        bad += bool(missing)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gradlab import wandb_report as w

    if args.check:
        return check(args.root)
    runs = w.find_offline_runs(args.root)  # local and read-only: a wrong --root is named before the network
    if not runs:
        print(f"error: no offline wandb runs under {args.root}/runs or {args.root}/results: run the study first "
              f"(make repro)", file=sys.stderr)
        return 1
    action = "sync" if args.sync_only else "wandb-report"
    status = w.online_status()
    if not status.online:
        print(w.offline_message(status, action), file=sys.stderr)
        return EXIT_OFFLINE
    kinds = sorted({kind for kind, _ in runs}, key=w.RUN_KINDS.index)
    where = f"{args.entity}/{args.project}" if args.entity else args.project
    print(f"syncing {len(runs)} offline runs ({', '.join(kinds)}) to {status.base_url}, project {where}", flush=True)
    rc = w.sync_runs([folder for _, folder in runs], args.project, args.entity)
    if rc != 0:
        print(f"error: wandb sync exited with status {rc}; nothing else was done", file=sys.stderr)
        return rc
    left = w.unsynced(folder for _, folder in runs)
    if left:
        print(f"error: wandb sync did not upload {len(left)} of {len(runs)} runs to {where} on {status.base_url} "
              f"(its messages above say why: an unknown --entity or --project, a key without access, ...); "
              f"first: {left[0]}", file=sys.stderr)
        return 1
    if args.sync_only:
        print(f"synced: {len(runs)} runs in project {where} (already synced ones are skipped)")
        return 0

    try:
        entity = args.entity or w.default_entity()
        report = w.build_report(w.study_spec(args.root, runs), args.project, entity, sources=kinds)
        url = w.save_report(report)
    except Exception as err:  # network, permissions, an API change: say so in one line
        print(f"error: the runs are synced, but the report could not be saved ({type(err).__name__}: {err})",
              file=sys.stderr)
        return 1
    print(f"W&B report: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
