"""Features of augmented views for the awareness report: batched forward passes, view sampling, pairings."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter

__all__ = ["cosine", "derangement", "features", "sample_isolated"]


@torch.no_grad()
def features(
    backbone: nn.Module,
    aug: Augmenter,
    images: Tensor,
    params: ViewParams,
    device: torch.device,
    batch_size: int,
) -> Tensor:
    """Flattened float features (CPU) of ``images`` augmented by ``aug`` with the recorded ``params``."""
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device, non_blocking=True)
        v = aug.apply(x, params[i : i + batch_size].to(device), 0)
        out.append(backbone(v).flatten(1).float().cpu())
    return torch.cat(out)


def sample_isolated(aug: Augmenter, name: str | None, n: int, size: tuple[int, int], g: torch.Generator) -> ViewParams:
    """``n`` view parameters of ``aug``; a rotation applied with p = 1 turns by k in {1, 2, 3} (never k = 0), so
    invariance is measured against an actual turn."""
    p = aug.sample(0, n, generator=g, input_size=size)
    if name == "rot" and aug.views[0].rotate_p >= 1.0:
        p.rot = 1 + torch.randint(0, 3, (n,), generator=g)
    return p


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity in float64."""
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12)


def derangement(n: int, g: torch.Generator) -> Tensor:
    """A seeded permutation without fixed points (a random cyclic shift of a random order)."""
    perm = torch.randperm(n, generator=g)
    out = torch.empty(n, dtype=torch.long)
    out[perm] = perm.roll(1)
    return out
