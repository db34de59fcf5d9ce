"""``augself export`` command line (the work is :func:`augself.export.export_backbone`; see docs/export.md).

Kept apart from :mod:`augself.export` so that building the ``augself`` parser does not import the export code
(start-up policy: :mod:`augself.cli`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_export_command"]

FORMATS: tuple[str, ...] = ("auto", "torchvision", "timm", "augself")  # augself.export.FORMATS


def add_export_command(sub: Any) -> None:
    """Add ``augself export BACKBONE --out FILE [--format ...] [--overwrite]`` to the sub-command parsers."""
    ex = sub.add_parser(
        "export",
        help="write a backbone as a plain torchvision / timm state_dict (.pt or .safetensors)",
        description="Write the backbone of a run (or a backbone.pt) as a plain state_dict that loads with "
        "strict=True into the stock torchvision / timm model (see docs/export.md). *.safetensors output needs the "
        "safetensors package; other names are written with torch.save plus a <out>.json metadata sidecar.",
    )
    ex.add_argument("backbone", metavar="RUN_OR_BACKBONE", help="a run directory or a backbone.pt file")
    ex.add_argument("--out", required=True, help="output file: *.safetensors, else torch.save (e.g. resnet18.pt)")
    ex.add_argument(
        "--format",
        default="auto",
        metavar="{" + ",".join(FORMATS) + "}",
        help="key names of which stock model (default auto: torchvision for resnet18/50, timm for timm:*, "
        "augself for small_cnn)",
    )
    ex.add_argument("--overwrite", action="store_true", help="replace an existing --out (and its sidecar)")
    ex.set_defaults(func=_export_cmd)


def _export_cmd(args: argparse.Namespace) -> None:
    from augself.export import export_backbone  # lazy: export, backbone loading, data + PIL (~0.15 s)

    result = export_backbone(args.backbone, args.out, fmt=args.format, overwrite=args.overwrite)
    print(result.summary())
    for note in result.notes:
        print(f"augself export: note: {note}", file=sys.stderr)
