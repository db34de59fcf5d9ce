"""Optimisers and learning-rate schedules for pretraining.

- lr = base_lr * effective_batch / 256 (linear scaling rule, Goyal et al., 2017; used by AugSelf and SimCLR).
- No weight decay on normalisation parameters and biases (common practice since Goyal et al., 2017 / BYOL) by
  default; ``exclude_norm_bias=False`` decays every parameter, as the AugSelf reference (one ``optim.SGD`` over
  all parameters, ``pretrain.py`` lines 51-53).
- Linear warm-up then cosine decay, stepped per optimisation step (SimCLR, Chen et al., 2020) or per epoch
  (``interval="epoch"``: the AugSelf reference's ``CosineAnnealingLR(T_max=epochs)`` stepped at each epoch end,
  ``pretrain.py`` lines 55 and 345-348, i.e. ``lr_k = lr (1 + cos(pi k / E)) / 2`` during 0-based epoch k).
- LARS (You et al., 2017) as used by SimCLR / BYOL / Barlow Twins for large batches.
- Modules named in a method's ``fixed_lr_modules`` (:class:`augself.methods.contract.Method`) keep a constant lr
  (SimSiam predictor, Chen & He, 2021).
- A learned-augmentation module (InstaAug, ``augment.learned``) is one more group (:func:`module_group`) with its
  own lr, weight decay and schedule (:func:`module_lr_factor`): 0 before its start epoch, a linear warm-up, then
  constant; never the backbone's cosine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

#: Schedule granularities (``optim.lr_interval``, ``optim.ema_interval``).
INTERVALS: tuple[str, ...] = ("step", "epoch")


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratio (You et al., 2017).

    Parameter groups with ``lars_exclude=True`` (norms, biases) get plain SGD without the trust ratio.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.02,
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if group["weight_decay"]:
                    d_p = d_p.add(p, alpha=group["weight_decay"])
                if not group.get("lars_exclude", False):
                    p_norm, g_norm = torch.norm(p), torch.norm(d_p)
                    trust = torch.where(
                        (p_norm > 0) & (g_norm > 0), group["eta"] * p_norm / g_norm, torch.ones_like(p_norm)
                    )
                    d_p = d_p.mul(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                else:
                    buf.mul_(group["momentum"]).add_(d_p)
                p.add_(buf, alpha=-group["lr"])
        return loss


def _is_no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or name.endswith(".bias")


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in prefixes)


def param_groups(
    model: nn.Module,
    weight_decay: float,
    exclude_norm_bias: bool,
    fixed_lr_prefixes: tuple[str, ...] = (),
    exclude_prefixes: tuple[str, ...] = (),
) -> list[dict]:
    """Split trainable parameters into (decay, no-decay) x (scheduled, fixed-lr) groups; parameters under
    ``exclude_prefixes`` are left out (they get a group of their own, e.g. :func:`module_group`)."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or _under(name, exclude_prefixes):
            continue
        no_decay = exclude_norm_bias and _is_no_decay(name, p)
        fixed = _under(name, fixed_lr_prefixes)
        groups.setdefault((no_decay, fixed), []).append(p)
    out = []
    for (no_decay, fixed), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lars_exclude": no_decay,
                "fixed_lr": fixed,
            }
        )
    return out


def module_group(
    module: nn.Module, lr: float, weight_decay: float, start_epoch: float, warmup_epochs: float, name: str = "learned"
) -> dict:
    """One parameter group for every trainable parameter of ``module`` with its own ``lr`` and ``weight_decay``
    (InstaAug puts its module in the classifier's optimiser as a group of its own with ``lr = Li_configs['lr']``,
    ``examples/mixmo-pytorch/mixmo/networks/model_wrapper.py:95-103``) and the schedule of :func:`module_lr_factor`
    (``epoch_schedule``; plain data, so it survives the optimizer's state_dict). LARS leaves it unscaled."""
    return {
        "params": [p for p in module.parameters() if p.requires_grad],
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "lars_exclude": True,
        "fixed_lr": False,
        "epoch_schedule": (float(start_epoch), float(warmup_epochs)),
        "name": name,
    }


def module_lr_factor(epoch: int, start_epoch: float, warmup_epochs: float) -> float:
    """Multiplier of a :func:`module_group`'s lr during 0-based epoch ``epoch``: 0 before ``start_epoch``, then
    ``(epoch - start_epoch + 1) / warmup_epochs`` up to 1, constant from then on.

    InstaAug: contrastive ``examples/self-supervised/train.py:100-106`` (lr 0 for ``ep < no_train_period``, then
    ``lr / warmup_period * (ep - no_train_period + 1)``, then ``lr``, per 0-based epoch ``ep``); supervised
    ``examples/mixmo-pytorch/mixmo/learners/abstract_learner.py:317-322`` (``lr / warmup_period * epoch`` with the
    1-based epoch, i.e. the same formula with no start)."""
    if epoch < start_epoch:
        return 0.0
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch - start_epoch + 1) / warmup_epochs)


def build_optimizer(
    name: str,
    groups: list[dict],
    lr: float,
    momentum: float,
    weight_decay: float,
    betas=(0.9, 0.999),
    eta=0.02,
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid names: adamw, lars, sgd")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    min_ratio: float = 0.0,
    steps_per_epoch: int = 1,
) -> LambdaLR:
    """Per-step LambdaLR; groups flagged ``fixed_lr`` keep their initial lr; a group with ``epoch_schedule``
    (:func:`module_group`) follows :func:`module_lr_factor` of the epoch ``step // steps_per_epoch``."""

    def lam(g: dict) -> Callable[[int], float]:
        if g.get("epoch_schedule") is not None:
            start, warmup = g["epoch_schedule"]
            return lambda s: module_lr_factor(s // max(1, steps_per_epoch), start, warmup)
        if g.get("fixed_lr"):
            return lambda _s: 1.0
        return lambda s: warmup_cosine(s, total_steps, warmup_steps, min_ratio)

    return LambdaLR(optimizer, [lam(g) for g in optimizer.param_groups])


def lr_scheduler_config(
    optimizer: torch.optim.Optimizer,
    interval: str,
    total_steps: int,
    epochs: int,
    warmup_epochs: float = 0.0,
    min_ratio: float = 0.0,
    steps_per_epoch: int | None = None,
) -> dict:
    """Lightning ``lr_scheduler`` entry: warm-up + cosine over ``total_steps`` steps (``interval="step"``) or over
    ``epochs`` epochs, stepped at each epoch end (``interval="epoch"``, the AugSelf reference).
    ``steps_per_epoch`` (default ``total_steps / epochs``): optimiser steps in one epoch, for groups with an
    ``epoch_schedule``."""
    if interval not in INTERVALS:
        raise ValueError(f"optim.lr_interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    epochs = max(1, epochs)
    if interval == "epoch":
        total, warmup, per_epoch = epochs, round(warmup_epochs), 1
    else:
        total, warmup = max(1, total_steps), round(warmup_epochs * max(1, total_steps) / epochs)
        per_epoch = steps_per_epoch or max(1, total // epochs)
    return {"scheduler": build_scheduler(optimizer, total, warmup, min_ratio, per_epoch), "interval": interval}
