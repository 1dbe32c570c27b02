"""The angles of the vectors a trained network makes (hidden states, gradients, weight contributions) beside random
vectors of the same dimension (gradlab.theory.geometry)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradlab.theory.geometry import angle_sd_deg, pairs_of, random_pairs


def network_vector_sets(h: Tensor, dL_dh: Tensor, dW_hh: Tensor, max_samples: int = 8) -> dict[str, list[Tensor]]:
    """The sets of vectors a trained network makes, from one probe (h, dL_dh: (T, B, H); dW_hh: (T, rows, H)):

    - hidden_across_samples: h_{T-1} of every sample (B vectors in H dims)
    - hidden_across_time:    h_t, t = 0..T-1, of one sample (T vectors; one set per sample, up to max_samples)
    - grad_h_across_time:    ∂ℓ/∂h_t over t for one sample (likewise)
    - dW_hh_across_time:     the per-step contributions (∂L/∂W_hh)^(t), flattened (T vectors in rows·H dims)
    """
    B = h.shape[1]
    return {
        "hidden_across_samples": [h[-1]],
        "hidden_across_time": [h[:, b] for b in range(min(B, max_samples))],
        "grad_h_across_time": [dL_dh[:, b] for b in range(min(B, max_samples))],
        "dW_hh_across_time": [dW_hh.flatten(1)],
    }


def network_geometry(sets: dict[str, list[Tensor]], seed: int = 0) -> tuple[list[dict], dict[str, Tensor]]:
    """Angle statistics of each set (pairs pooled over its members, vectors of norm 0 left out) beside those of
    gaussian vectors of the same dimension: exact sd, and a sample of the same number of pairs."""
    gen = torch.Generator().manual_seed(seed)
    rows, angles = [], {}
    for name, members in sets.items():
        parts = []
        for vecs in members:
            vecs = vecs.detach().double().cpu()
            vecs = vecs[torch.linalg.vector_norm(vecs, dim=1) > 0]
            if len(vecs) >= 2:
                parts.append(pairs_of(vecs, max_pairs=20_000, generator=gen).angle_deg)
        if not parts:
            continue
        a = torch.cat(parts)
        dim = members[0].shape[-1]
        random = random_pairs("gaussian", dim, max(2, min(len(a), 20_000)), gen).angle_deg
        angles[name], angles[f"{name}/random"] = a, random
        rows.append({"set": name, "dim": dim, "pairs": len(a), "angle_mean_deg": float(a.mean()),
                     "angle_sd_deg": float(a.std()), "angle_q01_deg": float(torch.quantile(a, 0.01)),
                     "angle_q99_deg": float(torch.quantile(a, 0.99)),
                     "random_angle_sd_deg": angle_sd_deg(dim) if dim >= 2 else math.nan,
                     "random_angle_sd_deg_sampled": float(random.std())})
    return rows, angles
