"""Pascanu, Mikolov and Bengio's cliff (2013, Section 3 and Fig. 6; docs/theory.md): why gradients need clipping.

One sigmoid unit, x_t = w·σ(x_{t−1}) + b, x_0 = 0.5, T = 50, loss ℓ = (σ(x_T) − 0.7)². Over (w, b) the loss is
flat almost everywhere, with narrow walls along the saddle-node bifurcation of the map (where a second fixed point
appears), on which ‖∇ℓ‖ is orders of magnitude larger than beside them: an SGD step taken there throws the
parameters far away, and norm clipping keeps it small.

The gradient is forward-mode by hand: ∂x_t/∂w = σ(x_{t−1}) + w·σ'(x_{t−1})·∂x_{t−1}/∂w and ∂x_t/∂b = 1 +
w·σ'(x_{t−1})·∂x_{t−1}/∂b, vectorised over any grid of (w, b) in float64 (tests hold it to autograd and to finite
differences on the wall). A regular grid can step over a wall, so the largest gradient along a slice is found by
refining around the grid's maximum, and the maps are drawn on a log scale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gradlab.core.figures import plt, save


def _f64(x: float | Tensor) -> Tensor:
    """A float64 tensor; never through torch.tensor(float), which would round to float32 (2e-7 steps near w=5, as
    wide as the wall's finest structure)."""
    return torch.as_tensor(x, dtype=torch.float64)


@dataclass(frozen=True)
class Cliff:
    T: int = 50
    x0: float = 0.5
    target: float = 0.7

    def loss_and_grad(self, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ℓ, ∂ℓ/∂w, ∂ℓ/∂b at every (w, b) (tensors of one shape, float64)."""
        if any(isinstance(v, Tensor) and v.dtype != torch.float64 for v in (w, b)):
            raise TypeError("the cliff is computed in float64: pass float64 tensors or Python floats")
        w, b = torch.broadcast_tensors(_f64(w), _f64(b))
        x = torch.full_like(w, self.x0)
        dw, db = torch.zeros_like(w), torch.zeros_like(w)
        for _ in range(self.T):
            s = torch.sigmoid(x)
            ds = s * (1 - s)
            dw, db = s + w * ds * dw, 1 + w * ds * db
            x = w * s + b
        out = torch.sigmoid(x)
        err = out - self.target
        dl_dx = 2 * err * out * (1 - out)
        return err * err, dl_dx * dw, dl_dx * db

    def grad_norm(self, w: Tensor, b: Tensor) -> Tensor:
        _, gw, gb = self.loss_and_grad(w, b)
        return torch.hypot(gw, gb)

    def surface(self, w_range: tuple[float, float], b_range: tuple[float, float], n_w: int = 281,
                n_b: int = 161) -> pd.DataFrame:
        """ℓ and ‖∇ℓ‖ on a regular (w, b) grid: columns w, b, loss, grad_norm."""
        w = torch.linspace(*w_range, n_w, dtype=torch.float64)
        b = torch.linspace(*b_range, n_b, dtype=torch.float64)
        W, B = torch.meshgrid(w, b, indexing="ij")
        loss, gw, gb = self.loss_and_grad(W, B)
        return pd.DataFrame({"w": W.flatten(), "b": B.flatten(), "loss": loss.flatten(),
                             "grad_norm": torch.hypot(gw, gb).flatten()})

    def slice_max(self, b: float, w_range: tuple[float, float], n: int = 2001, rounds: int = 8) -> dict[str, float]:
        """The largest ‖∇ℓ‖ along the slice b = const, w in w_range, and where it lies: the grid's maximum, then
        `rounds` times a grid of n points over the two cells beside the current maximum (each round narrows the
        bracket n/2-fold). Also the median over the first grid: how high the wall stands above the plain."""
        lo, hi = w_range
        w = torch.linspace(lo, hi, n, dtype=torch.float64)
        g = self.grad_norm(w, _f64(b))
        median = float(g.median())
        for _ in range(rounds):
            i = int(g.argmax())
            lo, hi = float(w[max(i - 1, 0)]), float(w[min(i + 1, n - 1)])
            w = torch.linspace(lo, hi, n, dtype=torch.float64)
            g = self.grad_norm(w, _f64(b))
        i = int(g.argmax())
        loss, _, _ = self.loss_and_grad(w[i], _f64(b))
        return {"b": b, "w_at_max": float(w[i]), "grad_norm_max": float(g[i]), "loss_at_max": float(loss),
                "grad_norm_median": median, "bracket": hi - lo}

    def sgd(self, start: tuple[float, float], lr: float, steps: int, clip: float | None = None) -> pd.DataFrame:
        """Plain SGD on (w, b) from `start`; with `clip`, the gradient is rescaled to norm `clip` when longer (norm
        clipping as in the paper). Columns: step, w, b, loss, grad_norm (before clipping), clipped."""
        w, b = start
        rows = []
        for step in range(steps + 1):
            loss, gw, gb = (float(v) for v in self.loss_and_grad(_f64(w), _f64(b)))
            norm = float(torch.hypot(_f64(gw), _f64(gb)))
            clipped = clip is not None and norm > clip
            rows.append({"step": step, "w": w, "b": b, "loss": loss, "grad_norm": norm, "clipped": clipped})
            if step == steps:
                break
            scale = clip / norm if clipped else 1.0
            w, b = w - lr * scale * gw, b - lr * scale * gb
        return pd.DataFrame(rows)


def figure(surface: pd.DataFrame, trajectories: pd.DataFrame, walls: pd.DataFrame, title: str, path: Path) -> Path:
    """log10 ‖∇ℓ‖ over (w, b), with SGD trajectories (one line per `run`) drawn on it, clipped to the map's extent
    (an unclipped step off the wall leaves it), and the walls' resolved maxima (`walls`: b, w_at_max,
    grad_norm_max), which the grid's cells are too coarse to show."""
    table = surface.pivot(index="b", columns="w", values="grad_norm").sort_index()
    w, b = table.columns.to_numpy(), table.index.to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mesh = ax.pcolormesh(w, b, np.log10(table.to_numpy() + 1e-300), shading="auto", cmap="magma")
    fig.colorbar(mesh, ax=ax, label="log10 ‖∇ℓ‖")
    for run, sel in trajectories.groupby("run", sort=False):
        inside = sel[(sel.w >= w.min()) & (sel.w <= w.max()) & (sel.b >= b.min()) & (sel.b <= b.max())]
        left = len(inside) < len(sel)
        ax.plot(inside.w, inside.b, marker=".", ms=3, lw=1,
                label=f"{run}" + (" (thrown off the map)" if left else ""))
    ax.scatter(walls.w_at_max, walls.b, marker="x", color="w", s=30, zorder=3,
               label=f"wall, resolved: ‖∇ℓ‖ up to {walls.grad_norm_max.max():.2g}")
    ax.set(xlim=(w.min(), w.max()), ylim=(b.min(), b.max()), xlabel="w", ylabel="b", title=title)
    ax.legend(fontsize=8, loc="lower left")
    return save(fig, path)
