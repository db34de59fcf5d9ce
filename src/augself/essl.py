"""E-SSL: four-fold rotation prediction on an extra small view (Dangovski et al., ICLR 2022).

Each image of the extra low-resolution view is rotated by 0/90/180/270 degrees (all four, so the rotation batch
is 4B images with labels 0-3 in blocks: rdangovs/essl ``cifar10/main.py`` lines 51-70), the backbone features of
the 4B images go through an MLP with LayerNorm and a 4-way cross-entropy is added to the method's loss with
weight lambda (``--lmbd 0.4``, ``cifar10/README.md`` line 25; ``--rotation 0.4``, ``imagenet/simclr/main.py``
line 38).

* CIFAR-10 (``cifar10/main.py``): rotation view ``RandomResizedCrop(16, scale=(0.2, 1.0))`` + the SSL views'
  flip / jitter / grayscale (lines 32-37); head 512 -> 2048 (LN, ReLU) -> 2048 (LN, ReLU) -> 4 (lines 146-152).
* ImageNet (``imagenet/simclr/main.py``): rotation view ``RandomResizedCrop(96, scale=(0.05, 0.14))`` + flip,
  jitter, grayscale and blur p 0.1 (lines 316-330); head 2048 -> 2048 (LN, ReLU) -> 2048 (LN, ReLU) -> 128 (LN)
  -> 4 (lines 192-200): ``bottleneck_dim: 128``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.augment.config import AugmentConfig, ViewConfig

if TYPE_CHECKING:
    from augself.config import PretrainConfig


class ESSLSettings(Protocol):
    """The fields of ``augself.config.ESSLConfig`` read here."""

    weight: float
    size: int | None
    hidden_dim: int
    bottleneck_dim: int
    view: Mapping[str, Any]


def rotate_four_ways(images: Tensor) -> tuple[Tensor, Tensor]:
    """Stack the four quarter-turn rotations of a (B, C, H, W) batch: returns (4B images, 4B labels).

    Block k holds every image turned k times counter-clockwise (``torch.rot90`` on (H, W)), label k: E-SSL's
    ``rotate_images`` (``cifar10/main.py`` lines 59-68: flip/transpose forms of the same rotations).
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation view must be square, got {tuple(images.shape[-2:])}")
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


def rotation_view(base: ViewConfig, essl: ESSLSettings) -> ViewConfig:
    """The rotation view: view 0's settings, side ``essl.size`` (default half of view 0: 16 px for 32-px CIFAR,
    as E-SSL), never AugSelf's own random rotation, then the ``essl.view`` overrides (e.g. the ImageNet setting's
    ``crop_scale: [0.05, 0.14]``, ``blur_p: 0.1``). Raises ``ValueError`` for unknown keys or bad values."""
    names = {f.name for f in fields(ViewConfig)}
    over = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(essl.view or {}).items()}
    unknown = sorted(set(over) - names)
    if unknown:
        raise ValueError(f"essl.view has unknown keys {unknown}; valid: view settings such as crop_scale, blur_p")
    if essl.size is not None and essl.size < 1:
        raise ValueError(f"essl.size must be a positive integer, got {essl.size}")
    size = essl.size or max(8, base.size // 2)
    return base.with_(**{"size": size, "rot_p": 0.0, **over})


def views_with_essl(cfg: PretrainConfig) -> tuple[AugmentConfig, int]:
    """The views a pretraining run of ``cfg`` draws and how many of them the method sees: ``augment``'s views (shared
    settings merged with each ``augment.views[i]``), then E-SSL's rotation view (:func:`rotation_view`) when
    ``essl.weight > 0``. :class:`augself.train.module.PretrainModule` and ``augself preview --config`` use it."""
    aug = cfg.augment.build()
    n_method_views = len(aug.views)
    if cfg.essl.weight > 0:
        aug.views.append(rotation_view(aug.views[0], cfg.essl))
    return aug, n_method_views


def rotation_head(feat_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 0) -> nn.Sequential:
    """E-SSL's rotation predictor: two Linear (with bias) -> LayerNorm -> ReLU blocks of width ``hidden_dim``,
    optionally Linear -> LayerNorm to ``bottleneck_dim`` (ImageNet: 128), then Linear to the 4 classes."""
    if hidden_dim < 1 or bottleneck_dim < 0:
        raise ValueError(
            f"E-SSL head needs hidden_dim >= 1 and bottleneck_dim >= 0, got {hidden_dim}, {bottleneck_dim}"
        )
    layers: list[nn.Module] = []
    dim = feat_dim
    for _ in range(2):
        layers += [nn.Linear(dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    if bottleneck_dim:
        layers += [nn.Linear(dim, bottleneck_dim), nn.LayerNorm(bottleneck_dim)]
        dim = bottleneck_dim
    layers.append(nn.Linear(dim, 4))
    return nn.Sequential(*layers)


class RotationPrediction(nn.Module):
    """Predict the absolute four-fold rotation of a view from its backbone features."""

    def __init__(self, feat_dim: int, hidden_dim: int = 2048, weight: float = 0.4, bottleneck_dim: int = 0) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"E-SSL weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.head = rotation_head(feat_dim, hidden_dim, bottleneck_dim)

    def forward(self, backbone: nn.Module, view: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted loss and logs (loss, accuracy) for one rotation view (one backbone pass over all 4B images,
        as E-SSL: its BatchNorm statistics are those of the rotation batch)."""
        images, labels = rotate_four_ways(view)
        logits = self.head(backbone(images))
        loss = F.cross_entropy(logits.float(), labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return self.weight * loss, {"essl/rot_loss": loss.detach(), "essl/rot_acc": acc.detach()}
