"""The contract between a method and the trainer (:class:`augself.train.module.PretrainModule`).

Every method subclasses :class:`Method` and overrides only the declared properties that differ from the one set
of defaults below; the trainer reads them as typed attributes. The hook the trainer calls is
:meth:`Method.on_after_backward` (a no-op unless overridden, e.g. SwAV's prototype freezing).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from augself.methods.momentum import Schedule
from augself.methods.output import MethodOutput


class Method(nn.Module):
    """Base class of the SSL methods: ``method(views, labels) -> MethodOutput``; owns ``self.backbone``.

    Declared properties (class attributes; defaults = a method without momentum encoders or special groups):

    * ``momentum_pairs``: ``(online attr, target attr)`` module pairs; after every optimiser step the trainer
      sets ``target <- tau * target + (1 - tau) * online`` (MoCo, He et al., 2020; BYOL, Grill et al., 2020).
    * ``momentum_schedule``: how tau moves from the base ``momentum``: ``"const"`` (MoCo) or ``"cosine"``
      (BYOL Sec. 3.2, rising to 1); see :func:`augself.methods.momentum.momentum_at`.
    * ``fixed_lr_modules``: sub-modules kept at a constant lr (SimSiam's predictor, Chen & He, 2021, Sec. 4.4).
    * ``views_needed``: the least number of augmented views the loss uses; the configuration check
      (:mod:`augself.config_checks`) rejects an ``augment.views`` list with fewer.
    * ``per_sample_loss``: ``forward`` fills :attr:`MethodOutput.per_sample` (a learned crop needs it; the
      configuration check rejects ``augment.learned.crop`` for a method without it).

    Instance attribute ``momentum``: the base EMA coefficient tau (read only when ``momentum_pairs`` is set).
    """

    momentum_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()
    momentum_schedule: ClassVar[Schedule] = "const"
    fixed_lr_modules: ClassVar[tuple[str, ...]] = ()
    views_needed: ClassVar[int] = 2
    per_sample_loss: ClassVar[bool] = False
    momentum: float = 0.0
    backbone: nn.Module

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        """The loss on ``views`` (normalised ``(B, C, S, S)`` images; ``labels`` or ``None``)."""
        raise NotImplementedError

    def on_after_backward(self, step: int) -> None:
        """Called by the trainer after ``backward`` and before the optimiser step, with the global step."""
