"""MoCo v2 (He et al., CVPR 2020; Chen et al., arXiv:2003.04297) as configured by AugSelf (Lee et al., 2021).

Defaults from the AugSelf reference code: projector d -> d (BN, ReLU) -> 128 (last linear with bias), momentum
encoder (backbone + projector) with m = 0.999, queue K = 65536, T = 0.2, one-directional InfoNCE with view 1
as the query and the momentum key of view 2; no shuffle-BN.

Queue contents: standard MoCo enqueues the momentum *keys* (``enqueue="key"``, the default here). The AugSelf
reference enqueues the gathered online queries z1 instead (its quirk Q4, ``trainers.py`` lines 172-175);
``enqueue="query"`` reproduces that and the paper configs (``configs/{stl10,imagenet100}/moco*.yaml``) select it.
The queue and its pointer are registered buffers, so checkpoints capture them.

AugSelf features (reference Q4): ``[y1 from the online backbone, y2 from the momentum backbone (no grad)]``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.momentum import make_target
from augself.methods.output import MethodOutput
from augself.methods.utils import gather_no_grad, normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def moco_loss(
    q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.2, reduction: Literal["mean", "none"] = "mean"
) -> Tensor:
    """InfoNCE: positive ``<q_i, k_i>`` against negatives ``<q_i, queue[:, j]>``, all divided by T.

    ``q``, ``k``: ``(B, D)`` (normalised here); ``queue``: ``(D, K)`` of unit-norm negatives.
    ``reduction="none"``: the ``(B,)`` per-query losses.
    """
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.float()
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets, reduction=reduction)


class MoCo(Method):
    """MoCo v2: online backbone + projector, momentum copies of both, and a queue of negatives."""

    momentum_pairs = (
        ("backbone", "momentum_backbone"),
        ("projector", "momentum_projector"),
    )
    per_sample_loss = True
    queue: Tensor
    queue_ptr: Tensor

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int | None = None,
        proj_dim: int = 128,
        queue_size: int = 65536,
        temperature: float = 0.2,
        momentum: float = 0.999,
        enqueue: Literal["key", "query"] = "key",
        num_classes: int | None = None,
    ) -> None:
        """Args (MoCo v2 / AugSelf defaults): ``proj_hidden_dim`` = backbone dim, ``proj_dim`` 128,
        ``queue_size`` 65536, ``temperature`` 0.2, ``momentum`` 0.999, ``enqueue`` "key" (standard MoCo) or
        "query" (AugSelf reference). ``num_classes`` is unused."""
        super().__init__()
        if enqueue not in ("key", "query"):
            raise ValueError(f"enqueue must be 'key' or 'query', got {enqueue!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.backbone = backbone
        self.projector = mlp(backbone.dim, proj_hidden_dim or backbone.dim, proj_dim, num_layers=2)
        self.momentum_backbone = make_target(backbone)
        self.momentum_projector = make_target(self.projector)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.enqueue = enqueue
        self.register_buffer("queue", F.normalize(torch.randn(proj_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _enqueue(self, z: Tensor) -> None:
        z = gather_no_grad(F.normalize(z.detach().float(), dim=1))
        n, size = z.shape[0], self.queue.shape[1]
        if size % n:
            raise ValueError(
                f"MoCo queue_size {size} must be divisible by the (global) batch size {n}; "
                f"pick e.g. queue_size={max(n, size // n * n)}"
            )
        ptr = int(self.queue_ptr)
        self.queue[:, ptr : ptr + n] = z.T.to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        y1 = self.backbone(views[0])
        q = self.projector(y1)
        with torch.no_grad():
            y2 = self.momentum_backbone(views[1])
            k = self.momentum_projector(y2)
        per = moco_loss(q, k, self.queue.clone().detach(), self.temperature, reduction="none")
        if self.training:
            self._enqueue(k if self.enqueue == "key" else q)
        # a query's loss is that of its pair: the query view (row 0) and the key view (row 1) share it
        pair = torch.stack([per, per])
        return MethodOutput(per.mean(), [y1, y2.detach()], {"moco/z_std": normalized_std(q)}, per_sample=pair)
