"""Stage `analyze`: the BPTT probe on a trained checkpoint, on test sequences -> runs/<run_name>/analysis/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from gradlab import geometry, plots
from gradlab.config import ConfigError
from gradlab.module import RecurrentModule
from gradlab.probes import bptt_probe, probe_rows, write_probe_outputs
from gradlab.resume import config_differences, read_checkpoint
from gradlab.tasks import atomic_write_bytes, ensure_dataset, load_split
from gradlab.tracking import finish_loggers, log_bptt_to_wandb, make_loggers, wandb_run_dir, write_json

# What must agree between the checkpoint and the command: the model the weights belong to and the data it reads.
IDENTITY_KEYS = ("task", "model", "data")


def load_checkpoint(path: Path, cfg: DictConfig) -> tuple[RecurrentModule, dict[str, Any]]:
    """The trained module from a gradlab checkpoint that belongs to cfg's task/model/data; ConfigError otherwise."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}: train the run first (python pipelines/train.py with the "
                          f"same overrides) or point run_name= at a trained run")
    ckpt = read_checkpoint(path, hint="retrain the run to replace it")
    saved, state = ckpt.get("hyper_parameters"), ckpt.get("state_dict")
    if not isinstance(saved, dict) or state is None:
        raise ConfigError(f"checkpoint {path} is not a gradlab training checkpoint; retrain the run")
    wanted = OmegaConf.to_container(cfg, resolve=True)
    diff = config_differences({g: saved.get(g) for g in IDENTITY_KEYS}, {g: wanted.get(g) for g in IDENTITY_KEYS})
    if diff:
        raise ConfigError(f"checkpoint {path} was trained with another config ({'; '.join(diff)}); "
                          f"use the overrides it was trained with or another run_name=")
    module = RecurrentModule(saved)
    module.load_state_dict(state)
    module.on_load_checkpoint(ckpt)
    return module.eval(), ckpt


def run_analysis(cfg: DictConfig) -> dict[str, Any]:
    """Probe the trained run on its first probe.batch_size test sequences; write analysis/ and a wandb run."""
    run_dir = Path(cfg.runs_dir) / cfg.run_name
    module, ckpt = load_checkpoint(run_dir / "model.ckpt", cfg)
    sizes = {s: int(cfg.data[f"n_{s}"]) for s in ("train", "val", "test")}
    ensure_dataset(cfg.data_dir, cfg.task, sizes, cfg.data.seed)
    x, y = load_split(cfg.data_dir, cfg.task, "test")
    x, y = x[: cfg.probe.batch_size], y[: cfg.probe.batch_size]
    step = int(ckpt.get("global_step", 0))

    result = bptt_probe(module.model, x, lambda out, traces: module.loss_and_accuracy(out, y)[0], keep_dW=True,
                        keep_vectors=True)
    out_dir = run_dir / "analysis"
    df, figures = write_probe_outputs(out_dir, probe_rows(step, result), f"{cfg.run_name} (test)")
    geo_rows, angles = geometry.network_geometry(geometry.network_vector_sets(
        result.vectors[-1]["h"], result.vectors[-1]["dL_dh"], result.dW[-1]["W_hh"]), seed=int(cfg.seed))
    geo = pd.DataFrame(geo_rows)
    atomic_write_bytes(out_dir / "geometry.csv", geo.to_csv(index=False).encode())
    figures["geometry_angles"] = plots.angle_sets(
        angles, dict(zip(geo.set, geo.dim, strict=True)), f"{cfg.run_name}: angles between the network's vectors",
        out_dir / "figures" / "geometry_angles.png")
    geo_scalars = {f"geometry_{r['set']}_{k}": r[k] for r in geo_rows
                   for k in ("angle_mean_deg", "angle_sd_deg", "random_angle_sd_deg")}
    summary = {"step": step, "status": module.status, "probe_batch": len(x), "split": "test",
               **{f"bptt_{k}": v for k, v in result.scalars.items()}, **geo_scalars}
    loggers = [lg for lg in make_loggers(cfg, out_dir, {**OmegaConf.to_container(cfg, resolve=True),
                                                         "job_type": "analysis"})]
    for lg in loggers:
        lg.log_metrics({f"analysis/bptt_{k}": v for k, v in result.scalars.items()}, step=step)
        lg.log_metrics({k.replace("geometry_", "geometry/", 1): v for k, v in geo_scalars.items()}, step=step)
    log_bptt_to_wandb(loggers, df, figures, prefix="analysis/bptt")
    wandb_dir = wandb_run_dir(loggers)
    finish_loggers(loggers)
    write_json(out_dir / "metrics.json", summary)
    print(f"{cfg.run_name}: probed step {step} on {len(x)} test sequences: decay rate "
          f"{result.scalars['decay_rate']:.4g}/step (predicted {result.scalars['decay_rate_predicted']:.4g}), "
          f"horizon {result.scalars['horizon']:.0f} of {x.shape[1]}")
    print(f"analysis:    {out_dir}/  (metrics.json, bptt.csv, geometry.csv, figures/)")
    if wandb_dir:
        print(f"wandb run:   {wandb_dir}")
    return summary
