"""Figures written atomically (matplotlib, Agg backend: no display needed): the one writer every figure goes through."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gradlab.core.runfolder import atomic_write_bytes  # noqa: E402


def save(fig: plt.Figure, path: Path) -> Path:
    """PNG via a temporary file and rename, so a killed run never leaves a half-written image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
