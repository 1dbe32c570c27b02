"""Stage `cliff`: Pascanu et al.'s cliff (gradlab.theory.cliff) -> results/cliff/. `python pipelines/cliff.py`.

Writes surface.csv (ℓ and ‖∇ℓ‖ on a (w, b) grid), slices.csv (along b = const: the largest ‖∇ℓ‖, resolved by
refinement, where it lies, and the plain's median beside it), trajectories.csv (SGD from one start with and without
norm clipping), summary.json, figures/cliff.png and a wandb run (offline unless WANDB_MODE says otherwise).
Seconds on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

W_RANGE, B_RANGE = (3.0, 7.0), (-4.0, -1.5)
SLICES = (-3.5, -3.0, -2.8, -2.5, -2.0)
START, LR, STEPS, CLIP = (5.3, -2.8), 0.05, 60, 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/cliff"))
    args = parser.parse_args(argv)

    import pandas as pd

    from gradlab.core.runfolder import atomic_write_bytes, write_json
    from gradlab.theory.cliff import Cliff, figure
    from gradlab.tracking.config import LoggerConfig
    from gradlab.tracking.loggers import log_once

    c = Cliff()
    surface = c.surface(W_RANGE, B_RANGE)
    slices = pd.DataFrame([c.slice_max(b, W_RANGE) for b in SLICES])
    runs = {"SGD": None, f"SGD, norm clipped at {CLIP:g}": CLIP}
    trajectories = pd.concat([c.sgd(START, LR, STEPS, clip).assign(run=name) for name, clip in runs.items()])
    steps = trajectories.assign(length=lambda d: (d.groupby("run").w.diff() ** 2
                                                  + d.groupby("run").b.diff() ** 2) ** 0.5)
    top = slices.loc[slices.grad_norm_max.idxmax()]
    summary = {"setup": {"T": c.T, "x0": c.x0, "target": c.target, "w_range": W_RANGE, "b_range": B_RANGE,
                         "start": START, "lr": LR, "steps": STEPS, "clip": CLIP},
               "wall": {"b": float(top.b), "w": float(top.w_at_max), "grad_norm_max": float(top.grad_norm_max),
                        "grad_norm_median": float(top.grad_norm_median)},
               "largest_step": {run: float(g.length.max()) for run, g in steps.groupby("run", sort=False)},
               "final_loss": {run: float(g.loss.iloc[-1]) for run, g in trajectories.groupby("run", sort=False)}}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, df in (("surface", surface), ("slices", slices), ("trajectories", trajectories)):
        atomic_write_bytes(args.out / f"{name}.csv", df.to_csv(index=False).encode())
    figure(surface, trajectories, slices, f"the cliff: x_t = w·σ(x_t−1) + b, T={c.T}",
                args.out / "figures" / "cliff.png")
    write_json(args.out / "summary.json", summary)
    figure = args.out / "figures" / "cliff.png"
    where = log_once(LoggerConfig(), "cliff", args.out, {"job_type": "cliff", **summary["setup"]},
                     lambda wandb: {"cliff/map": wandb.Image(str(figure)),
                                    "cliff/slices": wandb.Table(dataframe=slices),
                                    "cliff/trajectories": wandb.Table(dataframe=trajectories),
                                    "cliff/grad_norm_max": summary["wall"]["grad_norm_max"],
                                    **{f"cliff/largest_step/{k}": v for k, v in summary["largest_step"].items()}})
    wall = summary["wall"]
    print(f"cliff: ‖∇ℓ‖ up to {wall['grad_norm_max']:.3g} at (w={wall['w']:.6g}, b={wall['b']:g}), "
          f"{wall['grad_norm_max'] / wall['grad_norm_median']:.2g}x the slice's median; largest SGD step "
          + ", ".join(f"{run}: {v:.3g}" for run, v in summary["largest_step"].items()) + f" -> {args.out}/")
    if where:
        print(f"wandb run:   {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
