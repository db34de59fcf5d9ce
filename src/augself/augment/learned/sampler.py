"""The invariance module: per-input distributions of the learned augmentations, sampled into the view record.

``LearnedAugment(cfg, in_channels, image_size)`` (InstaAug's ``learnable_invariance``, NingMiao/InstaAug
``InstaAug_module/__init__.py:14-61``): one :class:`~augself.augment.learned.net.InvarianceNet` pass per batch gives
each input's distributions (:meth:`LearnedAugment.distributions`); every view then draws its own values from them
(:meth:`LearnedAugment.sample_into`), overwriting the learned augmentations' fields of the view's
:class:`~augself.augment.params.ViewParams` (crop: ``crop``; angle: ``angle``; colour: ``color`` and
``color_applied``), and returns a :class:`LearnedDraw` (the crop's REINFORCE log-probability and each family's
entropy, both with gradient to the module). Angle and colour values are reparameterised and carry gradient;
:class:`~augself.augment.pipeline.Augmenter` applies them differentiably and stores the record detached.

The families' maths: :mod:`.crop`, :mod:`.angle`, :mod:`.color`. Global-head layout: the crop levels with one cell
(config order), then the angle's two outputs, then two per learned colour factor.

API addition to the shared contract: ``sample_into(..., source_crop=None)`` (keyword, optional): the region of the
original image that the batch shows, so the crop is recorded in the original's frame as the fixed crop is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from augself.augment.learned import angle as angle_fam
from augself.augment.learned import color as color_fam
from augself.augment.learned import crop as crop_fam
from augself.augment.learned.config import LearnedConfig
from augself.augment.learned.net import InvarianceNet
from augself.augment.params import ViewParams
from augself.augment.specs.crop import compose_crop
from augself.augment.specs.registry import RECORD_FIELDS

__all__ = ["LearnedAugment", "LearnedDists", "LearnedDraw"]


@dataclass
class LearnedDraw:
    """What one view's learned draw contributes to the module's loss (:class:`.objective.LearnedObjective`)."""

    logprob: Tensor
    """(B,) log-probability of the discrete choices (the crop); zeros when no family is discrete."""
    entropy: dict[str, Tensor] = field(default_factory=dict)
    """family -> (B,) entropy as the reference defines it (crop: nats; angle, colour: the range widths)."""
    crop_index: Tensor | None = None
    """(B,) the drawn crop candidates (rows of :func:`.crop.candidate_table`); None without a learned crop."""


@dataclass
class LearnedDists:
    """One batch's per-input distributions (with gradient to the module)."""

    input_size: tuple[int, int]
    """(H, W) of the images they were computed from (the crop boxes' frame)."""
    crop_logp: Tensor | None = None
    """(B, K) log-probabilities of the crop candidates."""
    angle_lo: Tensor | None = None
    angle_hi: Tensor | None = None
    """(B,) widths of the angle range in radians: theta ~ U[-lo, hi]."""
    color_lo: Tensor | None = None
    color_hi: Tensor | None = None
    """(B, k) widths of the learned colour factors' ranges (:func:`.color.active_factors`)."""

    def __len__(self) -> int:
        for t in (self.crop_logp, self.angle_lo, self.color_lo):
            if t is not None:
                return int(t.shape[0])
        return 0

    _entropy: dict[str, Tensor] | None = field(default=None, repr=False)

    def entropy(self) -> dict[str, Tensor]:
        """family -> (B,) entropy (see :attr:`LearnedDraw.entropy`); computed once, shared by every view's draw."""
        if self._entropy is not None:
            return self._entropy
        out: dict[str, Tensor] = {}
        if self.crop_logp is not None:
            out["crop"] = crop_fam.crop_entropy(self.crop_logp)
        if self.angle_lo is not None and self.angle_hi is not None:
            out["angle"] = angle_fam.angle_entropy(self.angle_lo, self.angle_hi)
        if self.color_lo is not None and self.color_hi is not None:
            out["color"] = color_fam.color_entropy(self.color_lo, self.color_hi)
        self._entropy = out
        return out


class LearnedAugment(nn.Module):
    """The invariance module (module docstring); ``image_size``: the side the net sees when ``cfg.net_size`` is None
    (every input is resized to it, fixed at construction because the heads' bias maps have its feature sides)."""

    def __init__(self, cfg: LearnedConfig, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        if not cfg.families:
            raise ValueError("LearnedConfig names no augmentation to learn")
        for fam, fld in (("angle", "angle"), ("color", "color")):
            if getattr(cfg, fam) is not None and fld not in RECORD_FIELDS:
                raise ValueError(f"learned {fam}: the view record has no {fld!r} field")
        self.cfg = cfg
        levels: tuple[int, ...] = ()
        n_global = 0
        if cfg.crop is not None:
            table, prior = crop_fam.candidate_table(cfg.crop)
            self.register_buffer("crop_table", table, persistent=False)
            self.register_buffer("crop_prior", prior, persistent=False)
            levels = tuple(n for n, _, _ in cfg.crop.grid if n > 1)
            n_global += sum(1 for n, _, _ in cfg.crop.grid if n == 1)
        self._angle_at = n_global
        if cfg.angle is not None:
            n_global += angle_fam.OUTPUTS
        self._color_at = n_global
        self.color_factors = color_fam.active_factors(cfg.color) if cfg.color is not None else ()
        n_global += 2 * len(self.color_factors)
        self.net = InvarianceNet(cfg.widths, in_channels, cfg.net_size or image_size, levels, n_global)

    @property
    def families(self) -> tuple[str, ...]:
        return self.cfg.families

    def distributions(self, images: Tensor) -> LearnedDists:
        """One net pass on (B, C, H, W) uint8 (0..255) or float (0..1) images -> their distributions."""
        local, glob = self.net(images)
        d = LearnedDists(input_size=(int(images.shape[-2]), int(images.shape[-1])))
        if self.cfg.crop is not None:
            level_logits: list[Tensor] = []
            li = gi = 0
            for n, _, _ in self.cfg.crop.grid:
                if n == 1:
                    assert glob is not None
                    level_logits.append(glob[:, gi : gi + 1])
                    gi += 1
                else:
                    level_logits.append(local[li].flatten(1))
                    li += 1
            d.crop_logp = crop_fam.crop_log_probs(level_logits, self.crop_prior)
        if self.cfg.angle is not None:
            assert glob is not None
            d.angle_lo, d.angle_hi = angle_fam.angle_range(glob[:, self._angle_at : self._angle_at + 2], self.cfg.angle)
        if self.cfg.color is not None:
            assert glob is not None
            k = len(self.color_factors)
            d.color_lo, d.color_hi = color_fam.color_range(
                glob[:, self._color_at : self._color_at + 2 * k], self.cfg.color
            )
        return d

    def sample_into(
        self,
        dists: LearnedDists,
        params: ViewParams,
        generator: torch.Generator | None,
        source_crop: Tensor | None = None,
    ) -> LearnedDraw:
        """Draw every learned family's values into ``params`` (in place) from ``generator``, families in the order
        crop, angle, colour; ``source_crop`` (B, 4): the original-image region the batch shows (the crop is
        recorded in the original's frame; None: the batch is the original). Angle and colour records are float32
        (float64 for a float64 module: gradient checks) and carry gradient."""
        B = len(dists)
        if len(params) != B:
            raise ValueError(f"params are for {len(params)} samples but the distributions for {B}")
        dev = params.device
        logprob: Tensor | None = None
        crop_index: Tensor | None = None
        rec = torch.float64 if self.net.conv1.weight.dtype == torch.float64 else torch.float32
        if self.cfg.crop is not None and dists.crop_logp is not None:
            box, lp, crop_index = crop_fam.sample_crop_boxes(
                dists.crop_logp, self.crop_table, dists.input_size, generator, self.cfg.crop.jitter
            )
            params.crop = compose_crop(box.to(dev), source_crop.to(dev) if source_crop is not None else None)
            logprob = lp
        if self.cfg.angle is not None and dists.angle_lo is not None and dists.angle_hi is not None:
            theta = angle_fam.sample_angle(dists.angle_lo, dists.angle_hi, generator)
            params.angle = theta.to(device=dev, dtype=rec)
        if self.cfg.color is not None and dists.color_lo is not None and dists.color_hi is not None:
            delta = color_fam.sample_delta(dists.color_lo, dists.color_hi, generator)
            params.color = color_fam.color_record(delta, self.cfg.color).to(device=dev, dtype=rec)
            params.color_applied = torch.ones(B, dtype=torch.bool, device=dev)
        entropy = dists.entropy()
        if logprob is None:
            logprob = next(iter(entropy.values())).new_zeros(B)
        return LearnedDraw(logprob=logprob, entropy=entropy, crop_index=crop_index)

    @torch.no_grad()
    def summary(self, images: Tensor) -> dict[str, Tensor]:
        """Per-input inspection values (no gradient, the module's current BN mode), on the images' device:
        ``crop_entropy`` (nats), ``crop_expected_side`` (E[nominal side] as a fraction of the short side),
        ``crop_probs`` (B, K); ``angle_lo_deg`` / ``angle_hi_deg``; ``color_<factor>_lo`` / ``_hi`` (B,)."""
        d = self.distributions(images)
        out: dict[str, Tensor] = {}
        if d.crop_logp is not None:
            p = d.crop_logp.exp()
            out["crop_entropy"] = d.entropy()["crop"]
            out["crop_expected_side"] = p @ self.crop_table[:, 2].to(p)
            out["crop_probs"] = p
        if d.angle_lo is not None and d.angle_hi is not None:
            out["angle_lo_deg"] = torch.rad2deg(d.angle_lo)
            out["angle_hi_deg"] = torch.rad2deg(d.angle_hi)
        if d.color_lo is not None and d.color_hi is not None:
            for k, f in enumerate(self.color_factors):
                out[f"color_{f}_lo"] = d.color_lo[:, k]
                out[f"color_{f}_hi"] = d.color_hi[:, k]
        return out

    def extra_repr(self) -> str:
        return f"families={list(self.families)}, side={self.net.side}"
