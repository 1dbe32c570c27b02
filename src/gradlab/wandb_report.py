"""The study on W&B: sync the offline runs (`make sync`) and build a W&B Report over them (`make wandb-report`).

Four layers, so that everything but the upload itself is testable offline:

* `online_status` / `offline_message`: is there an API key (as wandb itself would find it: WANDB_API_KEY, an
  identity token file, the .netrc entry for the server, the settings files) and does the server answer (TCP, 2 s,
  the check of `gradlab.tracking.wandb_reachable`)? Offline, nothing is imported that writes (no Lightning).
* `find_offline_runs` / `sync_runs`: the study's `offline-run-*` folders and `wandb sync` over them.
* `report_spec`: which sections and panels show which logged keys, from which kind of run: plain data.
* `build_report` / `save_report`: the spec as `wandb_workspaces.reports.v2` objects, and the upload.

`read_offline_run` reads an offline run's `run-*.wandb` transaction log (what `wandb sync` uploads) and returns the
keys the run logged, so that a test can hold the spec against what the pipeline really logs.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# ---------------------------------------------------------------------------------------------- the study's runs

# run kind -> where its offline runs are, relative to the repository root (the summary stage may not exist yet)
RUN_GLOBS: dict[str, tuple[str, ...]] = {
    "train": ("runs/*/wandb/offline-run-*",),
    "analysis": ("runs/*/analysis/wandb/offline-run-*",),
    "geometry": ("results/geometry/wandb/offline-run-*",),
    "summary": ("results/summary/wandb/offline-run-*",),
}
RUN_KINDS = tuple(RUN_GLOBS)


def find_offline_runs(root: str | Path = ".") -> list[tuple[str, Path]]:
    """(kind, folder) of every offline wandb run of the study under root, oldest first within a kind.

    Only folders with a `run-*.wandb` log count (wandb's `latest-run` symlink is skipped).
    """
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for kind, patterns in RUN_GLOBS.items():
        for pattern in patterns:
            for folder in sorted(root.glob(pattern)):
                if folder.is_dir() and not folder.is_symlink() and any(folder.glob("run-*.wandb")):
                    found.append((kind, folder))
    return found


def run_kind(folder: str | Path) -> str | None:
    """The kind of an offline-run folder from where it lies (train, analysis, geometry, summary), else None."""
    parts = Path(folder).resolve().parts
    if len(parts) < 4 or parts[-2] != "wandb":
        return None
    if parts[-3] == "analysis" and len(parts) >= 6 and parts[-5] == "runs":
        return "analysis"
    if parts[-4] == "runs":
        return "train"
    if parts[-4] == "results" and parts[-3] in ("geometry", "summary"):
        return parts[-3]
    return None


# ------------------------------------------------------------------------------------------------- online check

DEFAULT_BASE_URL = "https://api.wandb.ai"


@dataclass(frozen=True)
class OnlineStatus:
    """What `make sync` / `make wandb-report` need: a configured API key and a server that answers."""

    base_url: str
    credentials: str | None  # where wandb found them (e.g. "WANDB_API_KEY", "/home/me/.netrc"), None: none
    credentials_error: str | None  # found but unusable (e.g. a malformed key)
    unreachable: str | None  # why the server did not answer, None: it did

    @property
    def online(self) -> bool:
        return self.credentials is not None and self.unreachable is None


def wandb_base_url() -> str:
    """The server wandb would talk to: WANDB_BASE_URL, else the settings files (`wandb login --host`), else wandb's
    default."""
    if url := os.environ.get("WANDB_BASE_URL"):
        return url.rstrip("/")
    try:
        from wandb.sdk import wandb_setup

        return str(wandb_setup.singleton().settings.base_url).rstrip("/")
    except Exception:  # an older or broken wandb: its documented default
        return DEFAULT_BASE_URL


def find_credentials(base_url: str) -> tuple[str | None, str | None]:
    """(where the credentials for base_url come from, or None; an error if they exist but are unusable).

    Asks wandb itself (`wandb.sdk.lib.wbauth.authenticate_session` without prompt, verification or side effects:
    the same lookup `wandb.Api()` and `wandb login` make: WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, the .netrc
    entry for the host, the settings files). Reads no network and writes nothing.
    """
    try:
        from wandb.sdk.lib import wbauth
    except ImportError:  # an older wandb without wbauth: the environment variable and the .netrc
        return _credentials_fallback(base_url)
    try:
        from wandb.sdk import wandb_setup

        settings = wandb_setup.singleton().settings
        app_url = settings.app_url if str(settings.base_url).rstrip("/") == base_url else None
        auth = wbauth.authenticate_session(host=wbauth.HostUrl(base_url, app_url=app_url), source="gradlab",
                                           prompt=False, verify=False, update_session=False)
    except Exception as err:  # a malformed key, WANDB_API_KEY and an identity token file both set, ...
        return None, f"{type(err).__name__}: {err}"
    if auth is None:
        return None, None
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY", None
    if os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE", None
    return _netrc_path() if _netrc_has(base_url) else "wandb settings", None


def _netrc_path() -> str:
    return os.environ.get("NETRC") or str(Path.home() / ".netrc")


def _netrc_has(base_url: str) -> bool:
    import netrc

    try:
        return bool(netrc.netrc(_netrc_path()).authenticators(urlsplit(base_url).netloc))
    except (OSError, netrc.NetrcParseError):
        return False


def _credentials_fallback(base_url: str) -> tuple[str | None, str | None]:
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY", None
    return (_netrc_path(), None) if _netrc_has(base_url) else (None, None)


def proxy_for(base_url: str) -> str | None:
    """The proxy wandb's HTTP client (requests) would use for base_url: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either
    case), unless NO_PROXY names the host."""
    import urllib.request

    url = urlsplit(base_url)
    if url.hostname and urllib.request.proxy_bypass(url.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


def server_reachable(base_url: str, timeout: float = 2.0) -> str | None:
    """None if the server at base_url (or the proxy that reaches it) accepts a TCP connection within timeout, else
    why not. The whole check, name resolution included, is bounded: getaddrinfo itself takes no timeout, so the
    attempt runs in a daemon thread that is abandoned if it has not answered. (Also the check of
    `gradlab.tracking.wandb_reachable`; here because this module must not import Lightning.)"""
    import threading

    url = urlsplit(base_url)
    proxy = proxy_for(base_url)
    target = urlsplit(proxy) if proxy else url
    port = target.port or (443 if target.scheme == "https" else 80)
    where = f"{target.scheme}://{target.hostname}:{port}" + (f" (the proxy for {base_url})" if proxy else "")
    answer: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((target.hostname or "", port), timeout=timeout).close()
            answer.append(None)
        except OSError as err:
            answer.append(f"cannot reach {where} ({err.strerror or err})")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    if not answer:
        return f"cannot reach {where} (no answer within {timeout:g} s, name lookup included)"
    return answer[0]


def online_status(timeout: float = 2.0) -> OnlineStatus:
    """Credentials (local lookup) and a TCP connection to the server (at most `timeout` seconds). No side effects."""
    base_url = wandb_base_url()
    credentials, error = find_credentials(base_url)
    return OnlineStatus(base_url, credentials, error, server_reachable(base_url, timeout))


def offline_message(status: OnlineStatus, action: str = "wandb-report") -> str:
    """What is missing and what to do, in a few lines (for stderr)."""
    host = urlsplit(status.base_url).netloc or status.base_url
    lines = [f"error: make {action} needs W&B online, and it is not: nothing was synced, written or changed."]
    if status.credentials_error:
        lines.append(f"  - the W&B API key for {status.base_url} is unusable: {status.credentials_error}")
    elif status.credentials is None:
        lines.append(f"  - no W&B API key for {status.base_url}: WANDB_API_KEY is not set and "
                     f"{_netrc_path()} has no entry for {host}")
    else:
        lines.append(f"  - API key: found ({status.credentials})")
    if status.unreachable:
        lines.append(f"  - server: {status.unreachable} within 2 s (WANDB_BASE_URL selects another server)")
    else:
        lines.append(f"  - server: {status.base_url} answers")
    steps = []
    if status.unreachable:
        steps.append(("get online", "or set WANDB_BASE_URL to a W&B server you can reach"))
    if status.credentials is None:
        steps.append(("wandb login", "asks for your API key and saves it in ~/.netrc (or: export WANDB_API_KEY=...)"))
    steps += [("make sync", "uploads the offline runs (runs/*/wandb, runs/*/analysis/wandb, results/*/wandb)"),
              ("make wandb-report", "syncs them, then builds the W&B report and prints its URL")]
    lines.append("To put the study on W&B:")
    lines += [f"  {i}. {what:18s} {why}" for i, (what, why) in enumerate(steps, 1)]
    lines.append("Offline, every result is on disk already: runs/*/metrics.json, metrics.csv, figures/, results/.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- sync


def sync_command(folders: Iterable[Path], project: str | None = None, entity: str | None = None) -> list[str]:
    """`wandb sync` (the CLI of the wandb installed with this Python) over the folders; already synced ones are
    skipped by wandb (its `.wandb.synced` marker)."""
    cmd = [sys.executable, "-m", "wandb", "sync"]
    if project:
        cmd += ["--project", project]
    if entity:
        cmd += ["--entity", entity]
    return cmd + [str(f) for f in folders]


def sync_runs(folders: list[Path], project: str | None = None, entity: str | None = None) -> int:
    """Upload the offline runs; returns wandb sync's exit status. Needs the network (check `online_status`)."""
    if not folders:
        return 0
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_SERVICE")}
    return subprocess.run(sync_command(folders, project, entity), env=env).returncode


def unsynced(folders: Iterable[Path]) -> list[Path]:
    """The offline-run folders wandb has not marked as uploaded (`run-*.wandb.synced`). `wandb sync` exits 0 even
    when the server refuses a run (an unknown entity, a bad key), so its exit status alone proves nothing."""
    return [Path(f) for f in folders if not any(Path(f).glob("run-*.wandb.synced"))]


# ------------------------------------------------------------------------------------------- the report, as data

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
GATED: Condition = (("model.name", ("lstm", "nfg_lstm")),)  # models with a cell state c_t
RNN: Condition = (("model.name", ("rnn",)),)
CLASSIFICATION: Condition = (("task.name", ("copy", "first_token")),)
GEOMETRY_SETS = ("hidden_across_samples", "hidden_across_time", "grad_h_across_time", "dW_hh_across_time")
# The geometry stage's figures as logged images (its line series are under geometry/line/).
GEOMETRY_FIGURES = ("angle_histograms", "angle_sd_vs_D", "relative_contrast_vs_D", "distances_vs_D",
                    "shell_fraction_vs_D", "ball_cube_ratio_vs_D")
GEOMETRY_LINE_SERIES = ("angle_sd_deg", "relative_contrast", "dist_mean")
DEFAULT_DIMS = (2, 3, 10, 50, 100, 1000, 10000)
DEFAULT_DISTRIBUTIONS = ("cube", "gaussian", "sphere")


def _probe_panels(prefix: str, source: str, layers: Iterable[int], scalar_kind: str, scalars: str,
                  base: Condition = ()) -> list[PanelSpec]:
    """The BPTT probe's outputs under prefix (bptt during training, analysis/bptt after): images, the latest probe's
    line_series, the tidy table, and the derived scalars (`scalars` + name: bptt/decay_rate, analysis/bptt_...).
    `base`: the condition of them all."""
    x = STEP if scalar_kind == "line" else None
    rnn, gated = base + RNN, base + GATED
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
        PanelSpec(scalar_kind, "Pascanu et al. bound on the decay rate (rnn)", (f"{scalars}decay_rate_bound",),
                  source, x=x, when=rnn),
        PanelSpec(scalar_kind, "decay rate of ‖∂ℓ/∂c_t‖ (lstm, nfg_lstm)", (f"{scalars}decay_rate_c",), source,
                  x=x, when=gated),
        PanelSpec(scalar_kind, "horizon (steps until the gradient falls below 1e-3)", (f"{scalars}horizon",),
                  source, x=x, when=base),
        PanelSpec(scalar_kind, "W_hh spectral norm and radius (rnn)",
                  (f"{scalars}W_hh_spectral_norm", f"{scalars}W_hh_spectral_radius"), source, x=x, when=rnn),
        PanelSpec("table", "the probe's table (step, layer, t, quantity, value)", (f"{prefix}/table",), source,
                  when=base),
    ]
    return panels


def report_spec(layers: Iterable[int] = (0,), geometry_dims: Iterable[int] = DEFAULT_DIMS,
                geometry_distributions: Iterable[str] = DEFAULT_DISTRIBUTIONS) -> tuple[SectionSpec, ...]:
    """The W&B report as data: sections in the order of the local report, each panel with its keys and source.

    `layers`: the recurrent layers whose per-layer keys get panels (default the first); `geometry_dims` and
    `geometry_distributions`: those of the geometry stage (its angle histograms are logged per distribution and D).
    """
    layers = tuple(layers)
    hist_keys = [f"geometry/angle_hist/{d}_D{D}" for d in geometry_distributions for D in geometry_dims]
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


# ------------------------------------------------------------------------------------- reading an offline run

_BLOCK = 32768
_HEADER = 7  # record header: crc32 (uint32), length (uint16), type (uint8), little-endian
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_CRC_SEED = {t: zlib.crc32(bytes((t,))) for t in (_FULL, _FIRST, _MIDDLE, _LAST)}


def read_records(path: str | Path) -> Iterator[Any]:
    """The `wandb.proto` Records of a `run-*.wandb` transaction log, in order.

    The file is LevelDB's log format with a 7-byte W&B header (':W&B', magic 0xBEE1, version 0): 32 KiB blocks of
    records, each a crc32 (of type byte + data), a length and a type (full, or first/middle/last pieces of one
    payload); a block's tail shorter than a record header is zero padding. wandb >= 0.2x writes it from wandb-core
    and no longer ships a Python reader (the old `wandb.sdk.internal.datastore`), so this is one. A torn last record
    (a run still writing, or killed) ends the scan; a bad checksum raises ValueError.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER]) if len(data) >= _HEADER else (b"", 0, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(f"{path}: not a wandb transaction log (header {data[:_HEADER]!r})")
    pos, pending = _HEADER, None
    while True:
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer: padding
            pos += left
            continue
        if pos + _HEADER > len(data):
            return
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if kind == 0 and length == 0:  # zero-filled rest of a block (preallocated or padded)
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        if len(chunk) < length or kind not in _CRC_SEED:
            return  # torn write at the end
        if zlib.crc32(chunk, _CRC_SEED[kind]) != crc:
            raise ValueError(f"{path}: bad checksum in the record at byte {pos}")
        pos += _HEADER + length
        if kind == _FULL:
            payload = chunk
        elif kind == _FIRST:
            pending = chunk
            continue
        elif pending is None:
            raise ValueError(f"{path}: record piece without its first piece at byte {pos}")
        elif kind == _MIDDLE:
            pending += chunk
            continue
        else:
            payload, pending = pending + chunk, None
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


@dataclass
class OfflineRun:
    """What an offline run holds: its identity, config, and every key it logged (history, summary, charts)."""

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # key -> value type: "number", "image-file", ...

    @property
    def kind(self) -> str | None:
        return run_kind(self.path)


def _item_key(item: Any) -> tuple[str, str | None]:
    """(top-level key, sub-key) of a history/summary/config item; wandb-core flattens a logged media dict into
    items with nested_key [key, field]."""
    if item.key:
        return item.key, None
    nested = list(item.nested_key)
    return (nested[0] if nested else ""), ("/".join(nested[1:]) or None)


def _value_type(value_json: str) -> str:
    try:
        value = json.loads(value_json)
    except ValueError:
        return "unknown"
    if isinstance(value, dict):
        return str(value.get("_type", "dict"))
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _json_str(value_json: str) -> str:
    try:
        return str(json.loads(value_json))
    except ValueError:
        return "unknown"


def read_offline_run(folder: str | Path) -> OfflineRun:
    """Read an `offline-run-*` folder's `run-*.wandb`: run id, name, project, config and the logged keys.

    Keys come from history and summary records (a media value's `_type` gives its type: "image-file",
    "table-file", "histogram"...) and from the custom charts of `wandb.plot.*` (config `_wandb.visualize`: type
    "custom-chart"). wandb's own keys (`_step`, `_runtime`, `_timestamp`, `_wandb`) are left out.
    """
    folder = Path(folder)
    logs = sorted(folder.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"{folder}: no run-*.wandb file (not an offline wandb run folder)")
    run = OfflineRun(folder)
    for record in read_records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name, run.project = record.run.run_id, record.run.display_name, record.run.project
            _read_config(run, record.run.config.update)
        elif kind == "config":
            _read_config(run, record.config.update)
        elif kind in ("history", "summary"):
            items = record.history.item if kind == "history" else record.summary.update
            for item in items:
                key, sub = _item_key(item)
                if not key or key.startswith("_"):
                    continue
                if sub is None:
                    run.keys.setdefault(key, _value_type(item.value_json))
                elif sub == "_type":
                    run.keys[key] = _json_str(item.value_json)
                else:
                    run.keys.setdefault(key, "dict")
    return run


def _read_config(run: OfflineRun, items: Iterable[Any]) -> None:
    for item in items:
        nested = [item.key] if item.key else list(item.nested_key)
        if not nested:
            continue
        try:
            value = json.loads(item.value_json)
        except ValueError:
            continue
        if nested[0] == "_wandb":  # custom charts: _wandb.visualize.<key> = {panel_type, panel_config}
            charts: Any = {}
            if len(nested) == 1 and isinstance(value, dict):
                charts = value.get("visualize", {})
            elif nested[1] == "visualize":
                charts = value if len(nested) == 2 else {nested[2]: value}
            for key in charts if isinstance(charts, dict) else ():
                run.keys[key] = "custom-chart"
            continue
        target = run.config
        for part in nested[:-1]:
            target = target.setdefault(part, {})
        target[nested[-1]] = value


def logged_keys(folder: str | Path) -> set[str]:
    """The set of keys an offline run logged (see read_offline_run)."""
    return set(read_offline_run(folder).keys)


# ------------------------------------------------------------------------------ the report, as wandb objects

REPORT_TITLE = "gradlab: vanishing and exploding gradients in recurrent networks"
REPORT_DESCRIPTION = ("Training runs, BPTT probes, checkpoint analysis and the high-dimensional geometry reference "
                      "of the gradlab study (synced from the offline wandb runs by `make wandb-report`).")


def _panel(p: PanelSpec, wr: Any) -> Any:
    title = p.title
    if p.kind == "line":
        return wr.LinePlot(title=title, x=p.x or STEP, y=list(p.keys), log_y=p.log_y or None)
    if p.kind == "histogram":
        return wr.LinePlot(title=title, y=list(p.keys))
    if p.kind == "bar":
        return wr.BarPlot(title=title, metrics=list(p.keys))
    if p.kind == "media":
        return wr.MediaBrowser(title=title, media_keys=list(p.keys), num_columns=len(p.keys))
    if p.kind == "table":
        return wr.WeavePanelSummaryTable(table_name=p.keys[0])
    if p.kind == "line_series":  # what wandb.plot.line_series logs: a table and the lineseries custom chart on it
        return wr.CustomChart(query={"summaryTable": {"tableKey": f"{p.keys[0]}_table"}},
                              chart_name="wandb/lineseries/v0",
                              chart_fields={"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
                              chart_strings={"title": title, "xname": p.x or "x"})
    raise ValueError(f"unknown panel kind {p.kind!r}")


def _place(panels: list[tuple[PanelSpec, Any]], wr: Any) -> list[Any]:
    """Rows of 24 grid units, left to right, in the spec's order."""
    x = y = row_h = 0
    placed = []
    for spec, panel in panels:
        w, h = LAYOUT[spec.kind]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        panel.layout = wr.Layout(x=x, y=y, w=w, h=h)
        placed.append(panel)
        x, row_h = x + w, max(row_h, h)
    return placed


def build_blocks(spec: Iterable[SectionSpec], project: str, entity: str, sources: Iterable[str] | None = None
                 ) -> list[Any]:
    """The report's blocks: a table of contents, then per section an H1, a paragraph and a panel grid per source.

    `sources`: the run kinds that exist (sections and grids of other kinds are left out); None: all.
    """
    import wandb_workspaces.reports.v2 as wr

    wanted = set(RUN_KINDS if sources is None else sources)
    blocks: list[Any] = [wr.TableOfContents()]
    for section in spec:
        by_source: dict[str, list[tuple[PanelSpec, Any]]] = {}
        for p in section.panels:
            if p.source in wanted:
                by_source.setdefault(p.source, []).append((p, _panel(p, wr)))
        if not by_source:
            continue
        blocks += [wr.H1(section.title), wr.P(section.text)]
        for source, panels in by_source.items():
            runset = wr.Runset(entity=entity, project=project, name=f"{source} runs",
                               filters=RUNSET_FILTERS.get(source, ""))
            blocks.append(wr.PanelGrid(runsets=[runset], panels=_place(panels, wr)))
    return blocks


def build_report(spec: Iterable[SectionSpec], project: str, entity: str, sources: Iterable[str] | None = None,
                 title: str = REPORT_TITLE, description: str = REPORT_DESCRIPTION) -> Any:
    """The `wandb_workspaces.reports.v2.Report` of the spec (constructed offline; `save_report` uploads it)."""
    import wandb_workspaces.reports.v2 as wr

    return wr.Report(project=project, entity=entity, title=title, description=description,
                     blocks=build_blocks(spec, project, entity, sources), width="fluid")


def save_report(report: Any) -> str:
    """Upload the report (network: W&B's GraphQL API); returns its URL."""
    report.save()
    return str(report.url)


def default_entity() -> str:
    """The logged-in user's default entity (network)."""
    import wandb

    entity = wandb.Api().default_entity
    if not entity:
        raise RuntimeError("W&B returned no default entity for this API key; pass --entity")
    return str(entity)


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
