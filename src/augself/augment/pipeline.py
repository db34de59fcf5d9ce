"""The parameter-recording, batched N-view augmentation pipeline.

``Augmenter(cfg)(images, source_crop)`` returns one :class:`View` per configured view: the normalised
image batch and the :class:`ViewParams` that produced it. Op order (SimCLR / AugSelf, Lee et al., NeurIPS
2021, App. A): crop+resize -> flip -> colour jitter (random order per sample, or per batch with
``color_order: batch``) -> grayscale -> blur -> solarize -> rotation -> normalise. Everything runs batched on
the device of the input.

Learned augmentations (InstaAug, issue 16): ``Augmenter(cfg)(images, learned=module)`` with a
:class:`~augself.augment.learned.sampler.LearnedAugment` computes each input's distributions once per batch;
every view first samples its fixed parameters as usual (same draws), then draws the learned families' values from
those distributions with the same generator (:meth:`LearnedAugment.sample_into`), overwriting their record fields.
A view whose record carries gradient (reparameterised angle / colour) is applied on a differentiable path (colour
jitter not in place, no CPU chunking, each later op on its own copy) and its record is stored detached; the image
carries the gradient to the module. ``View.learned`` holds the draw's log-probability and entropies.
Without ``learned`` nothing changes (same draws, same ops, bit-identical views).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from augself.augment import ops
from augself.augment.config import AugmentConfig, ViewConfig
from augself.augment.params import ViewParams
from augself.augment.sample import sample_params
from augself.augment.specs.crop import compose_crop, decompose_crop
from augself.augment.specs.registry import POST_OPS

if TYPE_CHECKING:
    from augself.augment.learned.sampler import LearnedAugment, LearnedDraw

__all__ = ["Augmenter", "View", "check_images", "check_source_crop", "chunk_size", "compose_crop", "decompose_crop"]

CPU_CHUNK_BYTES = 1 << 22
"""On CPU a view is processed in chunks of about this many bytes of output (see :func:`chunk_size`)."""


def chunk_size(batch: int, channels: int, size: int, device: torch.device) -> int:
    """Samples per chunk: the whole batch on accelerators, about ``CPU_CHUNK_BYTES`` of output on CPU.

    Large fresh tensors are slow on CPU (page faults, cache misses); small chunks keep the intermediates of
    the ~50 elementwise ops of a view in cache while each op still runs batched over the chunk.
    """
    if device.type != "cpu":
        return batch
    return max(1, min(batch, CPU_CHUNK_BYTES // (4 * channels * size * size)))


class View(NamedTuple):
    image: Tensor
    """(B, C, S, S) float32, normalised (or in [0, 1] when the view's ``normalize`` is False)."""
    params: ViewParams
    """Per-sample parameters; ``params.crop`` is relative to the *original* image."""
    learned: LearnedDraw | None = None
    """The learned draw of this view (log-probability, entropies; with gradient), None without learned sampling."""


def _crop_resize(images: Tensor, crop: Tensor | None, size: int, flip: Tensor) -> Tensor:
    """:func:`ops.crop_resize` with flip; ``crop`` None: the images already are the crops (scale and flip only)."""
    if crop is None:
        x = images.to(torch.float32, copy=True)
        if images.dtype == torch.uint8:
            x.mul_(1.0 / 255.0)  # as ops.crop_resize scales uint8
        return ops.hflip(x, flip)
    return ops.crop_resize(images, crop, size, flip=flip)


def check_images(images: object) -> Tensor:
    """Validate an image batch: Tensor (B, C, H, W), uint8 or floating, C in {1, 3}."""
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float (0..1), got dtype {images.dtype}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (B, C, H, W), got C={images.shape[1]}")
    if images.shape[0] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(f"images must be non-empty, got shape {tuple(images.shape)}")
    return images


def check_source_crop(source_crop: object, batch: int) -> Tensor | None:
    """Validate ``source_crop``: float (B, 4) [top, left, h, w] fractions with positive h, w."""
    if source_crop is None:
        return None
    if not isinstance(source_crop, Tensor):
        raise ValueError(f"source_crop must be a Tensor of shape ({batch}, 4), got {type(source_crop).__name__}")
    if tuple(source_crop.shape) != (batch, 4):
        raise ValueError(
            f"source_crop must have shape ({batch}, 4) to match the images, got {tuple(source_crop.shape)}"
        )
    if not source_crop.is_floating_point():
        raise ValueError(f"source_crop must be a float tensor of fractions, got dtype {source_crop.dtype}")
    if bool((source_crop[:, 2:] <= 0).any()):
        raise ValueError("source_crop heights and widths must be positive")
    return source_crop


class Augmenter(nn.Module):
    """N-view augmentation with a per-sample parameter record (see module docstring)."""

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else AugmentConfig()
        if not self.cfg.views:
            raise ValueError("AugmentConfig.views must contain at least one ViewConfig")
        for v in self.cfg.views:
            v.validate()

    @classmethod
    def from_views(cls, *views: ViewConfig) -> Augmenter:
        """``Augmenter.from_views(ViewConfig(...), ViewConfig(...))``."""
        return cls(AugmentConfig(views=list(views)))

    @property
    def views(self) -> list[ViewConfig]:
        return self.cfg.views

    @property
    def num_views(self) -> int:
        return len(self.cfg.views)

    def _view(self, view_index: int) -> ViewConfig:
        if not 0 <= view_index < len(self.cfg.views):
            raise ValueError(f"view_index must be in [0, {len(self.cfg.views)}), got {view_index}")
        return self.cfg.views[view_index]

    def sample(
        self,
        view_index: int,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        input_size: tuple[int, int] | None = None,
        source_crop: Tensor | None = None,
    ) -> ViewParams:
        """Sample parameters of view ``view_index``; ``crop`` is relative to the original image, of which the
        input batch shows ``source_crop`` (None: the input is the original)."""
        return sample_params(
            self._view(view_index),
            batch,
            generator=generator,
            device=device if device is not None else "cpu",
            input_size=input_size,
            source_crop=source_crop,
        )

    def apply(self, images: Tensor, params: ViewParams, view_index: int, source_crop: Tensor | None = None) -> Tensor:
        """Apply recorded ``params`` to ``images``; returns the (normalised) float view (B, C, S, S).

        ``params.crop`` is read relative to the original image when ``source_crop`` is given (the recorded
        form), else relative to ``images``.
        """
        images = check_images(images)
        source_crop = check_source_crop(source_crop, images.shape[0])
        if len(params) != images.shape[0]:
            raise ValueError(f"params are for {len(params)} samples but images has {images.shape[0]}")
        crop = decompose_crop(params.crop.to(images.device), source_crop)
        return self._apply_view(images, params.to(images.device), crop, self._view(view_index))

    @staticmethod
    def _apply_view(images: Tensor, p: ViewParams, crop: Tensor | None, cfg: ViewConfig) -> Tensor:
        """``crop`` None: ``images`` already are the crops at ``cfg.size`` (cut in the DataLoader)."""
        B, C = images.shape[:2]
        n = chunk_size(B, C, cfg.size, images.device)
        if n >= B:
            return Augmenter._apply_chunk(images, p, crop, cfg)
        # CPU, large views: samples are grouped by the position of their hue step (ops.hue_slot) and each
        # group is processed in chunks of at most n samples, so every intermediate stays small (in cache, no
        # fresh page-faulting allocations) and colour jitter runs on whole chunks with no subsets to gather
        # and scatter (grayscale and blur stay masked); each finished chunk goes to its rows of the output.
        slot = ops.hue_slot(p.color, p.color_perm, p.color_applied, C)
        order = torch.argsort(slot, stable=True)
        out = torch.empty(B, C, cfg.size, cfg.size, device=images.device, dtype=torch.float32)
        slots, counts = torch.unique_consecutive(slot[order], return_counts=True)
        start = 0
        for s, c in zip(slots.tolist(), counts.tolist(), strict=True):
            for a in range(start, start + c, n):
                idx = order[a : min(a + n, start + c)]
                q = p[idx]
                x = _crop_resize(images.index_select(0, idx), None if crop is None else crop[idx], cfg.size, q.flip)
                if s < 5:  # 5: jitter not applied
                    x = ops.color_jitter_same_slot(x, q.color, q.color_perm, s, cfg.color_saturation_mode)
                out.index_put_((idx,), Augmenter._finish(x, q, cfg))
            start += c
        return out

    @staticmethod
    def _apply_chunk(
        images: Tensor, p: ViewParams, crop: Tensor | None, cfg: ViewConfig, out: Tensor | None = None
    ) -> Tensor:
        # crop + resize + flip in one pass (flip folded into the column indices); x is owned from here on
        x = _crop_resize(images, crop, cfg.size, p.flip)
        x = ops.color_jitter(
            x, p.color, p.color_perm, p.color_applied, inplace=True, saturation=cfg.color_saturation_mode
        )
        return Augmenter._finish(x, p, cfg, out)

    @staticmethod
    def _apply_differentiable(images: Tensor, p: ViewParams, crop: Tensor | None, cfg: ViewConfig) -> Tensor:
        """The view's ops on a path that keeps the gradient of grad-carrying record fields (learned angle / colour):
        one pass over the whole batch, colour jitter not in place, every later op on its own copy once the image
        carries gradient (ops may write into their input, which autograd may have saved), normalisation out of
        place."""
        x = _crop_resize(images, crop, cfg.size, p.flip)
        x = ops.color_jitter(
            x, p.color, p.color_perm, p.color_applied, inplace=False, saturation=cfg.color_saturation_mode
        )
        for spec in POST_OPS:
            x = spec.apply(x.clone() if x.requires_grad else x, p, cfg)  # type: ignore[misc]
        return ops.normalize(x, cfg.mean, cfg.std) if cfg.normalize else x

    @staticmethod
    def _finish(x: Tensor, p: ViewParams, cfg: ViewConfig, out: Tensor | None = None) -> Tensor:
        """The steps after colour jitter, on ``x`` (owned): each spec's op in registry order (grayscale -> blur ->
        solarize -> rotation -> ...) -> normalise (written into ``out`` when given)."""
        for spec in POST_OPS:
            x = spec.apply(x, p, cfg)  # type: ignore[misc]
        if cfg.normalize:
            return ops.normalize(x, cfg.mean, cfg.std, inplace=out is None, out=out)
        return x if out is None else out.copy_(x)

    def forward(
        self,
        images: Tensor,
        source_crop: Tensor | None = None,
        generator: torch.Generator | None = None,
        learned: LearnedAugment | None = None,
    ) -> list[View]:
        """Sample and apply every configured view; ``params.crop`` is composed with ``source_crop``.

        ``learned``: the invariance module; its distributions are computed once from ``images`` and every view's
        learned fields are drawn from them (module docstring)."""
        images = check_images(images)
        B, _, H, W = images.shape
        source_crop = check_source_crop(source_crop, B)
        dists = learned.distributions(images) if learned is not None else None
        out: list[View] = []
        for i, cfg in enumerate(self.cfg.views):
            p = self.sample(i, B, generator=generator, device=images.device, input_size=(H, W), source_crop=source_crop)
            draw = None
            if learned is not None and dists is not None:
                draw = learned.sample_into(dists, p, generator, source_crop=source_crop)
            crop = decompose_crop(p.crop, source_crop)
            if draw is not None and any(v.requires_grad for v in p.as_dict().values()):
                x = self._apply_differentiable(images, p, crop, cfg)
                p = ViewParams(cfg=p.cfg, **{k: v.detach() for k, v in p.as_dict().items()})
            else:
                x = self._apply_view(images, p, crop, cfg)  # uint8 is scaled in the crop
            out.append(View(x, p, draw))
        return out

    def forward_cropped(
        self,
        views: Sequence[Tensor],
        view_crops: Tensor,
        generator: torch.Generator | None = None,
    ) -> list[View]:
        """Views already cut from the whole image and resized in the DataLoader (``data.crop: full_image``).

        ``views[v]``: uint8 or float (B, C, S_v, S_v) at view v's size; ``view_crops``: (B, V, 4) their boxes as
        fractions of the original image, recorded as ``params.crop``. Everything after the crop (flip, jitter, ...)
        is sampled and applied here, batched, exactly as in :meth:`forward` (same draws per view).
        """
        if not isinstance(views, (list, tuple)) or len(views) != self.num_views:
            raise ValueError(f"expected a list of {self.num_views} view batches, got {type(views).__name__}")
        images = [check_images(x) for x in views]
        B = images[0].shape[0]
        if not isinstance(view_crops, Tensor) or tuple(view_crops.shape) != (B, self.num_views, 4):
            shape = tuple(view_crops.shape) if isinstance(view_crops, Tensor) else type(view_crops).__name__
            raise ValueError(f"view_crops must have shape ({B}, {self.num_views}, 4), got {shape}")
        out: list[View] = []
        for i, (x, cfg) in enumerate(zip(images, self.cfg.views, strict=True)):
            if x.shape[0] != B or x.shape[-2:] != (cfg.size, cfg.size):
                raise ValueError(f"view {i} must have shape ({B}, C, {cfg.size}, {cfg.size}), got {tuple(x.shape)}")
            p = self.sample(i, B, generator=generator, device=x.device, input_size=(cfg.size, cfg.size))
            p.crop = view_crops[:, i].to(device=x.device, dtype=torch.float32)
            out.append(View(self._apply_view(x, p, None, cfg), p))
        return out

    def extra_repr(self) -> str:
        return f"views={len(self.cfg.views)}, sizes={[v.size for v in self.cfg.views]}"
