"""The summarize stage: results/summary/ (tables, DVC metrics, curves for `dvc plots`) and a wandb summary run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from gradlab.study import RunKey, cells, curve_tables, dvc_metrics, headline, summarize, write_summary
from gradlab.tasks import atomic_write_bytes
from gradlab.tracking import finish_loggers, make_loggers, wandb_run_dir


def _flat(tree: dict[str, Any], prefix: str) -> dict[str, float]:
    """{'a': {'b': 1}} -> {'<prefix>/a/b': 1}, leaving out None (wandb would log it as a string)."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}/{key}"))
        elif value is not None:
            out[f"{prefix}/{key}"] = value
    return out


def log_summary_to_wandb(df: pd.DataFrame, out: Path, mode: str) -> str | None:
    """A wandb run `study-summary`: the per-run table, the pooled table, and the DVC metrics as summary/... scalars."""
    cfg = OmegaConf.create({"logger": {"mode": mode, "project": "gradlab", "entity": None},
                            "run_name": "study-summary"})
    loggers = [lg for lg in make_loggers(cfg, out, {"job_type": "summary", "runs": df.run.tolist()})
               if type(lg).__name__ == "WandbLogger"]
    if not loggers:
        return None
    import wandb

    run = loggers[0].experiment
    pooled = cells(df)
    payload: dict[str, Any] = {"summary/table": wandb.Table(dataframe=df.astype({"published": str})),
                               "summary/cells": wandb.Table(dataframe=pooled.astype(str))}
    payload.update(_flat(dvc_metrics(df), "summary"))  # the DVC metrics' numbers, as summary/<task>/<T>/...
    run.log(payload)
    where = wandb_run_dir(loggers)
    finish_loggers(loggers)
    return where


def run_summary(runs: list[RunKey], runs_dir: Path, out: Path, mode: str = "offline") -> pd.DataFrame:
    df = summarize(runs, runs_dir)
    tables = curve_tables(df, runs_dir)  # every run's records are read (DataError if one is corrupt) before writing
    files = write_summary(df, out)
    for name, table in tables.items():  # plots/learning/<task>-T<T>.csv, plots/bptt/...
        atomic_write_bytes(out / "plots" / f"{name}.csv", table.to_csv(index=False).encode())
    where = log_summary_to_wandb(df, out, mode)
    missing = df[df.status == "missing"].run.tolist()
    print(headline(df))
    print(f"summary:     {files['md']} ({len(df)} runs; {len(missing)} missing"
          + (f": {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}" if missing else "") + ")")
    if where:
        print(f"wandb run:   {where}")
    return df
