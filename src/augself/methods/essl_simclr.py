"""SimCLR as E-SSL implements it (Dangovski et al., ICLR 2022; rdangovs/essl), the host of E-SimCLR.

It differs from AugSelf's SimCLR (:mod:`augself.methods.simclr`) in the loss and the projector:

* loss: InfoNCE over the *cross-view* logits only, ``CE(z1 z2^T / T, i)`` (positives on the diagonal, the B - 1
  other images of the other view as negatives, no intra-view negatives), symmetrised ``L(z1, z2) / 2 +
  L(z2, z1) / 2``: ``cifar10/main.py`` lines 93-102 and 284; ImageNet gathers both views over the GPUs first
  (``imagenet/simclr/main.py`` lines 229-239 and 212), as :func:`gather_with_grad` does here.
* temperature: 0.5 on CIFAR-10 (``cifar10/main.py`` line 93), 0.2 on ImageNet (``imagenet/simclr/main.py``
  line 229).
* projector, CIFAR-10 (``--dim_proj 2048,2048``, lines 105-112 and 457): Linear(d, 2048, no bias) -> BN -> ReLU
  -> Linear(2048, 2048, no bias) -> BN(affine=False). ImageNet (lines 179-187): Linear -> BN -> ReLU twice at
  2048, then Linear(2048, 128, no bias) -> BN (affine): ``proj_layers: 3, proj_dim: 128,
  proj_last_bn_affine: true``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.methods.utils import gather_with_grad, local_rows, normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def essl_info_nce(
    z1: Tensor, z2: Tensor, temperature: float = 0.5, reduction: Literal["mean", "none"] = "mean"
) -> Tensor:
    """Symmetrised cross-view InfoNCE of E-SSL: the mean over both directions of
    ``-log(exp(c_ii / T) / sum_j exp(c_ij / T))`` with ``c_ij`` the cosine of ``z_a[i]`` and ``z_b[j]``.

    ``z1``, ``z2``: ``(B, D)`` projections of the two views (normalised here, in float32).
    ``reduction="none"``: the ``(2, B)`` per-anchor losses (row v: anchors of view v), whose mean is the loss.
    """
    a = F.normalize(z1.float(), dim=1)
    b = F.normalize(z2.float(), dim=1)
    logits = a @ b.T / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    if reduction == "none":
        return torch.stack([F.cross_entropy(x, labels, reduction="none") for x in (logits, logits.T)])
    return F.cross_entropy(logits, labels) / 2 + F.cross_entropy(logits.T, labels) / 2


class ESSLSimCLR(Method):
    """E-SSL's SimCLR: backbone + BN projector, cross-view InfoNCE (see the module docstring)."""

    per_sample_loss = True

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 2048,
        proj_layers: int = 2,
        proj_last_bn_affine: bool = False,
        temperature: float = 0.5,
        num_classes: int | None = None,
    ) -> None:
        """Defaults: E-SSL's CIFAR-10 setting (``cifar10/main.py`` lines 93, 105-112, 457). ``num_classes``:
        unused."""
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.backbone = backbone
        self.projector = mlp(
            backbone.dim,
            proj_hidden_dim,
            proj_dim,
            num_layers=proj_layers,
            last_bias=False,
            last_norm=True,
            last_norm_affine=proj_last_bn_affine,
        )
        self.temperature = float(temperature)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        # one backbone pass per view, as the reference (BatchNorm statistics per view)
        y1, y2 = self.backbone(views[0]), self.backbone(views[1])
        z1, z2 = self.projector(y1), self.projector(y2)
        per = essl_info_nce(gather_with_grad(z1), gather_with_grad(z2), self.temperature, reduction="none")
        local = torch.stack([local_rows(per[0], z1.shape[0]), local_rows(per[1], z1.shape[0])])
        return MethodOutput(per.mean(), [y1, y2], {"essl_simclr/z_std": normalized_std(z1)}, per_sample=local)
