"""The `logger` config group: where a run's W&B run goes (offline by default), light to import."""

from __future__ import annotations

from dataclasses import dataclass

from gradlab.core.choices import LoggerMode


@dataclass
class LoggerConfig:
    mode: LoggerMode = LoggerMode.offline
    project: str = "gradlab"
    entity: str | None = None
