"""SwAV (Caron et al., NeurIPS 2020) with the AugSelf reference configuration (Lee et al., NeurIPS 2021).

Defaults (AugSelf reference ``pretrain.py`` lines 216-245, ``trainers.py`` lines 330-393): projector d -> 2048
(BN, ReLU) -> 128, L2-normalised; 100 prototypes (``nn.Linear`` without bias, re-normalised before every forward in
training) frozen for the first 409 optimiser steps; Sinkhorn-Knopp with eps = 0.05 and 3 iterations; T = 0.1;
swapped prediction. No queue. Multi-crop is optional: views beyond the first two (small crops) are only predicted,
never assigned codes.

Loss scale: the reference *sums* the two swapped terms, ``loss1 + loss2`` (``trainers.py`` lines 371-373), so
that is the default (``assign_reduction="sum"``); SwAV's own code averages over the assigned views
(facebookresearch/swav ``main_swav.py::train``, ``loss /= len(args.crops_for_assign)``), which is
``assign_reduction="mean"`` and halves the loss, i.e. doubles AugSelf's lambda relative to it.
Freezing: the reference drops the prototype gradients while ``engine.state.iteration < 410``
(``trainers.py`` line 384) and ignite's iteration counter is 1-based, so 409 steps are frozen.

Prototype freezing: the trainer calls :meth:`SwAV.on_after_backward` (the
:class:`~augself.methods.contract.Method` hook) with the global step after ``backward``; it drops the prototype
gradients while ``step < freeze_prototypes_iters`` (so the optimizer skips them, weight decay included).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.methods.utils import is_distributed, normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


@torch.no_grad()
def sinkhorn(scores: Tensor, eps: float = 0.05, iters: int = 3) -> Tensor:
    """Soft equipartitioned codes ``(B, K)`` from prototype scores ``(B, K)`` (SwAV Alg. 1).

    Rows of the result sum to 1. Under DDP the marginals are reduced over ranks (global equipartition).
    """
    scores = scores.detach().float()
    world = dist.get_world_size() if is_distributed() else 1
    mx = scores.max()
    if world > 1:
        dist.all_reduce(mx, op=dist.ReduceOp.MAX)
    q = torch.exp((scores - mx) / eps).T  # (K, B)
    k, b = q.shape[0], q.shape[1] * world
    total = q.sum()
    if world > 1:
        dist.all_reduce(total)
    q /= total
    for _ in range(iters):
        rows = q.sum(dim=1, keepdim=True)
        if world > 1:
            dist.all_reduce(rows)
        q /= rows
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).T


ASSIGN_REDUCTIONS: tuple[str, ...] = ("sum", "mean")


def swav_loss(
    scores: list[Tensor],
    temperature: float = 0.1,
    eps: float = 0.05,
    iters: int = 3,
    n_assign: int = 2,
    assign_reduction: str = "sum",
    reduction: str = "mean",
) -> Tensor:
    """Swapped prediction: codes of view ``i < n_assign`` (Sinkhorn, no grad) are predicted from every other
    view ``j`` by ``softmax(scores_j / T)``; cross-entropies averaged over ``j``, then summed over ``i``
    (``assign_reduction="sum"``, the AugSelf reference ``trainers.py`` lines 371-373) or averaged
    (``"mean"``, SwAV's ``main_swav.py``). With two views, "sum" is ``CE(q1, p2) + CE(q2, p1)``.

    ``reduction="none"``: ``(V, B)``, row ``j`` the per-sample cross-entropies of view ``j``'s predictions (given the
    batch's codes), scaled so that their mean is the loss."""
    if assign_reduction not in ASSIGN_REDUCTIONS:
        raise ValueError(f"assign_reduction must be one of {', '.join(ASSIGN_REDUCTIONS)}, got {assign_reduction!r}")
    rows = [scores[0].new_zeros(scores[0].shape[0], dtype=torch.float32) for _ in scores]
    for i in range(n_assign):
        q = sinkhorn(scores[i], eps, iters)
        others = [j for j in range(len(scores)) if j != i]
        for j in others:
            ce = -(q * F.log_softmax(scores[j].float() / temperature, dim=1)).sum(dim=1)
            rows[j] = rows[j] + ce / len(others)
    per = torch.stack(rows) * (len(scores) if assign_reduction == "sum" else len(scores) / n_assign)
    return per if reduction == "none" else per.mean()


class SwAV(Method):
    """SwAV: online clustering of projections onto learnable prototypes with swapped prediction."""

    per_sample_loss = True

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        num_prototypes: int = 100,
        temperature: float = 0.1,
        sinkhorn_eps: float = 0.05,
        sinkhorn_iters: int = 3,
        freeze_prototypes_iters: int = 409,
        assign_reduction: str = "sum",
        num_classes: int | None = None,
    ) -> None:
        """Args (AugSelf reference / SwAV defaults): projector 2048-128, 100 prototypes, T 0.1, eps 0.05,
        3 Sinkhorn iterations, prototypes frozen for the first 409 steps (``trainers.py`` line 384 with ignite's
        1-based iteration), ``assign_reduction`` "sum" (reference scale, see the module docstring).
        ``num_classes`` is unused."""
        super().__init__()
        if assign_reduction not in ASSIGN_REDUCTIONS:
            raise ValueError(
                f"assign_reduction must be one of {', '.join(ASSIGN_REDUCTIONS)}, got {assign_reduction!r}"
            )
        self.backbone = backbone
        self.projector = mlp(backbone.dim, proj_hidden_dim, proj_dim, num_layers=2)
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.temperature = float(temperature)
        self.sinkhorn_eps = float(sinkhorn_eps)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.freeze_prototypes_iters = int(freeze_prototypes_iters)
        self.assign_reduction = assign_reduction

    def prototype_grad_enabled(self, step: int) -> bool:
        """Whether the prototypes are trained at global step ``step``."""
        return step >= self.freeze_prototypes_iters

    def on_after_backward(self, step: int) -> None:
        """Drop the prototype gradients during the first ``freeze_prototypes_iters`` steps."""
        if not self.prototype_grad_enabled(step):
            self.prototypes.weight.grad = None

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        w = self.prototypes.weight
        w.copy_(F.normalize(w, dim=1))

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        if self.training:
            self.normalize_prototypes()
        ys = [self.backbone(v) for v in views]
        zs = [F.normalize(self.projector(y), dim=1) for y in ys]
        scores = [self.prototypes(z) for z in zs]
        per = swav_loss(
            scores,
            self.temperature,
            self.sinkhorn_eps,
            self.sinkhorn_iters,
            2,
            assign_reduction=self.assign_reduction,
            reduction="none",
        )
        return MethodOutput(per.mean(), ys[:2], {"swav/z_std": normalized_std(zs[0])}, per_sample=per)
