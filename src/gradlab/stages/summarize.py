"""Stage `summarize`: results/summary/ (tables, DVC metrics, curves for `dvc plots`) and a wandb summary run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gradlab.core.runfolder import atomic_write_bytes
from gradlab.study.curves import curve_tables
from gradlab.study.grid import PaperRun, RunKey
from gradlab.study.summary import dvc_metrics, headline, pooled, summarize, write_summary
from gradlab.study.verdicts import reproduction
from gradlab.tracking.config import LoggerConfig
from gradlab.tracking.loggers import log_once


def _flat(tree: dict[str, Any], prefix: str) -> dict[str, float]:
    """{'a': {'b': 1}} -> {'<prefix>/a/b': 1}, leaving out None (wandb would log it as a string)."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}/{key}"))
        elif value is not None:
            out[f"{prefix}/{key}"] = value
    return out


def wandb_payload(wandb: Any, df: pd.DataFrame) -> dict[str, Any]:
    """The summary run's one log: the per-run table, the pooled one, and the DVC metrics as summary/... scalars."""
    return {"summary/table": wandb.Table(dataframe=df.astype({"published": str})),
            "summary/cells": wandb.Table(dataframe=pooled(df).astype(str)),
            **_flat(dvc_metrics(df), "summary")}


def run(runs: list[RunKey], runs_dir: Path, out: Path, mode: str = "offline",
        papers: list[PaperRun] | None = None) -> pd.DataFrame:
    df = summarize(runs, runs_dir)
    repro = reproduction(papers or [], runs_dir)
    tables = curve_tables(df, runs_dir)  # every run's records are read (DataError if one is corrupt) before writing
    files = write_summary(df, out, repro)
    for name, table in tables.items():  # plots/learning/<task>-T<T>.csv, plots/bptt/...
        atomic_write_bytes(out / "plots" / f"{name}.csv", table.to_csv(index=False).encode())
    where = log_once(LoggerConfig(mode=mode), "study-summary", out, {"job_type": "summary", "runs": df.run.tolist()},
                     lambda wandb: wandb_payload(wandb, df))
    missing = df[df.status == "missing"].run.tolist()
    print(headline(df))
    for _, r in repro[repro.verdict != "not run"].iterrows():
        print(f"{r['source']} ({r['model']}, T={r['T']}): {r['verdict']}, solved {r['solved']}"
              + (f" ({r['in the band']} in the band)" if r["in the band"] else ""))
    print(f"summary:     {files['md']} ({len(df)} runs; {len(missing)} missing"
          + (f": {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}" if missing else "") + ")")
    if where:
        print(f"wandb run:   {where}")
    return df
