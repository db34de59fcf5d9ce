"""``augself export``: a ``backbone.pt`` as a plain ``state_dict`` of the stock torchvision / timm model.

``backbone.pt`` wraps the network (keys ``net.conv1.weight``, ...) and carries augself's metadata; the exported
file holds only the stock model's tensors, so it loads with ``strict=True`` into::

    model = torchvision.models.resnet18()             # resnet50 alike; weights=None: nothing is downloaded
    model.fc = torch.nn.Identity()                     # augself backbones have no classifier (AugSelf models.py)
    # cifar_stem=True only: model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); model.maxpool = nn.Identity()
    model.load_state_dict(torch.load("resnet18.pt", weights_only=True))   # strict
    model.eval()                                       # features = model(x): (B, 512), as load_backbone's

:func:`stock_model` does exactly this from the file's :class:`~augself.models.backbone_info.BackboneInfo`.
Formats (``--format``): ``torchvision`` (resnet18 / resnet50), ``timm`` (``timm:<name>`` backbones, and the
ResNets, whose timm keys are torchvision's: ``timm.create_model(name, num_classes=0)``), ``augself`` (the wrapped
network's own keys, for ``small_cnn``, which has no stock equivalent: it loads into
``augself.models.backbones.small_cnn(in_channels, widths)``), ``auto`` (the first that fits the architecture).
The container follows ``--out``: ``*.safetensors`` is written with the optional ``safetensors`` package (metadata
embedded as JSON under the ``"augself"`` key), anything else with ``torch.save`` plus a ``<out>.json`` sidecar.
Before writing, the export builds the stock model (random weights), loads the tensors with ``strict=True`` and
checks that its eval-mode features equal the backbone's bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from augself.eval.backbone_loading import backbone_file, read_preprocessing
from augself.models.backbone_info import (
    BackboneInfo,
    info_from_checkpoint,
    json_safe,
    load_checkpoint_dict,
    read_backbone_info,
)
from augself.models.backbones import Backbone, backbone_from_checkpoint, build_backbone
from augself.names import unknown_name_message
from augself.optional import require

__all__ = [
    "FORMATS",
    "ExportResult",
    "export_backbone",
    "read_backbone_info",
    "resolve_format",
    "stock_model",
    "stock_state_dict",
]

FORMATS: tuple[str, ...] = ("auto", "torchvision", "timm", "augself")
RESNETS: tuple[str, ...] = ("resnet18", "resnet50")
#: build_backbone keyword arguments that change the ResNet stem, not the torchvision constructor's.
_STEM_KWARGS = ("cifar_stem", "zero_init_residual", "in_channels", "init")


def resolve_format(info: BackboneInfo, fmt: str = "auto") -> str:
    """The concrete format for ``info``'s architecture (``auto``: torchvision for ResNets, timm for ``timm:*``,
    augself for ``small_cnn``); ``ValueError`` (one line) when the architecture has no such stock model."""
    if fmt not in FORMATS:
        raise ValueError(unknown_name_message(fmt, FORMATS, "export format"))
    arch = info.architecture
    is_timm = arch.startswith("timm:")
    if fmt == "auto":
        return "torchvision" if arch in RESNETS else "timm" if is_timm else "augself"
    if fmt == "torchvision" and arch not in RESNETS:
        raise ValueError(
            f"a {arch!r} backbone has no torchvision equivalent (torchvision: {', '.join(RESNETS)}); "
            f"use --format {'timm' if is_timm else 'augself'}"
        )
    if fmt == "timm" and arch not in RESNETS and not is_timm:
        what = "your own module" if arch.startswith("custom:") else "augself's own CPU network"
        raise ValueError(
            f"a {arch!r} backbone has no timm equivalent (it is {what}); use --format augself (its own keys)"
        )
    if fmt == "timm" and arch in RESNETS:
        extra = sorted(set(info.kwargs) - set(_STEM_KWARGS))
        if extra:
            raise ValueError(f"torchvision arguments {extra} have no timm counterpart; use --format torchvision")
    return fmt


def stock_model(info: BackboneInfo | Backbone, fmt: str = "auto") -> nn.Module:
    """The stock model an exported file loads into with ``strict=True``: random weights, eval mode.

    torchvision ResNets get ``fc = Identity`` and, for ``cifar_stem``, a 3x3 stride-1 bias-free ``conv1`` and
    ``maxpool = Identity`` (AugSelf ``models.py::load_backbone``; E-SSL's CIFAR ResNet); ``in_channels != 3`` a
    7x7 stride-2 ``conv1`` with that many inputs. timm models are built with ``num_classes=0`` (no head) and the
    same stem changes. ``augself`` is the network inside :class:`~augself.models.backbones.Backbone`.
    """
    if isinstance(info, Backbone):
        info = info.info
    fmt = resolve_format(info, fmt)
    kw = dict(info.kwargs)
    in_ch = int(kw.get("in_channels", 3))
    cifar = bool(kw.get("cifar_stem", False))
    if fmt == "augself":
        return build_backbone(info.architecture, **kw).net.eval()
    if fmt == "torchvision":
        import torchvision

        net = getattr(torchvision.models, info.architecture)(
            weights=None, **{k: v for k, v in kw.items() if k not in _STEM_KWARGS}
        )
        net.fc = nn.Identity()
    else:
        require("timm", f"export --format timm of a {info.architecture!r} backbone")
        import timm

        if info.architecture.startswith("timm:"):
            extra = {k: v for k, v in kw.items() if k not in _STEM_KWARGS}
            return timm.create_model(
                info.architecture[5:], pretrained=False, num_classes=0, in_chans=in_ch, **extra
            ).eval()
        net = timm.create_model(info.architecture, pretrained=False, num_classes=0, in_chans=in_ch)
    if cifar:
        net.conv1 = nn.Conv2d(in_ch, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_ch != 3 and fmt == "torchvision":
        net.conv1 = nn.Conv2d(in_ch, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net.eval()


def stock_state_dict(backbone: Backbone) -> dict[str, Tensor]:
    """The wrapped network's tensors under its own key names (``net.`` prefix removed), contiguous, on the CPU.

    For torchvision / timm ResNets and ``timm:*`` models these are the stock model's keys (its classifier removed).
    """
    prefix = "net."
    out = {}
    for k, v in backbone.state_dict().items():
        k = k.replace("_orig_mod.", "")
        if not k.startswith(prefix):
            raise ValueError(f"unexpected backbone key {k!r} (expected the {prefix!r} prefix of augself's Backbone)")
        out[k[len(prefix) :]] = v.detach().to("cpu").contiguous()
    return out


def _check_features(backbone: Backbone, model: nn.Module, info: BackboneInfo) -> None:
    """The stock model's eval-mode features equal the backbone's exactly on a seeded random batch."""
    size = min(int(info.size or 32), 64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, int(info.kwargs.get("in_channels", 3)), size, size, generator=g)
    with torch.no_grad():
        want = backbone.eval()(x)
        got = model.eval()(x).flatten(1)
    if got.shape != want.shape or not torch.equal(got, want):
        diff = (got - want).abs().max().item() if got.shape == want.shape else f"shape {tuple(got.shape)}"
        raise ValueError(f"the stock model's features differ from the backbone's (max abs diff {diff}); not exported")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_backbone` wrote."""

    out: Path
    format: str  # torchvision / timm / augself
    container: str  # "torch" / "safetensors"
    stock: str  # how to build the model it loads into, e.g. "torchvision.models.resnet18 (fc = Identity)"
    tensors: int
    sidecar: Path | None
    notes: tuple[str, ...]
    checked: bool = True  # strict load + identical features verified (not possible for a user's own module)

    def summary(self) -> str:
        where = f"; metadata in {self.sidecar}" if self.sidecar else "; metadata embedded (key 'augself')"
        how = "loads with strict=True into" if self.checked else "holds the keys of"
        check = "; features checked identical" if self.checked else "; not checked"
        return (
            f"wrote {self.out}: {self.tensors} tensors, a {self.format} state_dict ({self.container}) that {how} "
            f"{self.stock}{check}{where}"
        )


def _stock_name(info: BackboneInfo, fmt: str) -> str:
    kw = info.kwargs
    stem = "; conv1 = Conv2d(in, 64, 3, 1, 1, bias=False), maxpool = Identity" if kw.get("cifar_stem") else ""
    if fmt == "torchvision":
        return f"torchvision.models.{info.architecture}() with fc = Identity{stem}"
    if fmt == "timm":
        name = info.architecture.removeprefix("timm:")
        return f"timm.create_model({name!r}, num_classes=0){stem}"
    if info.architecture.startswith("custom:"):
        return f"your own {info.architecture.removeprefix('custom:')} module (its state_dict)"
    if info.architecture == "small_cnn":
        args = [f"in_channels={kw['in_channels']}"] if kw.get("in_channels", 3) != 3 else []
        args += [f"widths={kw['widths']}"] if kw.get("widths") else []
        return f"augself.models.backbones.small_cnn({', '.join(args)})"
    return f"augself.models.build_backbone({info.architecture!r}, **kwargs).net"


def _metadata(info: BackboneInfo, fmt: str, src: Path) -> dict[str, Any]:
    """The exported file's self-description: format, the model it loads into, the backbone's metadata."""
    pre: dict[str, Any] | None
    try:  # an older backbone.pt: the run's config.yaml next to it still knows the preprocessing
        p, _ = read_preprocessing(src, ckpt={"meta": {"size": info.size, "mean": info.mean, "std": info.std}})
        pre = {"size": p.size, "mean": list(p.mean), "std": list(p.std), "source": p.source}
    except ValueError:
        pre = None
    return json_safe(
        {
            "augself_export": 1,
            "format": fmt,
            "loads_into": _stock_name(info, fmt),
            "preprocessing": pre,
            "source": str(src),
            "backbone": info.to_dict(),
        }
    )


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    for p in paths:
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a directory; give a file path for --out")
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists; pass --overwrite to replace it")


def export_backbone(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, fmt: str = "auto", overwrite: bool = False
) -> ExportResult:
    """Write the backbone in ``src`` (a ``backbone.pt`` or a run directory) to ``out`` as a plain ``state_dict``.

    Every check (readable backbone, format, optional packages, existing ``out``, stock-model load and features)
    runs before anything is written; the file (and its sidecar) are written through a temporary file +
    ``os.replace``. User errors are ``ValueError`` / ``OSError`` with one-line messages.
    """
    f = backbone_file(src).resolve()
    out = Path(out).expanduser()
    container = "safetensors" if out.suffix == ".safetensors" else "torch"
    sidecar = None if container == "safetensors" else out.with_name(out.name + ".json")
    if out.resolve() == f:
        raise ValueError(f"--out {out} is the backbone file itself; give another path")
    _refuse_existing([out] + ([sidecar] if sidecar else []), overwrite)
    ckpt = load_checkpoint_dict(f)  # ValueError (one line): unreadable, or not a backbone.pt
    fmt = resolve_format(info_from_checkpoint(ckpt, f), fmt)
    if container == "safetensors":
        require("safetensors", f"--out {out.name} (safetensors)")
    if str(ckpt["name"]).startswith("custom:"):
        return _export_custom(ckpt, f, out, container, sidecar)
    backbone = backbone_from_checkpoint(ckpt, f).eval()
    del ckpt
    info = dataclasses.replace(backbone.info, path=f)
    state = stock_state_dict(backbone)
    model = stock_model(info, fmt)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:400]
        raise ValueError(f"the weights do not load into {_stock_name(info, fmt)} with strict=True: {msg}") from None
    _check_features(backbone, model, info)
    meta = _metadata(info, fmt, f)
    order = list(model.state_dict())  # the stock model's key order
    state = {k: state[k] for k in order}
    _write(out, state, meta, container, sidecar)
    notes = []
    if fmt == "augself" and info.architecture == "small_cnn":
        notes.append(
            f"{info.architecture} is augself's own network with no torchvision / timm equivalent: the keys are those "
            f"of {_stock_name(info, fmt)}"
        )
    if info.unknown and meta["preprocessing"] is None:
        notes.append(info.note() or "")
    return ExportResult(out, fmt, container, _stock_name(info, fmt), len(state), sidecar, tuple(notes))


def _export_custom(ckpt: dict[str, Any], f: Path, out: Path, container: str, sidecar: Path | None) -> ExportResult:
    """A user's own module (``custom:<module>.<class>``, pretrained with ``PretrainModule(cfg, backbone=net)``):
    its own keys (``net.`` removed); augself cannot build the class, so nothing is checked."""
    info = info_from_checkpoint(ckpt, f)
    prefix = "net."
    state = {k[len(prefix) :]: v.contiguous() for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if len(state) != len(ckpt["state_dict"]):
        raise ValueError(f"{f}: unexpected state_dict keys (augself's Backbone keys all start with {prefix!r})")
    meta = _metadata(info, "augself", f)
    _write(out, state, meta, container, sidecar)
    name = _stock_name(info, "augself")
    note = f"a custom backbone: the keys are those of {name}; load it with strict=True into an instance of your class"
    return ExportResult(out, "augself", container, name, len(state), sidecar, (note,), checked=False)


def _write(out: Path, state: dict[str, Tensor], meta: dict[str, Any], container: str, sidecar: Path | None) -> None:
    """Temporary files next to the targets, then ``os.replace``; nothing is left behind on failure."""
    missing = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp_side = None if sidecar is None else sidecar.with_name(f".{sidecar.name}.tmp-{os.getpid()}")
    try:
        if container == "safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"format": "pt", "augself": json.dumps(meta, allow_nan=False)})
        else:
            torch.save(state, tmp)
        if tmp_side is not None and sidecar is not None:
            tmp_side.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")
            os.replace(tmp_side, sidecar)
        os.replace(tmp, out)
    except BaseException:
        for p in (tmp, tmp_side):
            if p is not None:
                with contextlib.suppress(OSError):
                    p.unlink()
        for d in missing:  # innermost first: only the folders made here, only when empty
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
