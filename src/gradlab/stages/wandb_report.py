"""`make sync` / `make wandb-report`: upload the study's offline wandb runs and build a W&B Report over them;
`--check` holds the report's spec against what the local offline runs logged (offline, no network)."""

from __future__ import annotations

import sys
from pathlib import Path

from gradlab.report.wandb_blocks import build_report, default_entity, save_report
from gradlab.report.wandb_panels import (
    DEFAULT_DIMS,
    DEFAULT_DISTRIBUTIONS,
    geometry_grid,
    missing_keys,
    study_spec,
)
from gradlab.tracking.wandb_log import read_offline_run
from gradlab.tracking.wandb_online import (
    find_offline_runs,
    kind_order,
    offline_message,
    online_status,
    sync_runs,
    unsynced,
)

EXIT_OFFLINE = 2  # online needed and not there: nothing was synced, written or changed


def check(root: Path) -> int:
    """The report spec against what the local offline runs logged (reads their .wandb logs; no network)."""
    runs = find_offline_runs(root)
    if not runs:
        print(f"error: no offline wandb runs under {root}/runs or {root}/results", file=sys.stderr)
        return 1
    try:
        grid = geometry_grid(root)
    except ValueError:  # the geometry run's own log is unreadable: the loop below names it, and checks the rest
        grid = (DEFAULT_DIMS, DEFAULT_DISTRIBUTIONS)
    try:
        spec = study_spec(root, runs, grid)
    except ValueError as err:  # a train run's log is unreadable
        print(f"error: {err}", file=sys.stderr)
        return 1
    bad = 0
    for kind, folder in runs:
        try:
            missing = missing_keys(spec, read_offline_run(folder))
        except ValueError as err:  # a corrupt .wandb log: that run is bad, the others are still checked
            print(f"{kind:9s} {folder}: unreadable ({err})")
            bad += 1
            continue
        print(f"{kind:9s} {folder}: " + ("ok" if not missing else f"{len(missing)} keys missing"))
        for key, why in missing.items():
            print(f"    {key}: {why}")
        bad += bool(missing)
    return 1 if bad else 0


def upload(root: Path, project: str, entity: str | None, sync_only: bool) -> int:
    """`wandb sync` the study's offline runs, then (unless sync_only) build and save the W&B Report; an exit code.
    Offline (no API key, no server), it says what is missing and what to do, and changes nothing."""
    runs = find_offline_runs(root)  # local and read-only: a wrong --root is named before the network
    if not runs:
        print(f"error: no offline wandb runs under {root}/runs or {root}/results: run the study first "
              f"(make repro)", file=sys.stderr)
        return 1
    action = "sync" if sync_only else "wandb-report"
    try:
        status = online_status()
    except RuntimeError as err:  # a wandb whose login check fails in a way gradlab does not know: one line
        print(f"error: {err}; nothing was synced", file=sys.stderr)
        return 1
    if not status.online:
        print(offline_message(status, action), file=sys.stderr)
        return EXIT_OFFLINE
    kinds = sorted({kind for kind, _ in runs}, key=kind_order)
    where = f"{entity}/{project}" if entity else project
    print(f"syncing {len(runs)} offline runs ({', '.join(kinds)}) to {status.base_url}, project {where}", flush=True)
    rc = sync_runs([folder for _, folder in runs], project, entity)
    if rc != 0:
        print(f"error: wandb sync exited with status {rc}; nothing else was done", file=sys.stderr)
        return rc
    left = unsynced(folder for _, folder in runs)
    if left:
        print(f"error: wandb sync did not upload {len(left)} of {len(runs)} runs to {where} on {status.base_url} "
              f"(its messages above say why: an unknown --entity or --project, a key without access, ...); "
              f"first: {left[0]}", file=sys.stderr)
        return 1
    if sync_only:
        print(f"synced: {len(runs)} runs in project {where} (already synced ones are skipped)")
        return 0

    try:
        report = build_report(study_spec(root, runs), project, entity or default_entity(), sources=kinds)
        url = save_report(report)
    except Exception as err:  # network, permissions, an API change: say so in one line
        print(f"error: the runs are synced, but the report could not be saved ({type(err).__name__}: {err})",
              file=sys.stderr)
        return 1
    print(f"W&B report: {url}")
    return 0

