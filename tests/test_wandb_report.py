"""make sync / make wandb-report, without a network: the report's keys against what real offline runs logged, the
offline path (a clear message, exit 2, nothing changed on disk), and the report's wandb_workspaces objects."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg

from gradlab.report import wandb_blocks as blocks
from gradlab.report import wandb_panels as panels
from gradlab.tracking import wandb_log as wlog
from gradlab.tracking import wandb_online as online

SMALL = ("profile=smoke", "task.seq_len=10", "trainer.max_steps=6", "probe.every_n_steps=3", "logger.mode=offline")
DIMS, DISTRIBUTIONS = (2, 10), ("cube",)
CLOSED = "http://127.0.0.1:9"  # a closed loopback port: refused at once, never the internet


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A tiny study made by the real pipeline, in-process: lstm (adding) and rnn (first_token) training runs, the
    analysis of both, the geometry stage; every wandb run offline. Returns its root (runs/, results/)."""
    from gradlab.launch.cli import load
    from gradlab.stages import analyze, geometry
    from gradlab.stages.train import run_training

    root = tmp_path_factory.mktemp("study")
    for overrides in (["model=lstm"], ["model=rnn", "task=first_token"]):
        cfg = compose_cfg([*SMALL, *overrides], root)
        run_training(cfg)
        analyze.run(cfg)
    geometry.run(load("geometry", [f"geometry.dims=[{DIMS[0]},{DIMS[1]}]", "geometry.n_pairs=200",
                                   f"geometry.distributions=[{DISTRIBUTIONS[0]}]", "geometry.mc_samples=1000",
                                   "logger.mode=offline", f"out_dir={root / 'results' / 'geometry'}"]))
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root (files, folders, links) with its type, size and mtime, not following links."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            st = p.lstat()
            seen[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return seen


def load_cli():
    spec = importlib.util.spec_from_file_location("wandb_report_cli", ROOT / "pipelines" / "wandb_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_login(tmp_path, monkeypatch):
    """No API key anywhere (empty HOME, no WANDB_API_KEY/.netrc), and a server that refuses connections."""
    home = tmp_path / "home"
    home.mkdir()
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC", "WANDB_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_BASE_URL", CLOSED)
    return home


# ------------------------------------------------------------------ the spec against what the pipeline logged


def test_every_panel_key_is_logged_by_the_run_kind_it_reads(study):
    runs = online.find_offline_runs(study)
    assert sorted({kind for kind, _ in runs}) == ["analysis", "geometry", "train"]
    assert len(runs) == 5  # 2 train, 2 analysis, 1 geometry; wandb's latest-run links are not counted twice
    spec = panels.report_spec(layers=(0,), geometry_dims=DIMS, geometry_distributions=DISTRIBUTIONS)
    checked: dict[str, set[str]] = {}
    for kind, folder in runs:
        run = wlog.read_offline_run(folder)  # the keys come from the run's .wandb log, not from a list
        assert run.kind == kind and run.project == "gradlab" and run.run_id in folder.name
        assert run.keys.get("train/loss" if kind == "train" else "trainer/global_step") == "number"
        assert panels.missing_keys(spec, run) == {}, f"{kind} run {folder}"
        checked.setdefault(kind, set()).update(panels.spec_keys(spec, kind, run.config))
    for kind in ("train", "analysis", "geometry"):  # every conditional panel met a run it applies to
        assert checked[kind] == set(panels.spec_keys(spec, kind)), kind
    # the summary stage's run is made by the smoke study (test_study.py checks its keys); here: what it must log
    assert panels.spec_keys(spec, "summary") == {"summary/table": "table-file"}
    # a second layer's panels are asked only of runs with two or more layers
    deep = panels.report_spec(layers=(0, 1), geometry_dims=DIMS, geometry_distributions=DISTRIBUTIONS)
    config = wlog.read_offline_run(next(f for kind, f in runs if kind == "train")).config
    assert not any(k.endswith("_l1") for k in panels.spec_keys(deep, "train", config))
    config["model"]["num_layers"] = 2
    assert "bptt/bptt_dL_dh_norm_l1" in panels.spec_keys(deep, "train", config)


def test_the_key_check_sees_what_is_missing(study):
    (folder,) = [f for kind, f in online.find_offline_runs(study) if kind == "geometry"]
    run = wlog.read_offline_run(folder)
    spec = panels.report_spec(geometry_dims=(2, 10, 100), geometry_distributions=DISTRIBUTIONS)
    assert panels.missing_keys(spec, run) == {"geometry/angle_hist/cube_D100": "expected histogram, logged nothing"}
    run.keys["geometry/angle_histograms"] = "table-file"
    assert "geometry/angle_histograms" in panels.missing_keys(spec, run)
    assert panels.geometry_grid(study) == (DIMS, DISTRIBUTIONS)  # read back from the geometry run's config
    (train, *_) = [f for kind, f in online.find_offline_runs(study) if kind == "train"]
    unprobed = wlog.read_offline_run(train)
    unprobed.config["probe"]["enabled"] = False  # a run without the probe is not asked for bptt/* keys
    assert not any(k.startswith(("bptt/", "final/bptt")) for k in panels.spec_keys(spec, "train", unprobed.config))


def test_reader_stops_at_a_torn_end_and_refuses_a_corrupt_record(study, tmp_path):
    (folder,) = [f for kind, f in online.find_offline_runs(study) if kind == "geometry"]
    (log,) = folder.glob("run-*.wandb")
    data = log.read_bytes()
    n = sum(1 for _ in wlog.read_records(log))
    torn = tmp_path / "torn.wandb"
    torn.write_bytes(data[: len(data) - 50])
    assert 0 < sum(1 for _ in wlog.read_records(torn)) < n
    corrupt = tmp_path / "corrupt.wandb"
    corrupt.write_bytes(data[:200] + bytes([data[200] ^ 0xFF]) + data[201:])
    with pytest.raises(ValueError, match="checksum"):
        list(wlog.read_records(corrupt))
    with pytest.raises(ValueError, match="not a wandb transaction log"):
        list(wlog.read_records(ROOT / "pyproject.toml"))


def with_header(log: Path, to: Path, min_consumer: bytes) -> Path:
    """A copy of a .wandb log whose header record names another min_consumer of the same length (its checksum
    recomputed: the record is well formed, only its format version is one the reader has not seen)."""
    import struct
    import zlib

    data = bytearray(log.read_bytes())
    crc, length, kind = struct.unpack("<IHB", data[7:14])
    payload = bytes(data[14:14 + length])
    assert kind == 1 and payload.count(b"0.70.0") == 1 and len(min_consumer) == 6
    payload = payload.replace(b"0.70.0", min_consumer)
    data[7:14 + length] = struct.pack("<IHB", zlib.crc32(payload, zlib.crc32(b"\x01")), length, kind) + payload
    to.write_bytes(bytes(data))
    return to


def test_reader_refuses_a_log_format_it_does_not_know(study, tmp_path):
    """The header's version_info names the format; one the reader does not know is refused in one line naming the
    version, not misread. The logs this wandb writes are the known one."""
    (folder,) = [f for kind, f in online.find_offline_runs(study) if kind == "geometry"]
    (log,) = folder.glob("run-*.wandb")
    header = next(wlog.read_records(log)).header.version_info
    assert header.min_consumer in wlog.KNOWN_FORMATS and header.producer.startswith("0.31.")
    same = with_header(log, tmp_path / "same.wandb", b"0.70.0")
    assert sum(1 for _ in wlog.read_records(same)) == sum(1 for _ in wlog.read_records(log))
    newer = with_header(log, tmp_path / "newer.wandb", b"0.99.0")
    with pytest.raises(ValueError) as refused:
        list(wlog.read_records(newer))
    message = str(refused.value)
    assert "\n" not in message and f"written by wandb {header.producer}" in message
    assert "readers >= 0.99.0" in message and "it reads 0.70.0" in message


def test_make_view_lists_exactly_the_runs_make_sync_uploads(smoke_study):
    """Every wandb run `make view` shows is one `make sync` uploads, and no other: on the smoke study, whose result
    stages (summary, geometry, cliff) log runs beside the training and analysis runs."""
    from gradlab.tracking import view

    shown = {r.source.resolve() for r in view.find_runs(smoke_study)}
    synced = {folder.resolve() for _, folder in online.find_offline_runs(smoke_study)}
    assert shown == synced
    kinds = {kind for kind, _ in online.find_offline_runs(smoke_study)}
    assert kinds == {"train", "analysis", "summary", "geometry", "memory", "cliff"}, kinds


def test_the_credential_check_is_wandbs_public_login(no_login, monkeypatch):
    """wandb.login(prompt=False, verify=False), in a child: a key in the environment counts, a malformed one is named
    as unusable, and a wandb whose login fails otherwise (an interface gradlab does not know) is not mistaken for a
    bad key."""
    assert online.find_credentials(CLOSED) == (None, None)
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")  # offline mode would make wandb.login find nothing: the child unsets it
    assert online.find_credentials(CLOSED) == ("WANDB_API_KEY", None)
    monkeypatch.setenv("WANDB_API_KEY", "short")
    found, error = online.find_credentials(CLOSED)
    assert found is None and "API key must have 40+ characters" in error
    assert "unusable: WANDB_API_KEY invalid" in online.offline_message(online.online_status(0.5), "sync")
    monkeypatch.setattr(online, "_LOGIN", "import wandb; wandb.login(update_session=False)")
    with pytest.raises(RuntimeError, match=r"^wandb 0\.31\.\d+'s wandb.login\(prompt=False, verify=False\) failed "
                                           r"\(TypeError: .*update_session"):
        online.find_credentials(CLOSED)
    assert list(no_login.iterdir()) == []  # nothing written into HOME (no settings, no logs, no key saved)


def test_make_sync_with_a_wandb_it_does_not_know_is_one_line(study, no_login, monkeypatch, capsys):
    """The same failing login through `make sync`'s entry point: exit 1 and one line naming wandb's version, no
    traceback, nothing synced."""
    monkeypatch.setattr(online, "_LOGIN", "import wandb; wandb.login(update_session=False)")
    before = snapshot(study)
    assert load_cli().main(["--sync-only", "--root", str(study)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: wandb 0.31.") and err[0].endswith("; nothing was synced")
    assert snapshot(study) == before


def test_run_kinds_from_paths(tmp_path):
    assert online.run_kind("runs/adding-T50-rnn-none-s0/wandb/offline-run-1-a") == "train"
    assert online.run_kind("runs/adding-T50-rnn-none-s0/analysis/wandb/offline-run-1-a") == "analysis"
    assert online.run_kind("results/geometry/wandb/offline-run-1-a") == "geometry"
    assert online.run_kind("results/summary/wandb/offline-run-1-a") == "summary"
    assert online.run_kind("results/cliff/wandb/offline-run-1-a") == "cliff"  # a result stage's name is its kind
    assert online.run_kind("elsewhere/offline-run-1-a") is None
    assert online.find_offline_runs(tmp_path) == []


# -------------------------------------------------------------------------------------------- the offline path


def test_offline_entry_point_says_what_to_do_and_changes_nothing(study, tmp_path):
    work = tmp_path / "study"
    shutil.copytree(study / "runs", work / "runs", symlinks=True)
    shutil.copytree(study / "results", work / "results", symlinks=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC", "WANDB_CONFIG_DIR", "WANDB_SERVICE")}
    env.update(HOME=str(home), WANDB_BASE_URL=CLOSED)
    before = snapshot(tmp_path)
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "wandb_report.py")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr
    assert "Traceback" not in message and done.stdout == ""
    assert "nothing was synced, written or changed" in message
    assert "no W&B API key" in message and "127.0.0.1:9" in message
    for step in ("wandb login", "make sync", "make wandb-report"):
        assert step in message
    assert snapshot(tmp_path) == before  # no file written, touched or synced (.wandb.synced), HOME untouched


def test_sync_only_offline_runs_no_sync(study, no_login, monkeypatch, capsys):
    cli = load_cli()
    ran, real_run = [], subprocess.run

    def run(cmd, *args, **kwargs):  # the credential check's child runs; a `wandb sync` is recorded, not run
        if "sync" in cmd:
            return ran.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    before = snapshot(study)
    from gradlab.stages.wandb_report import EXIT_OFFLINE

    assert cli.main(["--sync-only", "--root", str(study)]) == EXIT_OFFLINE
    assert ran == [] and snapshot(study) == before
    err = capsys.readouterr().err
    assert "make sync needs W&B online" in err and "wandb login" in err


def test_api_key_in_netrc_counts_but_the_server_must_answer(no_login):
    (no_login / ".netrc").write_text("machine 127.0.0.1:9\n  login user\n  password " + "a" * 40 + "\n")
    (no_login / ".netrc").chmod(0o600)
    status = online.online_status()
    assert status.credentials == str(no_login / ".netrc") and status.unreachable and not status.online
    message = online.offline_message(status, "sync")
    assert "API key: found" in message and "get online" in message and "wandb login" not in message


@pytest.fixture
def refusing_server():
    """A local HTTP server that answers every W&B API call with 404 "entity not found" (as W&B does for an
    unknown entity); yields (url, the request bodies it got)."""
    import http.server
    import threading

    bodies: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode(errors="replace"))
            body = b'{"data": null, "errors": [{"message": "entity not found"}]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()


def test_a_sync_the_server_refuses_is_an_error(study, tmp_path, refusing_server):
    """The real `wandb sync` over every run of the study, against a server that refuses them: wandb exits 0, the
    runs get no `.wandb.synced` marker, and make sync must say so and exit 1 (not report success)."""
    url, bodies = refusing_server
    work = tmp_path / "study"
    shutil.copytree(study / "runs", work / "runs", symlinks=True)
    shutil.copytree(study / "results", work / "results", symlinks=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", "NETRC", "WANDB_CONFIG_DIR")}
    env.update(HOME=str(home), WANDB_BASE_URL=url, WANDB_API_KEY="a" * 40, WANDB_MODE="offline")
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "wandb_report.py"), "--sync-only",
                           "--entity", "nobody-here"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "syncing 5 offline runs (train, analysis, geometry)" in done.stdout
    assert "error: wandb sync did not upload 5 of 5 runs to nobody-here/gradlab" in done.stderr
    assert "synced:" not in done.stdout
    # the upload was tried (an offline WANDB_MODE did not turn it into a no-op), as the entity it was given
    assert any("nobody-here" in b for b in bodies), bodies[:3]
    runs = [f for _, f in online.find_offline_runs(work)]
    assert online.unsynced(runs) == runs


def test_check_names_an_unreadable_log_and_checks_the_rest(study, tmp_path, capsys):
    work = tmp_path / "study"
    shutil.copytree(study / "runs", work / "runs", symlinks=True)
    shutil.copytree(study / "results", work / "results", symlinks=True)
    (geometry,) = [f for kind, f in online.find_offline_runs(work) if kind == "geometry"]
    (log,) = geometry.glob("run-*.wandb")
    data = log.read_bytes()
    log.write_bytes(data[:200] + bytes([data[200] ^ 0xFF]) + data[201:])
    from gradlab.stages import wandb_report

    assert wandb_report.check(work) == 1
    out = capsys.readouterr().out
    assert f"geometry  {geometry}: unreadable (" in out and "bad checksum" in out
    assert out.count(": ok") == 4  # the train and analysis runs are still checked


def test_reader_reassembles_records_split_across_blocks(tmp_path):
    """A log of more than one 32 KiB block, with a record larger than a block (first/middle/last pieces)."""
    script = "\n".join(["import sys, wandb",
                          "run = wandb.init(mode='offline', dir=sys.argv[1], project='gradlab')",
                          "for i in range(3000):",
                          "    run.log({'x': i, 'y': i / 3})",
                          "run.summary['big'] = 'z' * 100000",
                          "run.finish()"])
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=True, capture_output=True, timeout=300)
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    (log,) = folder.glob("run-*.wandb")
    assert log.stat().st_size > 4 * 32768
    records = list(wlog.read_records(log))
    assert sum(r.WhichOneof("record_type") == "history" for r in records) == 3000
    run = wlog.read_offline_run(folder)
    assert run.project == "gradlab" and run.keys == {"x": "number", "y": "number", "big": "string"}


# ------------------------------------------------------------------------------ the wandb_workspaces objects


def test_builder_makes_the_report_objects_offline(no_login):
    import wandb_workspaces.reports.v2 as wr
    spec = panels.report_spec(layers=(0, 1), geometry_dims=DIMS, geometry_distributions=DISTRIBUTIONS)
    report = blocks.build_report(spec, "gradlab", "an-entity")  # an explicit entity: no API call
    assert isinstance(report, wr.Report) and report.project == "gradlab" and report.entity == "an-entity"
    assert isinstance(report.blocks[0], wr.TableOfContents)
    assert [b.text for b in report.blocks if isinstance(b, wr.H1)] == [s.title for s in spec]
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert sum(len(g.panels) for g in grids) == sum(len(s.panels) for s in spec)
    kinds = {wr.LinePlot: {"line", "histogram"}, wr.BarPlot: {"bar"}, wr.MediaBrowser: {"media"},
             wr.WeavePanelSummaryTable: {"table"}, wr.CustomChart: {"line_series"}}
    built = [p for g in grids for p in g.panels]
    specs = [p for s in spec for p in s.panels]
    for panel, p in zip(built, specs, strict=True):
        assert p.kind in kinds[type(panel)]
        panel._to_model()  # each panel serializes offline (the runsets need the API: only Report.save does that)
        assert 0 <= panel.layout.x and panel.layout.x + panel.layout.w <= 24
    line = next(p for p in built if isinstance(p, wr.LinePlot) and p.y == ["train/loss", "val/loss"])
    assert line.x == "trainer/global_step" and line.log_y
    chart = next(p for p in built if isinstance(p, wr.CustomChart))
    assert chart.query == {"summaryTable": {"tableKey": "bptt/latest_l0_table"}}
    assert chart.chart_name == "wandb/lineseries/v0"
    for g in grids:
        (runset,) = g.runsets
        assert (runset.entity, runset.project) == ("an-entity", "gradlab")
    analysis = [g.runsets[0] for g in grids if g.runsets[0].name == "analysis runs"]
    assert analysis and all(r.filters == panels.RUNSET_FILTERS["analysis"] for r in analysis)
    # only the kinds of run that exist: no summary stage yet -> no summary table panel
    partial = blocks.build_report(spec, "gradlab", "an-entity", sources=["train", "analysis", "geometry"])
    assert not any(isinstance(p, wr.WeavePanelSummaryTable) and p.table_name == "summary/table"
                   for b in partial.blocks if isinstance(b, wr.PanelGrid) for p in b.panels)


# ------------------------------------------------------------------ the reachability check: bounded, proxies honoured

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
              "no_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def listening():
    """A loopback port that accepts connections (and answers nothing): a stand-in for a proxy or a server."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_the_check_goes_through_the_proxy_wandb_would_use(no_proxy_env, listening):
    unresolvable = "https://wandb.invalid"  # never looked up: with a proxy set, only the proxy is contacted
    no_proxy_env.setenv("HTTPS_PROXY", listening)
    assert online.proxy_for(unresolvable) == listening
    assert online.server_reachable(unresolvable, timeout=2) is None
    no_proxy_env.setenv("HTTPS_PROXY", CLOSED)
    why = online.server_reachable(unresolvable, timeout=2)
    assert why == f"cannot reach http://127.0.0.1:9 (the proxy for {unresolvable}) (Connection refused)"
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")  # a host NO_PROXY names is reached directly
    assert online.proxy_for(listening) is None and online.server_reachable(listening, timeout=2) is None


def test_the_check_is_bounded_even_when_name_lookup_hangs(no_proxy_env, monkeypatch):
    """getaddrinfo takes no timeout (a resolver that does not answer blocks it for its own ~5 s x retries). A hung
    lookup cannot be made with loopback alone, so here getaddrinfo itself is made to hang."""
    import socket
    import time

    def hang(*args, **kwargs):  # then fail as a resolver does (a None returned made the abandoned thread raise later)
        time.sleep(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    why = online.server_reachable("https://api.wandb.ai", timeout=0.5)
    assert time.monotonic() - started < 2
    assert why == "cannot reach https://api.wandb.ai:443 (no answer within 0.5 s, name lookup included)"


def test_an_unreadable_geometry_run_is_an_error_not_the_default_grid(study, tmp_path):
    """The report's geometry panels follow the run's own dims; a log that does not say them is named, not replaced
    by the defaults (whose panels would show keys the run never logged)."""
    root = tmp_path / "copy"
    src = next(f for kind, f in online.find_offline_runs(study) if kind == "geometry")
    dst = root / src.relative_to(study)
    shutil.copytree(src, dst)
    log = next(dst.glob("run-*.wandb"))
    log.write_bytes(log.read_bytes()[:7])  # the header alone: no config record
    with pytest.raises(ValueError, match="cannot read the geometry run's dims and distributions from its log"):
        panels.geometry_grid(root)
    no_geometry_run = tmp_path / "empty"
    assert panels.geometry_grid(no_geometry_run) == (panels.DEFAULT_DIMS, panels.DEFAULT_DISTRIBUTIONS)
