"""Backbones: a thin :class:`Backbone` wrapper exposing ``.dim`` and pooled features ``(B, dim)``.

- ``resnet18`` / ``resnet50``: torchvision, random init, ``zero_init_residual=True`` and ``fc = Identity``
  as in AugSelf (Lee et al., NeurIPS 2021, ``models.py::load_backbone``). ``cifar_stem=True`` swaps conv1
  for a 3x3 stride-1 conv and drops the max-pool (``cifar_resnet18`` in AugSelf; the E-SSL CIFAR backbone).
  ``init="pytorch"`` re-initialises every conv and linear with PyTorch's default ``reset_parameters`` after
  construction, as the AugSelf reference does (``models.py`` lines 10-20 and 30); the default ``"torchvision"``
  keeps torchvision's kaiming-normal (fan_out) conv init.
- ``small_cnn``: four 3x3 conv-BN-ReLU blocks (16-64-128-256), global average pool -> 256-d; a fast CPU
  workhorse for demos and tests at 32 px.
- ``timm:<model_name>``: any timm model with ``num_classes=0`` (needs timm: ``pip install -e '.[timm]'``).

A trained backbone is exported with :func:`save_backbone` and reloaded with one line::

    backbone = augself.models.load_backbone("run/backbone.pt")   # -> Backbone in eval mode, features = backbone(x)
    backbone.info.size, backbone.info.mean, backbone.info.std      # its pretraining preprocessing (BackboneInfo)

The file layout and its metadata are described in :mod:`augself.models.backbone_info`; ``augself export``
(:mod:`augself.export`) turns it into a plain torchvision / timm ``state_dict``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from augself._version import __version__
from augself.models.backbone_info import FORMAT, BackboneInfo, info_from_checkpoint, load_checkpoint_dict, plain
from augself.names import unknown_name_message
from augself.optional import require

BACKBONES: tuple[str, ...] = ("resnet18", "resnet50", "small_cnn", "timm:<model_name>")
#: ``build_backbone(init=...)``: "torchvision" (the network's own init) or "pytorch" (the AugSelf reference's
#: re-initialisation of every conv / linear with PyTorch's default, ``models.py::reset_parameters``).
INITS: tuple[str, ...] = ("torchvision", "pytorch")
#: small_cnn default widths; a 16-channel full-resolution stem keeps a batch-256 fwd+bwd at 32 px at ~0.2 s on
#: 2 CPU cores (channels_last), against ~0.35 s with a 32-channel stem.
SMALL_CNN_WIDTHS: tuple[int, ...] = (16, 64, 128, 256)


class Backbone(nn.Module):
    """Feature extractor: ``forward(x) -> (B, dim)`` pooled features.

    Attributes:
        net: the wrapped network (its head removed).
        dim: feature dimension.
        name: the name given to :func:`build_backbone`.
        kwargs: the keyword arguments given to :func:`build_backbone` (stored by :func:`save_backbone`).
        meta: plain-data metadata written with the weights (preprocessing, decode mode, pretraining config; see
            :mod:`augself.models.backbone_info`); pretraining fills it, :func:`load_backbone` restores it.
    """

    def __init__(
        self,
        net: nn.Module,
        dim: int,
        name: str,
        kwargs: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.dim = int(dim)
        self.name = name
        self.kwargs = dict(kwargs or {})
        self.meta: dict[str, Any] = dict(meta or {})
        self.meta_format = FORMAT  # the backbone.pt layout it was read from (1: no metadata); set by load_backbone

    @property
    def info(self) -> BackboneInfo:
        """Architecture, preprocessing, decode mode and provenance (:class:`BackboneInfo`); ``None`` where unknown."""
        ckpt = {
            "name": self.name,
            "kwargs": self.kwargs,
            "dim": self.dim,
            "format": self.meta_format,
            "meta": self.meta,
        }
        return info_from_checkpoint(ckpt)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}"


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def small_cnn(in_channels: int = 3, widths: tuple[int, ...] = SMALL_CNN_WIDTHS) -> nn.Sequential:
    """Small fast CNN: 3x3 conv-BN-ReLU blocks, the first at full resolution, each later one with stride 2.

    At 32 px the maps are 32 -> 16 -> 8 -> 4 px; a global average pool gives ``widths[-1]`` features.
    Use ``channels_last`` memory format on CPU (about 1.5x faster).
    """
    layers: list[nn.Module] = []
    cin = in_channels
    for i, w in enumerate(widths):
        layers += _conv_bn_relu(cin, w, stride=1 if i == 0 else 2)
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    return nn.Sequential(*layers)


def _resnet(
    name: str, cifar_stem: bool, zero_init_residual: bool, in_channels: int, init: str = "torchvision", **kw: Any
) -> tuple[nn.Module, int]:
    import torchvision

    net = getattr(torchvision.models, name)(weights=None, zero_init_residual=zero_init_residual, **kw)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if (cifar_stem or in_channels != 3) and init == "torchvision":
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def reset_to_pytorch_default(net: nn.Module) -> None:
    """Re-draw every conv and linear with PyTorch's default init, in ``net.modules()`` order.

    The AugSelf reference does this to every backbone and MLP (``models.py::reset_parameters``, lines 10-20,
    called at line 30): convs get ``Conv2d.reset_parameters()`` (kaiming-uniform with a = sqrt(5), i.e.
    U(+-1/sqrt(fan_in))) instead of torchvision's kaiming-normal (fan_out); linears U(+-1/sqrt(fan_in)) for
    weight and bias, which is ``Linear.reset_parameters()``. Norm layers are untouched, so
    ``zero_init_residual`` survives, as in the reference.
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.reset_parameters()


def _timm(model_name: str, in_channels: int, **kw: Any) -> tuple[nn.Module, int]:
    require("timm", f"backbone 'timm:{model_name}'")  # MissingPackageError (an ImportError) with an install hint
    import timm

    net = timm.create_model(model_name, pretrained=False, num_classes=0, in_chans=in_channels, **kw)
    return net, int(net.num_features)


def build_backbone(
    name: str,
    *,
    cifar_stem: bool = False,
    zero_init_residual: bool = True,
    in_channels: int = 3,
    init: str = "torchvision",
    **kw: Any,
) -> Backbone:
    """Build a randomly initialised backbone by name (see :data:`BACKBONES`).

    Args:
        name: ``"resnet18"``, ``"resnet50"``, ``"small_cnn"`` or ``"timm:<model_name>"``.
        cifar_stem: ResNets only: 3x3 stride-1 conv1 and no max-pool, for 32 px inputs.
        zero_init_residual: ResNets only: zero-init the last BN of each block (AugSelf default, Goyal et al.).
        in_channels: input channels (1 for grayscale data).
        init: ``"torchvision"`` (the network's own init) or ``"pytorch"``: every conv / linear re-drawn with
            PyTorch's default, as in the AugSelf reference (``models.py`` lines 10-20, 30); see
            :func:`reset_to_pytorch_default`. Not stored with the weights (it only affects initialisation).
        **kw: passed to the network constructor (e.g. ``widths`` for ``small_cnn``).
    """
    if init not in INITS:
        raise ValueError(f"unknown backbone init {init!r}; valid: {', '.join(INITS)}")
    kwargs = dict(cifar_stem=cifar_stem, zero_init_residual=zero_init_residual, in_channels=in_channels, **kw)
    if name in ("resnet18", "resnet50"):
        net, dim = _resnet(name, cifar_stem, zero_init_residual, in_channels, init, **kw)
    elif name == "small_cnn":
        if "widths" in kw:
            kw["widths"] = tuple(int(w) for w in kw["widths"])
            kwargs["widths"] = list(kw["widths"])
        net = small_cnn(in_channels, **kw)
        dim = (kw.get("widths") or SMALL_CNN_WIDTHS)[-1]
    elif isinstance(name, str) and name.startswith("timm:") and len(name) > 5:
        net, dim = _timm(name[5:], in_channels, **kw)
    else:
        valid = [b for b in BACKBONES if not b.startswith("timm:")] + ["timm:<model_name>"]
        raise ValueError(unknown_name_message(name, valid, "backbone"))
    if init == "pytorch":
        reset_to_pytorch_default(net)
    return Backbone(net, dim, name, kwargs)


def save_backbone(backbone: Backbone, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
    """Write ``{"name", "kwargs", "state_dict", "dim", "format", "meta"}`` to ``path`` (:func:`load_backbone`).

    ``meta`` (plain data) is merged over ``backbone.meta``; the augself and torch versions are always recorded.
    The layout is documented in :mod:`augself.models.backbone_info`; it loads with ``weights_only=True``.
    """
    if not isinstance(backbone, Backbone):
        raise TypeError(f"save_backbone expects a Backbone (build_backbone), got {type(backbone).__name__}")
    record = plain({**backbone.meta, **(meta or {})})
    record.update(augself_version=__version__, torch_version=str(torch.__version__).split("+")[0])
    state = {k.replace("_orig_mod.", ""): v.detach().cpu() for k, v in backbone.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "name": backbone.name,
        "kwargs": plain(backbone.kwargs, "kwargs"),
        "state_dict": state,
        "dim": backbone.dim,
        "format": FORMAT,
        "meta": record,
    }
    torch.save(ckpt, path)


def load_backbone(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    expect: str | None = None,
    *,
    train: bool = False,
) -> Backbone:
    """Rebuild a backbone written by :func:`save_backbone`: ``load_backbone("run/backbone.pt")``.

    The module comes back in eval mode (frozen-feature use: BatchNorm uses its running statistics); ``train=True``
    returns it in training mode (fine-tuning). Its metadata is ``backbone.meta`` / ``backbone.info``
    (:class:`~augself.models.backbone_info.BackboneInfo`); a file without metadata (older augself) loads with
    ``info.unknown`` naming what it does not record. ``expect`` (optional) is the architecture name the caller
    requires; another one raises ``ValueError``.
    """
    backbone = backbone_from_checkpoint(load_checkpoint_dict(path, map_location), path, expect)
    backbone.train(train)
    return backbone.to(map_location) if isinstance(map_location, str | torch.device) else backbone


def backbone_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike, expect: str | None = None) -> Backbone:
    """Build the backbone a loaded ``backbone.pt`` dict describes (:func:`load_backbone` without the file read).

    The weights and ``meta`` are restored; the module is left in training mode (as built).
    """
    if expect is not None and ckpt["name"] != expect:
        raise ValueError(f"{path} holds a {ckpt['name']!r} backbone, but {expect!r} was expected")
    if str(ckpt["name"]).startswith("custom:"):
        raise ValueError(
            f"{path} holds your own module ({ckpt['name'][7:]}), which augself cannot rebuild by name: build it "
            "yourself and load the weights (augself export gives its own state_dict keys)"
        )
    backbone = build_backbone(ckpt["name"], **ckpt["kwargs"])
    try:
        backbone.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(
            f"{path}: the weights do not fit a {ckpt['name']!r} backbone built with {ckpt['kwargs']} "
            f"(different architecture or a corrupted file): {str(e)[:500]}"
        ) from e
    if isinstance(ckpt.get("meta"), dict):
        backbone.meta = dict(ckpt["meta"])
    backbone.meta_format = int(ckpt.get("format", 1))
    return backbone
