"""Exponential-moving-average (momentum) encoders: MoCo (He et al., 2020) and BYOL (Grill et al., 2020)."""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
from torch import nn

Schedule = Literal["const", "cosine"]


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``target <- tau * target + (1 - tau) * online`` for every parameter.

    Buffers (BN running statistics) are not averaged: the target's own forward passes update them, as in
    MoCo and BYOL. The two modules must have the same parameter structure.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"EMA tau must be in [0, 1], got {tau}")
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError("ema_update: online and target modules have different parameter structures")
    tp = [p.data for p in t_params]
    op = [p.data.to(p.dtype) for p in o_params]
    torch._foreach_lerp_(tp, op, 1.0 - tau)


def momentum_at(base_tau: float, schedule: Schedule | str, step: int, total_steps: int) -> float:
    """EMA coefficient at ``step``: ``"const"`` -> ``base_tau``; ``"cosine"`` -> BYOL's schedule (Grill
    et al., 2020, Sec. 3.2) ``1 - (1 - base_tau) * (cos(pi * step / total_steps) + 1) / 2``, rising to 1."""
    if schedule == "const":
        return float(base_tau)
    if schedule == "cosine":
        frac = min(max(step, 0), max(total_steps, 1)) / max(total_steps, 1)
        return 1.0 - (1.0 - base_tau) * (math.cos(math.pi * frac) + 1.0) / 2.0
    raise ValueError(f"unknown momentum schedule {schedule!r}; valid: 'const', 'cosine'")


def make_target(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` to be updated by :func:`ema_update` only.

    ``deepcopy`` drops an in-place ``module.compile()``; the copy is compiled again in that case.
    """
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    if getattr(module, "_compiled_call_impl", None) is not None:
        target.compile()
    return target
