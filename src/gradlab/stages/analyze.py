"""Stage `analyze`: the BPTT probe on a trained checkpoint, on test sequences -> runs/<run_name>/analysis/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gradlab.analysis import figures as analysis_figures
from gradlab.analysis.angles import network_geometry, network_vector_sets
from gradlab.core.conf import as_dict
from gradlab.core.errors import ConfigError
from gradlab.core.runfolder import RunFolder, atomic_write_bytes, write_json
from gradlab.data.sets import ensure_dataset, load_split
from gradlab.probe.bptt import bptt_probe, probe_dtype, probe_rows, write_probe_outputs
from gradlab.tracking.loggers import finish_loggers, log_bptt_to_wandb, make_loggers, wandb_run_dir
from gradlab.training.config import TrainConfig, train_config_from
from gradlab.training.module import RecurrentModule
from gradlab.training.resume import config_differences, read_checkpoint

# What must agree between the checkpoint and the command: the model the weights belong to and the data it reads.
IDENTITY_KEYS = ("task", "model", "data")


def load_checkpoint(path: Path, cfg: TrainConfig) -> tuple[RecurrentModule, dict[str, Any]]:
    """The trained module from a gradlab checkpoint that belongs to cfg's task/model/data; ConfigError otherwise."""
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}: train the run first (python pipelines/train.py with the "
                          f"same overrides) or point run_name= at a trained run")
    ckpt = read_checkpoint(path, hint="retrain the run to replace it")
    saved, state = ckpt.get("hyper_parameters"), ckpt.get("state_dict")
    if not isinstance(saved, dict) or state is None:
        raise ConfigError(f"checkpoint {path} is not a gradlab training checkpoint; retrain the run")
    wanted = as_dict(cfg)
    diff = config_differences({g: saved.get(g) for g in IDENTITY_KEYS}, {g: wanted.get(g) for g in IDENTITY_KEYS})
    if diff:
        raise ConfigError(f"checkpoint {path} was trained with another config ({'; '.join(diff)}); "
                          f"use the overrides it was trained with or another run_name=")
    module = RecurrentModule(train_config_from(saved))
    module.load_state_dict(state)
    module.on_load_checkpoint(ckpt)
    return module.eval(), ckpt


def lyapunov_stage(cfg: TrainConfig, module: RecurrentModule, x) -> tuple[pd.DataFrame, dict[str, float]]:
    """The k largest finite-time Lyapunov exponents (float64) along the probe batch's trajectories, of the trained
    net and of the same net at initialisation (the init training started from: same seed, same construction)."""
    import pytorch_lightning as pl
    import torch

    from gradlab.analysis.lyapunov import lyapunov_spectrum, state_size

    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as run_training does before building the module
    init = RecurrentModule(cfg).eval()
    k = min(cfg.probe.lyapunov_k, state_size(module.model))
    rows, scalars = [], {}
    for when, net in (("init", init.model), ("trained", module.model)):
        spectrum = lyapunov_spectrum(net, x, k=k, dtype=torch.float64)
        rows += [{"when": when, "index": i, "exponent": float(v)} for i, v in enumerate(spectrum.exponents)]
        scalars["lyapunov_max" + ("_init" if when == "init" else "")] = spectrum.largest
    return pd.DataFrame(rows), scalars


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Probe the trained run on its first probe.batch_size test sequences; write analysis/ and a wandb run."""
    folder = RunFolder.of(cfg.runs_dir, cfg.run_name)
    module, ckpt = load_checkpoint(folder.final_ckpt, cfg)
    ensure_dataset(cfg.data_dir, cfg.task, cfg.data.sizes(), cfg.data.seed)
    x, y = load_split(cfg.data_dir, cfg.task, "test")
    x, y = x[: cfg.probe.batch_size], y[: cfg.probe.batch_size]
    step = int(ckpt.get("global_step", 0))

    result = bptt_probe(module.model, x, lambda out, traces: module.loss_and_accuracy(out, y)[0], keep_dW=True,
                        keep_vectors=True, dtype=probe_dtype(cfg.probe), memory=cfg.probe)
    out = folder.analysis
    df, figures = write_probe_outputs(out, probe_rows(step, result), f"{cfg.run_name} (test)")
    geo_rows, angles = network_geometry(network_vector_sets(
        result.vectors[-1]["h"], result.vectors[-1]["dL_dh"], result.dW[-1]["W_hh"]), seed=cfg.seed)
    geo = pd.DataFrame(geo_rows)
    atomic_write_bytes(out.geometry, geo.to_csv(index=False).encode())
    figures["geometry_angles"] = analysis_figures.angle_sets(
        angles, dict(zip(geo.set, geo.dim, strict=True)), f"{cfg.run_name}: angles between the network's vectors",
        out.figures / "geometry_angles.png")
    geo_scalars = {f"geometry_{r['set']}_{k}": r[k] for r in geo_rows
                   for k in ("angle_mean_deg", "angle_sd_deg", "random_angle_sd_deg")}
    spectra, lyap_scalars = lyapunov_stage(cfg, module, x)
    atomic_write_bytes(out.lyapunov, spectra.to_csv(index=False).encode())
    figures["lyapunov"] = analysis_figures.lyapunov_spectra(spectra, result.scalars["decay_rate"],
                                                 f"{cfg.run_name}: Lyapunov spectrum", out.figures / "lyapunov.png")
    summary = {"step": step, "status": module.status, "probe_batch": len(x), "split": "test",
               **{f"bptt_{k}": v for k, v in result.scalars.items()}, **lyap_scalars, **geo_scalars}
    loggers = make_loggers(cfg.logger, cfg.run_name, out.path, {**as_dict(cfg), "job_type": "analysis"})
    for lg in loggers:
        lg.log_metrics({f"analysis/bptt_{k}": v for k, v in result.scalars.items()}, step=step)
        lg.log_metrics({k.replace("geometry_", "geometry/", 1): v for k, v in geo_scalars.items()}, step=step)
        lg.log_metrics({f"analysis/{k}": v for k, v in lyap_scalars.items()}, step=step)
    log_bptt_to_wandb(loggers, df, figures, prefix="analysis/bptt")
    wandb_dir = wandb_run_dir(loggers)
    finish_loggers(loggers)
    write_json(out.metrics, summary)
    print(f"{cfg.run_name}: probed step {step} on {len(x)} test sequences: decay rate "
          f"{result.scalars['decay_rate']:.4g}/step (predicted {result.scalars['decay_rate_predicted']:.4g}), "
          f"horizon {result.scalars['horizon']:.0f} of {x.shape[1]}; Lyapunov λ_1 {lyap_scalars['lyapunov_max']:.4g}"
          f"/step (at init {lyap_scalars['lyapunov_max_init']:.4g})")
    print(f"analysis:    {out.path}/  (metrics.json, bptt.csv, lyapunov.csv, geometry.csv, figures/)")
    if wandb_dir:
        print(f"wandb run:   {wandb_dir}")
    return summary
