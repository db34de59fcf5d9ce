"""SSL methods: one file per method, each a pure loss function plus a short ``nn.Module``.

Every method is built as ``METHODS[name](backbone, **kwargs)`` and called as ``method(views, labels)`` ->
:class:`MethodOutput`. Each subclasses :class:`Method` (:mod:`augself.methods.contract`), whose class attributes
are the properties the trainer reads.
"""

from __future__ import annotations

from typing import Any

from augself.methods.barlow import BarlowTwins, barlow_twins_loss
from augself.methods.byol import BYOL, byol_loss
from augself.methods.contract import Method
from augself.methods.essl_simclr import ESSLSimCLR, essl_info_nce
from augself.methods.moco import MoCo, moco_loss
from augself.methods.momentum import ema_update, momentum_at
from augself.methods.output import MethodOutput
from augself.methods.simclr import SimCLR, simclr_loss
from augself.methods.simsiam import SimSiam, simsiam_loss
from augself.methods.supervised import Supervised, supervised_loss
from augself.methods.swav import SwAV, sinkhorn, swav_loss
from augself.methods.vicreg import VICReg, vicreg_loss
from augself.models.backbones import Backbone
from augself.names import unknown_name_message

METHODS: dict[str, type[Method]] = {
    "simclr": SimCLR,
    "moco": MoCo,
    "byol": BYOL,
    "simsiam": SimSiam,
    "swav": SwAV,
    "barlow": BarlowTwins,
    "vicreg": VICReg,
    "supervised": Supervised,
    "essl_simclr": ESSLSimCLR,
}


def build_method(name: str, backbone: Backbone, **kwargs: Any) -> Method:
    """``METHODS[name](backbone, **kwargs)``; an unknown name raises ``ValueError`` listing the valid ones."""
    if name not in METHODS:
        raise ValueError(unknown_name_message(name, METHODS, "method"))
    return METHODS[name](backbone, **kwargs)


__all__ = [
    "BYOL",
    "METHODS",
    "BarlowTwins",
    "ESSLSimCLR",
    "Method",
    "MethodOutput",
    "MoCo",
    "SimCLR",
    "SimSiam",
    "Supervised",
    "SwAV",
    "VICReg",
    "barlow_twins_loss",
    "build_method",
    "byol_loss",
    "ema_update",
    "essl_info_nce",
    "moco_loss",
    "momentum_at",
    "simclr_loss",
    "simsiam_loss",
    "sinkhorn",
    "supervised_loss",
    "swav_loss",
    "vicreg_loss",
]
