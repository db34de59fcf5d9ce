"""Learned crop: a per-input categorical distribution over a fixed grid of square candidate crops (InstaAug).

Reference: NingMiao/InstaAug ``distribution.py:21-164`` (``Cropping_Categorical_Dist_ConvFeature``),
``augmentation.py:30, 126`` and ``mixmo_resnet_feature.py:277-338``:

* every cell of a level (``n x n`` cells, :attr:`LearnedCropConfig.grid` row ``(n, side, bias)``) is one candidate;
  its logit is the level head's output at that cell plus the prior offset ``bias - log(n^2)`` (``augmentation.py:126``),
  and one softmax runs over the candidates of all levels (``distribution.py:76-87``), so a level's initial mass is
  ``~ exp(bias)``. Candidates are ordered level by level (config order), cells row-major.
* candidate geometry: a square box whose side is ``side`` x the image's *short* side (the reference's images are
  square: ``side`` x the image side, ``mixmo_resnet_feature.py:308-319``; on a non-square image the box stays
  square in pixels, so the resized view keeps the aspect ratio), centred on the cell's *own* grid position
  ``((i + 1/2) / n, (j + 1/2) / n)`` of the image (deviation: the reference's affine map reflects the centre across
  the anti-diagonal, ``math_op.py:66-74``; quirk 7.3), rounded to the pixel grid and shifted inward so that it lies
  inside the image (deviation: the reference samples through ``grid_sample`` with zero padding, so border crops
  carry black margins, ``augmentation.py:420-436``).
* ``jitter`` (the paper-era code, ``6d9c256`` ``augmentation_ConvFeature_base.py:144-149``): the centre moves by
  ``U(-1, 1)`` x the grid spacing (one cell, ``1/n`` of the image; the global level 0.1 of the image, the
  reference's 0.2 in [-1, 1] units) and the side is drawn uniformly from the level's range between its neighbours
  (``mixmo_resnet_feature.py:319-330``: the first level ``[max(0.3, s0 - 0.1), (s0 + s1) / 2]``, a middle level
  ``[(s_{i-1} + s_i) / 2, (s_i + s_{i+1}) / 2]``, the last ``[(prev_hi + s_last) / 2, s_last]``; levels taken in
  increasing side); HEAD has no jitter (the default).
* sampling: exact categorical sampling by the inverse CDF of one uniform from the caller's generator (the paper-era
  code's ``torch.multinomial``; HEAD's Exp-noise top-k is biased, quirk 7.2); the REINFORCE log-probability is
  ``log p(c | x)`` of the drawn candidate (``distribution.py:155-157``) and the entropy the exact categorical entropy
  in nats (``distribution.py:150``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augself.augment.learned.config import LearnedCropConfig
from augself.augment.specs.base import uniform

__all__ = ["candidate_table", "crop_entropy", "crop_log_probs", "sample_crop_boxes", "side_ranges"]

GLOBAL_JITTER = 0.1
"""Centre jitter of a one-cell level as a fraction of the image: the reference's 0.2 in [-1, 1] units
(``mixmo_resnet_feature.py:297``)."""

SMALLEST_JITTER_SIDE = 0.3
"""Lower bound of the first level's jittered side (``mixmo_resnet_feature.py:322``: ``max(0.3, scopes[0]-0.1)``)."""

COLUMNS = ("cy", "cx", "side", "interval", "side_lo", "side_hi", "level")
"""Columns of :func:`candidate_table`."""


def side_ranges(sides: list[float]) -> list[tuple[float, float]]:
    """Jittered side range of each level (module docstring), in the order given."""
    order = sorted(range(len(sides)), key=lambda i: sides[i])
    s = [sides[i] for i in order]
    k = len(s)
    ranges: list[tuple[float, float]] = []
    for r in range(k):
        hi = s[r] if r == k - 1 else (s[r] + s[r + 1]) / 2
        if r == 0:
            lo = min(max(SMALLEST_JITTER_SIDE, s[0] - 0.1), s[0])
        elif r < k - 1:
            lo = (s[r - 1] + s[r]) / 2
        else:
            lo = (ranges[-1][1] + s[r]) / 2
        ranges.append((lo, max(lo, hi)))
    out: list[tuple[float, float]] = [(0.0, 0.0)] * k
    for r, i in enumerate(order):
        out[i] = ranges[r]
    return out


def candidate_table(cfg: LearnedCropConfig) -> tuple[Tensor, Tensor]:
    """``(table (K, 7), prior (K,))``: per candidate the nominal centre ``cy, cx`` (fractions of the image), the
    nominal ``side`` (fraction of the short side), the centre jitter ``interval``, the jittered side range and the
    level index (:data:`COLUMNS`); ``prior`` = ``bias - log(n^2)`` of its level."""
    ranges = side_ranges([float(side) for _, side, _ in cfg.grid])
    rows, prior = [], []
    for lvl, ((n, side, bias), (lo, hi)) in enumerate(zip(cfg.grid, ranges, strict=True)):
        c = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        interval = GLOBAL_JITTER if n == 1 else 1.0 / n
        const = torch.tensor([side, interval, lo, hi, lvl], dtype=torch.float64).expand(n * n, 5)
        rows.append(torch.cat((cy.reshape(-1, 1), cx.reshape(-1, 1), const), dim=1))
        prior.append(torch.full((n * n,), bias - math.log(n * n), dtype=torch.float64))
    return torch.cat(rows).float(), torch.cat(prior).float()


def crop_log_probs(level_logits: list[Tensor], prior: Tensor) -> Tensor:
    """(B, K) log-probabilities: the levels' logits (B, n*n each, config order) + prior, one log-softmax."""
    logits = torch.cat(level_logits, dim=1)
    return torch.log_softmax(logits + prior.to(logits), dim=1)


def crop_entropy(logp: Tensor) -> Tensor:
    """(B,) exact entropy in nats (``distribution.py:150``)."""
    return -(logp.exp() * logp).sum(dim=1)


def sample_index(logp: Tensor, generator: torch.Generator | None) -> Tensor:
    """(B,) candidate indices drawn from the categorical ``exp(logp)`` by the inverse CDF of one uniform each."""
    B, K = logp.shape
    u = uniform((B, 1), generator, logp.device).to(torch.float64)
    cdf = torch.cumsum(logp.detach().to(torch.float64).exp(), dim=1)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return idx.clamp_max_(K - 1)


def boxes(table: Tensor, idx: Tensor, input_size: tuple[int, int], jitter: Tensor | None = None) -> Tensor:
    """(B, 4) ``[top, left, h, w]`` fractions of the input (H, W) of candidates ``idx``: square in pixels, on the
    pixel grid, inside the image (module docstring). ``jitter``: (B, 3) uniforms (centre y, centre x, side)."""
    H, W = int(input_size[0]), int(input_size[1])
    short = float(min(H, W))
    t = table.to(idx.device)[idx].to(torch.float64)
    cy, cx, side = t[:, 0], t[:, 1], t[:, 2]
    if jitter is not None:
        j = jitter.to(device=idx.device, dtype=torch.float64)
        cy = cy + (2 * j[:, 0] - 1) * t[:, 3]
        cx = cx + (2 * j[:, 1] - 1) * t[:, 3]
        side = t[:, 4] * j[:, 2] + t[:, 5] * (1 - j[:, 2])  # the reference's lo * r + hi * (1 - r)
    px = torch.round(side * short).clamp(1.0, short)
    top = torch.minimum(torch.round(cy * H - px / 2).clamp_min(0.0), H - px)
    left = torch.minimum(torch.round(cx * W - px / 2).clamp_min(0.0), W - px)
    return torch.stack((top / H, left / W, px / H, px / W), dim=1).float()


def sample_crop_boxes(
    logp: Tensor,
    table: Tensor,
    input_size: tuple[int, int],
    generator: torch.Generator | None,
    jitter: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw one candidate per row: ``(boxes (B, 4) in the input's frame, log-prob (B,) with grad, idx (B,))``.

    Draws from ``generator``: one uniform per row (the candidate), then three per row with ``jitter``."""
    idx = sample_index(logp, generator)
    u = uniform((logp.shape[0], 3), generator, logp.device) if jitter else None
    box = boxes(table, idx, input_size, u)
    return box, logp.gather(1, idx.unsqueeze(1)).squeeze(1), idx
