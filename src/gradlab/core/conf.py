"""Where conf/ is, and a config object as plain data (what config.yaml, checkpoints and wandb keep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def as_dict(cfg: Any) -> dict[str, Any]:
    """A config object as plain data (Enums as their strings): what config.yaml, checkpoints and wandb keep."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
