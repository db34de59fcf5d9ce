"""AugSelf: predict the difference of two views' augmentation parameters (Lee et al., NeurIPS 2021).

For each selected augmentation ``aug`` a small MLP ``phi_aug`` reads the *backbone* features of the two
views, concatenated in both orders, and predicts the relative target ``omega_diff`` computed from the views'
parameter records (:func:`augself.augment.targets.relative_targets`), each view normalised with its own settings
(the ``ViewConfig`` its record carries: e.g. a per-view ``color_strength``). The loss

    L_AugSelf = sum_aug lambda_aug * L_aug(phi_aug([y1, y2]), omega_diff)

is added to any method's loss; the head input is not detached, so the gradients shape the backbone.
Head: Linear(2d, 512) -> BN -> ReLU -> Linear(512, 512) -> BN -> ReLU -> Linear(512, k) (paper, Sec. 3).
Losses: MSE on tanh(prediction) for regression targets, BCE for flip, cross-entropy for rotation, computed in
float32 under any autocast (the heads themselves run in the autocast dtype).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams
from augself.augment.targets import TARGETS, relative_targets
from augself.models.mlp import mlp
from augself.names import check_name


class AugSelf(nn.Module):
    """One head per augmentation; ``weights`` maps an augmentation name to its lambda, e.g. {"crop": 1.0}."""

    def __init__(self, feat_dim: int, weights: Mapping[str, float], hidden_dim: int = 512) -> None:
        super().__init__()
        for name, lam in weights.items():
            check_name(name, TARGETS, "AugSelf augmentation")  # the one vocabulary: augself/<name> in the logs
            if not isinstance(lam, int | float) or isinstance(lam, bool) or not float(lam) >= 0:
                raise ValueError(f"AugSelf weight for {name!r} must be a number >= 0, got {lam!r}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        self.heads = nn.ModuleDict(
            {name: mlp(2 * feat_dim, hidden_dim, TARGETS[name].dim, num_layers=3) for name in self.weights}
        )

    def forward(
        self,
        y1: Tensor,
        y2: Tensor,
        p1: ViewParams,
        p2: ViewParams,
        cfg1: ViewConfig | None = None,
        cfg2: ViewConfig | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total weighted AugSelf loss and the per-target losses for logging, keyed ``augself/<target>`` (the
        ``metrics.csv`` column ``train/augself/<target>``; the names: ``docs/augmentations.md``).

        Targets use each record's own ``cfg``; ``cfg1`` / ``cfg2`` are only needed for records without one."""
        pairs = torch.cat([torch.cat([y1, y2], 1), torch.cat([y2, y1], 1)])  # both orders: (2B, 2d)
        d12 = relative_targets(p1, p2, self.weights, cfg1, cfg2)
        d21 = relative_targets(p2, p1, self.weights, cfg2 if cfg2 is not None else cfg1, cfg1)
        total = torch.zeros((), device=y1.device)  # float32, as each term
        logs: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            pred, target = head(pairs), torch.cat([d12[name], d21[name]])
            loss = _loss(TARGETS[name].kind, pred, target)
            logs[f"augself/{name}"] = loss.detach()
            total = total + self.weights[name] * loss
        return total, logs


def _loss(kind: str, pred: Tensor, target: Tensor) -> Tensor:
    """The per-augmentation loss in float32 whatever the autocast: the prediction is upcast and the target kept
    in float32 (a bf16 target would be off by up to 2^-9 relative; the reference trains in fp32,
    ``trainers.py`` lines 41-46)."""
    with torch.autocast(pred.device.type, enabled=False):
        pred = pred.float()
        if kind == "regression":
            return F.mse_loss(torch.tanh(pred), target.float())
        if kind == "binary":
            return F.binary_cross_entropy_with_logits(pred, target.float())
        return F.cross_entropy(pred, target.long())
