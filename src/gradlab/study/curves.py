"""One run's curves, read back from its records: validation loss / baseline against the optimizer step, the total
gradient norm per step, and the last BPTT probe relative to t=T-1; and the tables `dvc plots` draws from them, pooled
over seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradlab import cells
from gradlab.core.runfolder import RunFolder, read_json
from gradlab.study.summary import models_in, read_csv


def val_curve(run_dir: Path) -> pd.Series | None:
    """Validation loss / the memoryless baseline vs optimizer step (index) of one run; None when it has none."""
    run = RunFolder(run_dir)
    m = read_json(run.metrics) or {}
    if not (run.metrics_csv.is_file() and m.get("baseline_loss")):
        return None
    log = read_csv(run.metrics_csv)
    if "val/loss" not in log:
        return None
    v = log[["step", "val/loss"]].dropna().drop_duplicates("step").set_index("step")["val/loss"]
    return v / m["baseline_loss"] if len(v) else None


def grad_norm(run_dir: Path) -> pd.Series | None:
    """grad/norm_preclip per optimizer step, as a running median so that 1e-3 .. 1e3 spikes stay readable."""
    csv = RunFolder(run_dir).metrics_csv
    if not csv.is_file():
        return None
    log = read_csv(csv)
    if "grad/norm_preclip" not in log:
        return None
    g = log[["step", "grad/norm_preclip"]].dropna().set_index("step")["grad/norm_preclip"]
    return g.rolling(max(1, len(g) // 100), min_periods=1).median() if len(g) else None


def probe_ratio(runs_dir: Path, run: str, quantity: str = "dL_dh_norm") -> tuple[pd.Series | None, bool]:
    """One run's last probe of `quantity` (layer 0) relative to its value at t=T-1, indexed by t (0 where the norm
    underflowed: the report's bands draw it as below every other value), and whether it is the analysis stage's probe
    on test data (True) or, where the run has none, the last training probe on validation data (False). (None, _)
    where the run has no such quantity."""
    curve, test = probe_last(runs_dir, run, quantity)
    if curve is None or not float(curve.iloc[-1]) > 0:
        return None, test
    return curve / float(curve.iloc[-1]), test


def probe_last(runs_dir: Path, run: str, quantity: str) -> tuple[pd.Series | None, bool]:
    """As probe_ratio, the values themselves: the last probe of `quantity` (layer 0), indexed by t."""
    folder = RunFolder.of(runs_dir, run)
    for csv, test in ((folder.analysis.bptt, True), (folder.bptt, False)):
        if not csv.is_file():
            continue
        d = read_csv(csv)
        sel = d[(d.quantity == quantity) & (d.layer == 0)]
        if sel.empty:
            return None, test
        sel = sel[sel.step == sel.step.max()].sort_values("t")
        return pd.Series(sel.value.to_numpy(dtype=float), index=sel.t.to_numpy()), test
    return None, False


def curve_tables(df: pd.DataFrame, runs_dir: Path) -> dict[str, pd.DataFrame]:
    """Tables for `dvc plots`, per (task, T, clip) with one column per model (median over seeds; the columns are
    always every registered model, so that dvc.yaml can name them): learning/<task>-T<T>-<clip>.csv, validation loss /
    baseline vs step; bptt/<task>-T<T>-<clip>.csv, the last test probe's ‖∂ℓ/∂h_t‖ / ‖∂ℓ/∂h_{T-1}‖ vs t."""
    tables: dict[str, pd.DataFrame] = {}
    for (task, T, clip), g in df[df.status != "missing"].groupby(["task", "seq_len", "clip"], sort=False):
        columns = models_in([*cells.names(), *g.model])
        learn: dict[str, list[pd.Series]] = {m: [] for m in columns}
        grad: dict[str, list[pd.Series]] = {m: [] for m in columns}
        for _, r in g.iterrows():
            v = val_curve(runs_dir / r["run"])
            if v is not None:
                learn[r["model"]].append(v)
            bptt = RunFolder.of(runs_dir, r["run"]).analysis.bptt
            if bptt.is_file():
                b = read_csv(bptt)
                sel = b[(b.quantity == "dL_dh_norm") & (b.layer == 0)].sort_values("t").set_index("t").value
                if len(sel) and sel.iloc[-1] > 0:
                    grad[r["model"]].append(sel / sel.iloc[-1])
        for kind, series, x in (("learning", learn, "step"), ("bptt", grad, "t")):
            cols = {m: pd.concat(v, axis=1).median(axis=1) if v else pd.Series(dtype=float) for m, v in series.items()}
            if any(len(c) for c in cols.values()):
                table = pd.DataFrame(cols).sort_index()
                table.index.name = x
                tables[f"{kind}/{task}-T{T}-{clip}"] = table.reset_index()
    return tables
