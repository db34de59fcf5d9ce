"""A user's own ``nn.Module`` as the pretraining backbone (``PretrainModule(cfg, backbone=net, feature_dim=D)``).

The methods, the AugSelf / E-SSL heads and the online probe size their first layers from ``backbone.dim`` (the
contract of :class:`augself.models.backbones.Backbone`), so a user module needs one feature dimension: its own
integer ``.dim`` or ``feature_dim``. It must map ``(N, 3, S, S)`` float images to ``(N, feature_dim)`` features
for every view size S; :func:`adopt_backbone` checks that once, with a dry forward pass on a batch of two zero
images, so a mismatch is one clear line instead of a shape error deep inside a projector.

The module is wrapped as ``Backbone(net=module, dim=feature_dim, name="custom:<module>.<class>")``, exactly as the
built-in networks are: the methods get the same type, the module itself is trained in place (the wrapper holds it,
no copy), and ``backbone.pt`` stores its weights the way every backbone's are stored (``state_dict`` keys
``net.<the module's own keys>``), with the run's metadata (:func:`augself.models.backbones.save_backbone`).
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

import torch
from torch import nn

from augself.config_error import ConfigError
from augself.models.backbones import Backbone

#: Dry-run batch: two images, so that train-mode-only layers such as BatchNorm1d would also accept it.
CHECK_BATCH = 2


def _declared_dim(backbone: nn.Module) -> int | None:
    dim = getattr(backbone, "dim", None)
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, Integral):
        raise ConfigError(
            f"backbone {type(backbone).__name__}.dim must be its feature dimension (an int), got {dim!r}; "
            "rename that attribute or set it to the feature size"
        )
    return int(dim)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def custom_name(module: nn.Module) -> str:
    """``"custom:<module>.<class>"``: the architecture name recorded for a user module (not buildable by name)."""
    cls = type(module)
    return f"custom:{cls.__module__}.{cls.__qualname__}"


def adopt_backbone(backbone: nn.Module, feature_dim: int | None, sizes: Iterable[int]) -> Backbone:
    """``backbone`` as a :class:`Backbone` of dimension ``feature_dim``, after checking its output shape at each
    view size (a :class:`Backbone` is used as it is).

    ``feature_dim`` defaults to ``backbone.dim``; without either, or when they differ, or when a dry forward pass
    on ``(2, 3, S, S)`` zeros (eval mode, no gradients, on the backbone's device) does not give ``(2, dim)``,
    raises :class:`ConfigError` (one line).
    """
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}")
    name = type(backbone).__name__
    declared = _declared_dim(backbone)
    if feature_dim is None:
        if declared is None:
            raise ConfigError(
                f"backbone {name} has no .dim attribute: pass feature_dim=<D>, the size of its (N, D) features"
            )
        feature_dim = declared
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, Integral) or feature_dim < 1:
        raise ConfigError(f"feature_dim must be a positive int, got {feature_dim!r}")
    feature_dim = int(feature_dim)
    if declared is not None and declared != feature_dim:
        raise ConfigError(f"feature_dim={feature_dim} differs from backbone {name}.dim={declared}")
    params = [*backbone.parameters(), *backbone.buffers()]
    device = params[0].device if params else torch.device("cpu")
    was_training = backbone.training
    try:
        backbone.eval()
        for size in sorted(set(sizes)):
            x = torch.zeros(CHECK_BATCH, 3, size, size, device=device)
            try:
                with torch.no_grad():
                    y = backbone(x)
            except Exception as e:
                raise ConfigError(
                    f"backbone {name} failed on a ({CHECK_BATCH}, 3, {size}, {size}) image batch: {_first_line(e)}"
                ) from e
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            if shape != (CHECK_BATCH, feature_dim):
                raise ConfigError(
                    f"backbone {name} must map ({CHECK_BATCH}, 3, {size}, {size}) images to ({CHECK_BATCH}, "
                    f"{feature_dim}) features (feature_dim), got {shape}"
                )
    finally:
        backbone.train(was_training)
    return backbone if isinstance(backbone, Backbone) else Backbone(backbone, feature_dim, custom_name(backbone))
