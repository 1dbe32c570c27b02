"""W&B online, from the study's offline runs: where they are, whether there is an API key and a server that answers
(through the proxy wandb would use, bounded in time), and `wandb sync` over them. Reads nothing from the network but
the reachability check; imports nothing that writes (no Lightning), so `make sync` offline changes nothing. wandb is
asked through its public interfaces only, each in a child process: `wandb status` (the server), `wandb.login(prompt=
False, verify=False)` (the credentials) and `wandb sync`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# Where the study's wandb directories are, relative to the repository root: training (one offline run per start of a
# run), the analysis of each run, and every result stage's (summary, geometry, cliff, ...: the stage's folder name is
# the run's kind). `make view` lists these directories' runs and `make sync` uploads them: one list for both.
WANDB_DIRS: dict[str, str] = {"train": "runs/*/wandb", "analysis": "runs/*/analysis/wandb", "stage": "results/*/wandb"}


# the kinds in the order messages name them (a result stage not named here comes after them)
RUN_KINDS = ("train", "analysis", "geometry", "memory", "summary", "cliff")


def kind_order(kind: str) -> tuple[int, str]:
    return (RUN_KINDS.index(kind) if kind in RUN_KINDS else len(RUN_KINDS), kind)


def find_offline_runs(root: str | Path = ".") -> list[tuple[str, Path]]:
    """(kind, folder) of every offline wandb run of the study under root, by kind, oldest first within a kind.

    Only folders with a `run-*.wandb` log count (wandb's `latest-run` symlink is skipped).
    """
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for pattern in WANDB_DIRS.values():
        for folder in sorted(root.glob(f"{pattern}/offline-run-*")):
            if folder.is_dir() and not folder.is_symlink() and any(folder.glob("run-*.wandb")):
                found.append((run_kind(folder) or "", folder))
    return sorted(found, key=lambda kf: kind_order(kf[0]))


def run_kind(folder: str | Path) -> str | None:
    """The kind of an offline-run folder from where it lies (train, analysis, or the result stage's name: geometry,
    summary, cliff, ...), else None."""
    parts = Path(folder).resolve().parts
    if len(parts) < 4 or parts[-2] != "wandb":
        return None
    if parts[-3] == "analysis" and len(parts) >= 6 and parts[-5] == "runs":
        return "analysis"
    if parts[-4] in ("runs", "results"):
        return "train" if parts[-4] == "runs" else parts[-3]
    return None


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


def _wandb(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """The installed wandb in a child process, quiet, with WANDB_MODE unset (offline mode makes `wandb.login` a no-op
    that finds nothing) and without this process's wandb service: whatever wandb keeps in a process while it looks
    (its login session) stays out of this one."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_SERVICE")} | {"WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)


def wandb_base_url() -> str:
    """The server wandb would talk to: WANDB_BASE_URL, else what `wandb status` (wandb's public CLI: its resolved
    settings as JSON, the settings files of `wandb login --host` included) says, else the installed wandb's default."""
    if url := os.environ.get("WANDB_BASE_URL"):
        return url.rstrip("/")
    out = _wandb(["-m", "wandb", "status"]).stdout
    try:
        return str(json.loads(out[out.index("{"):])["base_url"]).rstrip("/")
    except (ValueError, KeyError, TypeError):  # no JSON: wandb's own default
        import wandb

        return str(wandb.Settings().base_url).rstrip("/")


# wandb.login (public): the lookup `wandb login` and `wandb.Api()` make (WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, the
# settings files, the .netrc entry for the host), with no prompt, no verification over the network, and no key saved.
_LOGIN = """import json, wandb
try:
    print(json.dumps({"found": wandb.login(prompt=False, verify=False)}))
except (wandb.errors.AuthenticationError, wandb.errors.UsageError) as err:
    print(json.dumps({"unusable": str(err)}))
"""


def find_credentials(base_url: str) -> tuple[str | None, str | None]:
    """(where the credentials for base_url come from, or None; an error if they exist but are unusable), as
    `wandb.login(prompt=False, verify=False)` finds them in a child process (`_wandb`). Reads no network and writes
    nothing. A wandb whose login fails otherwise (an API gradlab does not know) is an error naming its version."""
    done = _wandb(["-c", _LOGIN])
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        from importlib.metadata import version

        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"wandb {version('wandb')}'s wandb.login(prompt=False, verify=False) failed ({last}); "
                           f"gradlab is tested with the wandb range pyproject.toml pins") from None
    if "unusable" in answer:
        return None, answer["unusable"]
    if not answer["found"]:
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
    `gradlab.tracking.loggers.wandb_reachable`; here because this module must not import Lightning.)"""
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
