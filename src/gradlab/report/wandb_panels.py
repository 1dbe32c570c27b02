"""The study's W&B Report: which sections and panels show which logged keys from which kind of run (plain data,
checked offline against real runs). gradlab.report.wandb_blocks turns it into `wandb_workspaces.reports.v2` objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradlab import cells
from gradlab.tasks import TASKS
from gradlab.theory.geometry_config import GeometryParams
from gradlab.tracking.wandb_log import OfflineRun, read_offline_run
from gradlab.tracking.wandb_online import find_offline_runs

STEP = "trainer/global_step"  # the x axis of every history plot (Lightning's WandbLogger defines it as step metric)


# run kind -> the Runset filter of its panel grids ("" = every run of the project; a panel shows only the runs
# that logged its keys). Training runs have no positive marker in their config, so they go unfiltered; the analysis
# and summary runs say job_type in their config (the summary run is `study-summary`, results/summary).
RUNSET_FILTERS: dict[str, str] = {
    "train": "",
    "analysis": "Config('job_type') = 'analysis'",
    "geometry": "Name = 'geometry-reference'",
    "summary": "Config('job_type') = 'summary'",
}


LAYOUT = {"line": (12, 8), "media": (12, 10), "line_series": (12, 8), "table": (24, 10), "bar": (8, 7),
          "histogram": (6, 6)}


# panel kind -> the type of value it shows, as read_offline_run reports it
VALUE_TYPES = {"line": "number", "bar": "number", "media": "image-file", "line_series": "custom-chart",
               "table": "table-file", "histogram": "histogram"}


Condition = tuple[tuple[str, tuple[Any, ...]], ...]  # (config path, allowed values), all must hold


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its kind, the keys it shows, and the kind of run that logs them.

    kind: "line" (history vs x), "bar" (the last value per run), "media" (images), "line_series" (a logged
    `wandb.plot.line_series`: its custom chart and `<key>_table`), "table" (a logged `wandb.Table`), "histogram"
    (a logged `wandb.Histogram`). `when` restricts it to runs whose config matches (e.g. the rnn-only keys).
    """

    kind: str
    title: str
    keys: tuple[str, ...]
    source: str
    x: str | None = None
    log_y: bool = False
    when: Condition = ()

    def applies_to(self, config: Mapping[str, Any]) -> bool:
        """Whether a run with this (nested) config logs the panel's keys."""
        return all(_config_get(config, path) in allowed for path, allowed in self.when)

    def logged_types(self) -> dict[str, str]:
        """key -> the value type the run must have logged under it (as `read_offline_run` names types)."""
        types = {k: VALUE_TYPES[self.kind] for k in self.keys}
        if self.kind == "line_series":
            types.update({f"{k}_table": "table-file" for k in self.keys})
        return types


@dataclass(frozen=True)
class SectionSpec:
    """One H1 section: a heading, a paragraph, and panels (one panel grid per source run kind)."""

    title: str
    text: str
    panels: tuple[PanelSpec, ...]


def _config_get(config: Mapping[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


PROBED: Condition = (("probe.enabled", (True,)),)  # the BPTT probe during training (probe.enabled=true)


CLASSIFICATION: Condition = (("task.name", tuple(n for n, t in TASKS.items()
                                                 if t().spec().kind in ("classification", "multilabel"))),)


GEOMETRY_SETS = ("hidden_across_samples", "hidden_across_time", "grad_h_across_time", "dW_hh_across_time")


# The geometry stage's figures as logged images (its line series are under geometry/line/).
GEOMETRY_FIGURES = ("angle_histograms", "angle_sd_vs_D", "relative_contrast_vs_D", "distances_vs_D",
                    "shell_fraction_vs_D", "ball_cube_ratio_vs_D")


GEOMETRY_LINE_SERIES = ("angle_sd_deg", "relative_contrast", "dist_mean")


DEFAULT_DIMS = tuple(GeometryParams().dims)  # the geometry stage's defaults


DEFAULT_DISTRIBUTIONS = tuple(d.value for d in GeometryParams().distributions)


def _probe_panels(prefix: str, source: str, layers: Iterable[int], scalar_kind: str, scalars: str,
                  base: Condition = ()) -> list[PanelSpec]:
    """The BPTT probe's outputs under prefix (bptt during training, analysis/bptt after): images, the latest probe's
    line_series, the tidy table, and the derived scalars (`scalars` + name: bptt/decay_rate, analysis/bptt_...).
    `base`: the condition of them all."""
    x = STEP if scalar_kind == "line" else None
    # read when the panels are built, so that a cell registered after import is in them: models with a cell
    # state c_t, and h_t = φ(W_hh h_{t-1} + …) ones (W_hh's spectrum, Pascanu's bound)
    rnn, gated = base + (("model.name", cells.elementwise()),), base + (("model.name", cells.with_state("c")),)
    panels = []
    for layer in layers:
        deep = (("model.num_layers", tuple(range(layer + 1, 65))),) if layer else ()  # runs with that many layers
        base_l, gated_l = base + deep, gated + deep
        panels += [
            PanelSpec("media", f"‖∂ℓ/∂h_t‖ vs t and over training, layer {layer}",
                      (f"{prefix}/bptt_dL_dh_norm_l{layer}", f"{prefix}/bptt_heatmap_dL_dh_norm_l{layer}"), source,
                      when=base_l),
            PanelSpec("media", f"‖∂ℓ/∂c_t‖ vs t and over training, layer {layer}",
                      (f"{prefix}/bptt_dL_dc_norm_l{layer}", f"{prefix}/bptt_heatmap_dL_dc_norm_l{layer}"), source,
                      when=gated_l),
            PanelSpec("line_series", f"per-step gradient norms of the last probe, layer {layer}",
                      (f"{prefix}/latest_l{layer}",), source, x="t", when=base_l),
        ]
    panels += [
        PanelSpec(scalar_kind, "decay rate of ‖∂ℓ/∂h_t‖ (ln per step): measured and predicted",
                  (f"{scalars}decay_rate", f"{scalars}decay_rate_predicted"), source, x=x, when=base),
        PanelSpec(scalar_kind, "Pascanu et al. bound on the decay rate (elementwise cells)",
                  (f"{scalars}decay_rate_bound",), source, x=x, when=rnn),
        PanelSpec(scalar_kind, "decay rate of ‖∂ℓ/∂c_t‖ (cells with a cell state)", (f"{scalars}decay_rate_c",),
                  source, x=x, when=gated),
        PanelSpec(scalar_kind, "horizon (steps until the gradient falls below 1e-3)", (f"{scalars}horizon",),
                  source, x=x, when=base),
        PanelSpec(scalar_kind, "W_hh spectral norm and radius (elementwise cells)",
                  (f"{scalars}W_hh_spectral_norm", f"{scalars}W_hh_spectral_radius"), source, x=x, when=rnn),
        PanelSpec("table", "the probe's table (step, layer, t, quantity, value)", (f"{prefix}/table",), source,
                  when=base),
    ]
    return panels


def _geometry_sections(geometry_dims: Iterable[int], geometry_distributions: Iterable[str]) -> tuple[SectionSpec, ...]:
    """The two geometry sections: the networks' own vectors (analysis runs), random vectors (the geometry stage)."""
    hist_keys = [f"geometry/angle_hist/{d}_D{D}" for d in geometry_distributions for D in geometry_dims]
    return (
    SectionSpec("Geometry of the networks' vectors",
                "Angles between the network's own vectors, beside random vectors of the same dimension.", (
        PanelSpec("media", "angles between the network's vectors", ("analysis/bptt/geometry_angles",),
                  "analysis"),
        PanelSpec("bar", "mean angle (degrees)", tuple(f"geometry/{s}_angle_mean_deg" for s in GEOMETRY_SETS),
                  "analysis"),
        PanelSpec("bar", "sd of the angle (degrees)", tuple(f"geometry/{s}_angle_sd_deg" for s in GEOMETRY_SETS),
                  "analysis"),
        PanelSpec("bar", "sd of the angle between random vectors (degrees)",
                  tuple(f"geometry/{s}_random_angle_sd_deg" for s in GEOMETRY_SETS), "analysis"),
    )),
    SectionSpec("High-dimensional geometry (random vectors against theory)",
                "The geometry stage (results/geometry): statistics of random vectors against exact theory.", (
        *(PanelSpec("media", name.replace("_", " "), (f"geometry/{name}",), "geometry")
          for name in GEOMETRY_FIGURES),
        *(PanelSpec("line_series", f"{stat} vs D", (f"geometry/line/{stat}_vs_D",), "geometry", x="D")
          for stat in GEOMETRY_LINE_SERIES),
        *(PanelSpec("histogram", key.rsplit("/", 1)[1], (key,), "geometry") for key in hist_keys),
        PanelSpec("table", "reference.csv", ("geometry/reference",), "geometry"),
    )),
    )


def report_spec(layers: Iterable[int] = (0,), geometry_dims: Iterable[int] = DEFAULT_DIMS,
                geometry_distributions: Iterable[str] = DEFAULT_DISTRIBUTIONS) -> tuple[SectionSpec, ...]:
    """The W&B report as data: its own seven sections (the summary, learning curves, the gradient norm and clipping,
    the BPTT probe while training, the analysis, the networks' vectors' geometry, the geometry stage; the HTML
    report's headline, dynamics and literature have no counterpart here), each panel with its keys and source.

    `layers`: the recurrent layers whose per-layer keys get panels (default the first); `geometry_dims` and
    `geometry_distributions`: those of the geometry stage (its angle histograms are logged per distribution and D).
    """
    layers = tuple(layers)
    return (
        SectionSpec("Summary: which model learns which T",
                    "One row per run of the study (results/summary), and each training run's result.", (
            PanelSpec("table", "the study's summary table", ("summary/table",), "summary"),
            PanelSpec("bar", "test loss / memoryless baseline (below 0.01: solved)",
                      ("final/test_loss_rel_baseline",), "train"),
            PanelSpec("bar", "fraction of optimizer steps clipped", ("final/clip_fraction",), "train"),
            PanelSpec("bar", "largest gradient norm before clipping", ("final/grad_norm_preclip_max",), "train"),
            PanelSpec("bar", "decay rate at the last probe (ln per step) and its prediction",
                      ("final/bptt_decay_rate", "final/bptt_decay_rate_predicted"), "train", when=PROBED),
        )),
        SectionSpec("Learning curves", "Training loss per optimizer step and validation loss at each validation.", (
            PanelSpec("line", "loss", ("train/loss", "val/loss"), "train", x=STEP, log_y=True),
            PanelSpec("line", "loss / memoryless baseline", ("train/loss_rel_baseline", "val/loss_rel_baseline"),
                      "train", x=STEP, log_y=True),
            PanelSpec("line", "accuracy (classification tasks)", ("train/acc", "val/acc"), "train", x=STEP,
                      when=CLASSIFICATION),
        )),
        SectionSpec("Gradient norm per optimizer step, and clipping",
                    "Total gradient norm before and after clipping, and whether clipping fired.", (
            PanelSpec("line", "gradient norm before / after clipping", ("grad/norm_preclip", "grad/norm_postclip"),
                      "train", x=STEP, log_y=True),
            PanelSpec("line", "clipped (1) or not (0)", ("grad/clipped",), "train", x=STEP),
        )),
        SectionSpec("Gradients through time (BPTT probe during training)",
                    "Per-time-step gradient norms on a fixed validation batch, every probe.every_n_steps steps.",
                    tuple(_probe_panels("bptt", "train", layers, "line", "bptt/", base=PROBED))),
        SectionSpec("Analysis: the trained checkpoint on test sequences",
                    "The BPTT probe of pipelines/analyze.py on each trained run (runs/*/analysis).",
                    tuple(_probe_panels("analysis/bptt", "analysis", layers, "bar", "analysis/bptt_"))),
        *_geometry_sections(geometry_dims, geometry_distributions),
    )


def study_spec(root: str | Path, runs: Iterable[tuple[str, Path]],
               grid: tuple[tuple[int, ...], tuple[str, ...]] | None = None) -> tuple[SectionSpec, ...]:
    """The report spec of this study: per-layer panels up to the deepest training run's layers, the geometry
    stage's dims and distributions (both read from the runs' logs; `grid` gives the latter instead). `--check` and
    the upload use the same."""
    configs = [read_offline_run(folder).config for kind, folder in runs if kind == "train"]
    n_layers = max((int(_config_get(c, "model.num_layers") or 1) for c in configs), default=1)
    dims, dists = grid or geometry_grid(root)
    return report_spec(layers=range(n_layers), geometry_dims=dims, geometry_distributions=dists)


def spec_keys(spec: Iterable[SectionSpec], source: str, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """key -> value type, for every key that the spec's panels for `source` runs read (only the panels that apply
    to a run with `config`, if given)."""
    return {k: t for section in spec for p in section.panels
            if p.source == source and (config is None or p.applies_to(config)) for k, t in p.logged_types().items()}


def missing_keys(spec: Iterable[SectionSpec], run: OfflineRun) -> dict[str, str]:
    """The spec's keys for this run's kind and config that the run did not log with the expected type:
    key -> "expected <type>, logged <type or nothing>"."""
    need = spec_keys(spec, run.kind or "", run.config)
    return {k: f"expected {t}, logged {run.keys.get(k, 'nothing')}" for k, t in sorted(need.items())
            if run.keys.get(k) != t}


def geometry_grid(root: str | Path = ".") -> tuple[tuple[int, ...], tuple[str, ...]]:
    """dims and distributions of the latest local geometry run (from its offline log); the defaults when there is
    no geometry run. ValueError naming the run when its log does not say them (the report's panels would not match
    what the run logged)."""
    runs = [f for kind, f in find_offline_runs(root) if kind == "geometry"]
    if not runs:
        return DEFAULT_DIMS, DEFAULT_DISTRIBUTIONS
    try:
        geo = read_offline_run(runs[-1]).config["geometry"]
        return tuple(int(d) for d in geo["dims"]), tuple(str(d) for d in geo["distributions"])
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise ValueError(f"{runs[-1]}: cannot read the geometry run's dims and distributions from its log "
                         f"({type(err).__name__}: {err})") from None
