"""The invariance module's extra loss: the crop's REINFORCE term and each family's entropy term (InstaAug).

``LearnedObjective(cfg)(per_sample_loss, draws, epoch) -> (loss, logs)``; the trainer adds ``loss`` to the task
loss and backpropagates once: the task loss's pathwise gradient reaches the module through the reparameterised
angle / colour values by itself, so this loss holds only

* REINFORCE, no baseline (``examples/mixmo-pytorch/mixmo/core/loss.py:323``, ``examples/self-supervised/train.py:
  146``): ``mean_{v,i} sg(l_vi) * log p(c_vi | x_i)`` over views v and samples i, ``per_sample_loss`` (V, B) being
  the task loss of view v of sample i (the module *minimises* the task loss, as the reference; ``sg`` = detach);
* per family with entropy H (B,) (each view's draw gives the same per-input entropies; they are averaged):
  without a target a linear bonus ``-w * mean_i H_i`` (``loss.py:324``); with ``target_entropy`` T a quadratic
  penalty ``w * (mean_i H_i - T_t)^2`` (``train.py:150-154``, w = the reference's hard-coded 0.3 by default of the
  contrastive configs) where ``T_t = r T + (1 - r) H_0``, ``r = min(1, epoch / ramp_epochs)`` (1 without a ramp)
  and ``H_0`` the batch-mean entropy of the first call (the reference's ``start_entropy``), kept in a buffer so a
  resumed run continues the same ramp.

``entropy_bounds: [lo, hi]`` adapts the linear bonus's weight once per epoch (:meth:`LearnedObjective.end_epoch`,
``InstaAug_module/scheduler.py:1-46``, called from ``abstract_learner.py:336-344``): the first epoch below ``lo``
(above ``hi``) only marks it; a second consecutive one multiplies the weight by 1.2 (divides by 1.2) unless the
entropy rose (fell) by more than 0.005 since the previous epoch; at most 50 net steps either way. The reference
feeds the test-set entropy (falling back to the training one); here the trainer passes the epoch's training
entropy. All state (weights, start entropies, the controller's counters) lives in buffers (``state_dict``).

Logs: ``learned/reinforce``, ``learned/loss`` and per family ``learned/<family>/entropy``,
``learned/<family>/weight`` and, with a target, ``learned/<family>/target``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from augself.augment.learned.config import LearnedConfig
from augself.augment.learned.sampler import LearnedDraw

__all__ = ["BOUND_FACTOR", "BOUND_MAX_STEPS", "BOUND_MIN_MOVE", "LearnedObjective"]

BOUND_FACTOR = 1.2
"""Weight step of the entropy-bounds controller (``scheduler.py:5``, ``self.alpha=1.2``)."""

BOUND_MAX_STEPS = 50
"""Cap on the controller's net number of steps (``scheduler.py:4``, ``self.max_abs_status=50``)."""

BOUND_MIN_MOVE = 0.005
"""An entropy moving toward the bounds by more than this per epoch holds the weight (``scheduler.py:19, 27``)."""


class LearnedObjective(nn.Module):
    """The module's extra loss and its per-family entropy state (module docstring)."""

    def __init__(self, cfg: LearnedConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.families = cfg.families
        for f in self.families:
            ent = getattr(cfg, f).entropy
            self.register_buffer(f"{f}_weight", torch.tensor(float(ent.weight), dtype=torch.float64))
            # start entropy of the target ramp, valid once `started` (a NaN sentinel would fail the checkpoint's
            # finite-weights check, augself.train.checkpointing.first_non_finite)
            self.register_buffer(f"{f}_start", torch.tensor(0.0, dtype=torch.float64))
            self.register_buffer(f"{f}_started", torch.tensor(False))
            # entropy_bounds controller: net steps taken, side of the last epoch (-1 below, 0 inside, 1 above),
            # the last epoch's entropy (scheduler.py: status, small_or_large, last_value = 0 at first)
            self.register_buffer(f"{f}_status", torch.tensor(0, dtype=torch.long))
            self.register_buffer(f"{f}_side", torch.tensor(0, dtype=torch.long))
            self.register_buffer(f"{f}_last", torch.tensor(0.0, dtype=torch.float64))

    def weight(self, family: str) -> float:
        """The family's current entropy weight."""
        return float(getattr(self, f"{family}_weight"))

    def _ramp(self, family: str, epoch: float) -> float:
        """How far the target ramp has gone at ``epoch``: 0 at the start entropy, 1 at ``target_entropy``."""
        ramp = getattr(self.cfg, family).entropy.ramp_epochs
        return 1.0 if ramp <= 0 else min(1.0, max(0.0, float(epoch)) / ramp)

    def target(self, family: str, epoch: float) -> float | None:
        """The family's target entropy at ``epoch`` (None: linear bonus; nan before the first call)."""
        ent = getattr(self.cfg, family).entropy
        if ent.target is None:
            return None
        r = self._ramp(family, epoch)
        start = float(getattr(self, f"{family}_start")) if bool(getattr(self, f"{family}_started")) else math.nan
        return ent.target * r + start * (1.0 - r) if r < 1.0 else float(ent.target)

    def forward(
        self, per_sample_loss: Tensor, draws: list[LearnedDraw], epoch: float
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``per_sample_loss`` (V, B) (detached here), one draw per view -> (the module's extra loss, logs)."""
        if per_sample_loss.ndim != 2 or per_sample_loss.shape[0] != len(draws):
            raise ValueError(
                f"per_sample_loss must have shape (views={len(draws)}, batch), got {tuple(per_sample_loss.shape)}"
            )
        logprob = torch.stack([d.logprob for d in draws])
        if logprob.shape != per_sample_loss.shape:
            raise ValueError(
                f"per_sample_loss {tuple(per_sample_loss.shape)} and log-probs {tuple(logprob.shape)} differ"
            )
        reinforce = (per_sample_loss.detach().to(logprob.dtype) * logprob).mean()
        loss = reinforce
        logs: dict[str, Tensor] = {"learned/reinforce": reinforce.detach()}
        # buffers are read as tensors, never as Python numbers: no device sync in the training step
        for f in self.families:
            h = torch.stack([d.entropy[f] for d in draws]).mean()
            w = getattr(self, f"{f}_weight").to(h)
            ent = getattr(self.cfg, f).entropy
            if ent.target is not None:
                start, started = getattr(self, f"{f}_start"), getattr(self, f"{f}_started")
                start.copy_(torch.where(started, start, h.detach().to(start)))  # the first call's batch entropy
                started.fill_(True)
                r = self._ramp(f, epoch)
                t = start.to(h) * (1.0 - r) + ent.target * r if r < 1.0 else h.new_tensor(ent.target)
                loss = loss + w * (h - t) ** 2
                logs[f"learned/{f}/target"] = t.detach()
            else:
                loss = loss - w * h
            logs[f"learned/{f}/entropy"] = h.detach()
            logs[f"learned/{f}/weight"] = w.detach().clone()
        logs["learned/loss"] = loss.detach()
        return loss, logs

    def end_epoch(self, epoch_entropy: dict[str, float]) -> None:
        """The entropy-bounds controller (module docstring) on the epoch's mean entropy per family."""
        for f in self.families:
            bounds = getattr(self.cfg, f).entropy.bounds
            if bounds is None or f not in epoch_entropy:
                continue
            value = float(epoch_entropy[f])
            lo, hi = bounds
            side, last, status = getattr(self, f"{f}_side"), getattr(self, f"{f}_last"), getattr(self, f"{f}_status")
            action = 0
            if value < lo:
                if int(side) != -1:
                    side.fill_(-1)
                elif not value > float(last) + BOUND_MIN_MOVE:
                    action = 1
            elif value > hi:
                if int(side) != 1:
                    side.fill_(1)
                elif not value < float(last) - BOUND_MIN_MOVE:
                    action = -1
            else:
                side.fill_(0)
            last.fill_(value)
            if action == 1 and int(status) < BOUND_MAX_STEPS:
                status.add_(1)
                getattr(self, f"{f}_weight").mul_(BOUND_FACTOR)
            elif action == -1 and int(status) > -BOUND_MAX_STEPS:
                status.sub_(1)
                getattr(self, f"{f}_weight").div_(BOUND_FACTOR)
