"""The value every method's ``forward`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class MethodOutput:
    """``loss``: the method's scalar loss; ``features``: backbone features ``(B, d)`` of views 0 and 1 (the
    AugSelf head input, not detached); ``logs``: detached scalars to log (keys ``"<method>/<name>"``).

    ``per_sample``: ``(V, B)`` task loss of view ``v`` of this rank's sample ``i``, with ``per_sample.mean() == loss``
    on one process (under DDP the ranks' means average to the loss); ``None`` for a batch-level loss (Barlow Twins,
    VICReg). It is the REINFORCE signal of a learned crop (InstaAug, Miao et al., ICML 2023: the per-anchor losses
    of ``examples/self-supervised/methods/contrastive.py:8-27``, aligned with each view's draw), detached there.
    """

    loss: Tensor
    features: list[Tensor]
    logs: dict[str, Tensor] = field(default_factory=dict)
    per_sample: Tensor | None = None
