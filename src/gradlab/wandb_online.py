"""W&B online, from the study's offline runs: where they are, whether there is an API key and a server that answers
(through the proxy wandb would use, bounded in time), and `wandb sync` over them. Reads nothing from the network but
the reachability check; imports nothing that writes (no Lightning), so `make sync` offline changes nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
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
