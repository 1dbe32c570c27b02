"""Shared fixtures: compose the real Hydra config and run the real pipeline in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("WANDB_MODE", "offline")  # never the network from tests


def compose_cfg(overrides: list[str], tmp: Path):
    """The config `python pipelines/train.py <overrides>` would run, with data and runs under tmp."""
    from gradlab.cli import load

    return load("config", [f"data_dir={tmp / 'data'}", f"runs_dir={tmp / 'runs'}", *overrides])


@pytest.fixture
def train(tmp_path):
    """Run one training in-process; returns (metrics, run_dir)."""
    from gradlab.stages.train import run_training

    def _train(*overrides: str, tmp: Path = tmp_path):
        cfg = compose_cfg(list(overrides), tmp)
        metrics = run_training(cfg)
        return metrics, tmp / "runs" / cfg.run_name

    return _train


def run_cli(script: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a pipeline entry point as a user would, from `cwd`."""
    # WANDB_SERVICE: wandb runs made in this (pytest) process leave their service's address in os.environ; a
    # child that inherits it logs through the parent's service, and its files may land after it exits.
    base = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / script), *args], cwd=cwd, text=True,
                          capture_output=True, env={**base, **(env or {})}, timeout=600)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
