"""Features of augmented views for the awareness report: batched forward passes, view sampling, pairings."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter
from augself.augment.specs import invariance_params

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


def sample_isolated(aug: Augmenter, name: str, n: int, size: tuple[int, int], g: torch.Generator) -> ViewParams:
    """``n`` view parameters of ``aug`` (the view isolating augmentation ``name``) as its spec's invariance
    measurement wants them (:func:`augself.augment.specs.invariance_params`; rotation: a real turn)."""
    p = aug.sample(0, n, generator=g, input_size=size)
    return invariance_params(name, p, aug.views[0], g)


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity in float64."""
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12)


def derangement(n: int, g: torch.Generator) -> Tensor:
    """A seeded permutation without fixed points (a random cyclic shift of a random order)."""
    perm = torch.randperm(n, generator=g)
    out = torch.empty(n, dtype=torch.long)
    out[perm] = perm.roll(1)
    return out
