"""Read an offline wandb run's `run-*.wandb` transaction log (what `wandb sync` uploads): its identity, config and
every key it logged, so that tests and `--check` can hold the report's spec against what the pipeline really logs."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradlab.tracking.wandb_online import run_kind

_BLOCK = 32768


_HEADER = 7  # record header: crc32 (uint32), length (uint16), type (uint8), little-endian


_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


_CRC_SEED = {t: zlib.crc32(bytes((t,))) for t in (_FULL, _FIRST, _MIDDLE, _LAST)}


# The record formats this reader knows: the `min_consumer` of the header record's version_info that the wandb versions
# pyproject.toml pins write (wandb 0.31.0: "0.70.0"). A log that names another is refused, not misread.
KNOWN_FORMATS = ("0.70.0",)


def check_format(path: str | Path, record: Any) -> None:
    """ValueError, in one line naming the version, unless the log's first record is a header whose
    version_info.min_consumer is one this reader knows (KNOWN_FORMATS)."""
    if record.WhichOneof("record_type") != "header" or not record.header.HasField("version_info"):
        raise ValueError(f"{path}: its first record is not a header with version_info (a wandb older than 0.31?); "
                         f"gradlab reads the logs of the wandb pyproject.toml pins")
    info = record.header.version_info
    if info.min_consumer not in KNOWN_FORMATS:
        raise ValueError(f"{path}: written by wandb {info.producer or '(unnamed)'} in a log format for readers >= "
                         f"{info.min_consumer}, which gradlab's reader does not know (it reads "
                         f"{', '.join(KNOWN_FORMATS)}, as the wandb pyproject.toml pins writes: `make venv`)")


def read_records(path: str | Path) -> Iterator[Any]:
    """The `wandb.proto` Records of a `run-*.wandb` transaction log, in order.

    The file is LevelDB's log format with a 7-byte W&B header (':W&B', magic 0xBEE1, version 0): 32 KiB blocks of
    records, each a crc32 (of type byte + data), a length and a type (full, or first/middle/last pieces of one
    payload); a block's tail shorter than a record header is zero padding. wandb >= 0.2x writes it from wandb-core
    and no longer ships a Python reader (the old `wandb.sdk.internal.datastore`), so this is one; its first record,
    the header, must name a format it knows (check_format). A torn last record
    (a run still writing, or killed) ends the scan; a bad checksum raises ValueError.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER]) if len(data) >= _HEADER else (b"", 0, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(f"{path}: not a wandb transaction log (header {data[:_HEADER]!r})")
    pos, pending, first = _HEADER, None, True
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
        if first:
            check_format(path, record)
            first = False
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
