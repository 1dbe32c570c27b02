"""`pipelines/compare.py`: the last BPTT probe of several runs in one figure, and how much gradient reaches t=0."""

from __future__ import annotations

from pathlib import Path

from gradlab.core.errors import DataError
from gradlab.core.runfolder import RunFolder
from gradlab.probe.figures import compare_final_probes
from gradlab.study.summary import read_csv


def run(runs: list[Path], out: Path, title: str, analysis: bool = False) -> Path:
    """Reads each run's bptt.csv (analysis/bptt.csv with analysis=True), prints t=0 / t=T-1 per quantity."""
    tables = {}
    for path in runs:
        run = RunFolder(path)
        csv = run.analysis.bptt if analysis else run.bptt
        if not csv.is_file():
            raise DataError(f"{csv} does not exist; train the run with the probe on (probe.enabled=true)"
                            + (" and run pipelines/analyze.py" if analysis else ""))
        tables[run.name] = csv
    frames = {name: read_csv(csv) for name, csv in tables.items()}
    for name, df in frames.items():
        last = df[(df.step == df.step.max()) & (df.layer == 0)]
        for quantity in ("dL_dh_norm", "dL_dc_norm"):
            v = last[last.quantity == quantity].sort_values("t").value.to_numpy()
            if len(v):
                print(f"{name}: {quantity} t=0 / t=T-1 = {v[0] / v[-1]:.3g}  (min/max over t {v.min() / v.max():.3g})")
    compare_final_probes(frames, title, out)
    print(f"wrote {out}")
    return out
