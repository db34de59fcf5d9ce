"""The value every method's ``forward`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class MethodOutput:
    """``loss``: the method's scalar loss; ``features``: backbone features ``(B, d)`` of views 0 and 1 (the
    AugSelf head input, not detached); ``logs``: detached scalars to log (keys ``"<method>/<name>"``)."""

    loss: Tensor
    features: list[Tensor]
    logs: dict[str, Tensor] = field(default_factory=dict)
