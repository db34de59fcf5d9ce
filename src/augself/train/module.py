"""The Lightning module: augmentation on the device inside the step, method loss + AugSelf + E-SSL, and the
learned per-input augmentations of ``augment.learned`` (InstaAug, Miao et al., ICML 2023)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.augment.learned import LearnedAugment, LearnedObjective
from augself.augment.pipeline import Augmenter, View
from augself.augself_head import AugSelf
from augself.config import ConfigError, PretrainConfig, learned_config, to_dict
from augself.essl import RotationPrediction, views_with_essl
from augself.methods import build_method
from augself.methods.momentum import ema_update, momentum_at
from augself.methods.output import MethodOutput
from augself.models.backbones import build_backbone
from augself.models.user_backbone import adopt_backbone
from augself.train.optim import build_optimizer, lr_scheduler_config, module_group, param_groups
from augself.train.scaling import batch_plan

LEARNED_NEEDS_DEVICE_CROP = (
    "augment.learned needs the images on the device: with data.crop=full_image the views of an image folder are cut "
    "in the DataLoader workers before the invariance module could see them; set data.crop=centre_square"
)


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or inf; the message names the step and the loss terms."""


class PretrainModule(L.LightningModule):
    """Any method (``cfg.method``) with optional AugSelf heads (``cfg.augself``) and E-SSL (``cfg.essl``).

    The backbone is ``cfg.model.backbone`` (:func:`build_backbone`), or ``backbone``: any ``nn.Module`` mapping
    ``(N, 3, S, S)`` images to ``(N, feature_dim)`` features (``feature_dim`` defaults to its ``.dim``; checked
    once here by :func:`adopt_backbone`). ``cfg.model.channels_last`` and ``cfg.model.compile`` apply to it; the
    other ``cfg.model`` settings (name, stem, init) describe built-in backbones only.

    With ``cfg.augment.learned`` the invariance module ``self.learned`` (:class:`LearnedAugment`) draws the learned
    augmentations of every view and is trained in the same backward pass: the task loss reaches it pathwise (angle,
    colour) and ``self.learned_objective`` (:class:`LearnedObjective`) adds the crop's REINFORCE term on the method's
    per-sample losses and the entropy terms. Both are submodules, so checkpoints hold them; the module's parameters
    are a group of their own in the optimiser (:func:`augself.train.optim.module_group`).
    """

    def __init__(
        self,
        cfg: PretrainConfig,
        num_classes: int | None = None,
        *,
        backbone: nn.Module | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"config": to_dict(cfg), "num_classes": num_classes})
        self.cfg = cfg
        aug_cfg, self.n_method_views = views_with_essl(cfg)  # the method's views, then E-SSL's rotation view
        self.view_cfgs = aug_cfg.views
        self.augmenter = Augmenter(aug_cfg)
        if backbone is not None:
            backbone = adopt_backbone(backbone, feature_dim, (v.size for v in self.view_cfgs))
        elif feature_dim is not None:
            raise ConfigError("feature_dim is only for a user backbone (backbone=...); built-in ones know theirs")
        else:
            backbone = build_backbone(
                cfg.model.backbone,
                cifar_stem=cfg.model.cifar_stem,
                zero_init_residual=cfg.model.zero_init_residual,
                init=cfg.model.init,
            )
        if cfg.model.channels_last:
            backbone = backbone.to(memory_format=torch.channels_last)
        if cfg.model.compile:
            backbone.compile()
        self.method = build_method(cfg.method, backbone, num_classes=num_classes, **cfg.method_args)
        self.augself = AugSelf(backbone.dim, cfg.augself) if any(v > 0 for v in cfg.augself.values()) else None
        self.essl = (
            RotationPrediction(backbone.dim, cfg.essl.hidden_dim, cfg.essl.weight, cfg.essl.bottleneck_dim)
            if cfg.essl.weight > 0
            else None
        )
        self.online_probe = nn.Linear(backbone.dim, num_classes) if cfg.monitor.online_probe and num_classes else None
        learned = learned_config(cfg)
        self.learned = LearnedAugment(learned, 3, cfg.data.size) if learned is not None else None
        self.learned_objective = LearnedObjective(learned) if learned is not None else None
        self._generator: torch.Generator | None = None
        self._pending_rng: Tensor | None = None
        self.ema_tau: float | None = None
        """EMA coefficient used at the last optimiser step (momentum methods only)."""

    # ---- augmentation RNG (part of the checkpoint so that resumed runs see the same views) -------------
    def generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.cfg.seed * 1000 + self.global_rank)
            if self._pending_rng is not None:
                self._generator.set_state(self._pending_rng)
                self._pending_rng = None
        return self._generator

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._generator is not None:
            checkpoint["augment_rng"] = self._generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("augment_rng")
        self._generator = None

    # ---- the step --------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        # Augmentation in float32 whatever the precision plugin (autocast would give bf16/fp16 pixels)
        cropped = "views" in batch  # data.crop=full_image: crops cut from the whole image in the DataLoader
        device = batch["views"][0].device if cropped else batch["image"].device
        with torch.autocast(device.type, enabled=False):
            gen = self.generator(device)
            if cropped:
                if self.learned is not None:
                    raise ConfigError(LEARNED_NEEDS_DEVICE_CROP)
                views = self.augmenter.forward_cropped(batch["views"], batch["view_crops"], generator=gen)
            else:
                views = self.augmenter(batch["image"], batch.get("source_crop"), generator=gen, learned=self.learned)
        inputs = [v.image for v in views[: self.n_method_views]]
        if self.cfg.model.channels_last:
            inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
        labels = batch.get("label")
        labels = labels if labels is not None and bool((labels >= 0).all()) else None

        out = self.method(inputs, labels)
        loss = out.loss
        logs: dict[str, Tensor] = {"loss/method": out.loss.detach(), **out.logs}
        if self.augself is not None:
            # each view's targets use its own settings (the ViewConfig its record carries)
            aux, aux_logs = self.augself(out.features[0], out.features[1], views[0].params, views[1].params)
            loss = loss + aux
            logs.update(aux_logs)
        if self.essl is not None:
            aux, aux_logs = self.essl(self.method.backbone, views[self.n_method_views].image)
            loss = loss + aux
            logs.update(aux_logs)
        if self.learned_objective is not None:
            aux, aux_logs = self._learned_loss(out, views)
            loss = loss + aux
            logs.update(aux_logs)
        if self.online_probe is not None and labels is not None:
            logits = self.online_probe(out.features[0].detach().float())
            probe_loss = F.cross_entropy(logits, labels)
            loss = loss + probe_loss
            logs["probe/loss"] = probe_loss.detach()
            logs["probe/acc"] = (logits.argmax(1) == labels).float().mean()
        if not torch.isfinite(loss.detach()):
            terms = ", ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
            raise NonFiniteLossError(f"non-finite loss {float(loss):.4g} at step {self.global_step}: {terms}")
        # The keys of one forked ``self.log("train/loss", on_step=True, on_epoch=True)``, split so that only the epoch
        # mean is reduced over DDP ranks (``sync_dist``: every rank's steps, not rank 0's alone) and the per-step
        # value stays this rank's, with no collective each step; one process: the same numbers. ``train/loss`` (the
        # epoch mean) stays a callback metric for user callbacks / checkpoint monitors.
        total = loss.detach()
        self.log("train/loss_step", total, prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/loss_epoch", total, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        self.log("train/loss", total, logger=False, on_step=False, on_epoch=True, sync_dist=True)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, on_step=True, on_epoch=False)
        return loss

    def _learned_loss(self, out: MethodOutput, views: list[View]) -> tuple[Tensor, dict[str, Tensor]]:
        """The invariance module's extra loss on the method's views (E-SSL's rotation view has no per-sample task
        loss); each family's batch entropy is also logged as an epoch mean (``train/learned/<family>/entropy_epoch``,
        reduced over DDP ranks) that :meth:`on_train_epoch_end` hands to the entropy-bounds controller."""
        assert self.learned_objective is not None
        draws = [v.learned for v in views[: self.n_method_views] if v.learned is not None]
        per = out.per_sample
        if per is None:
            if self.learned_objective.cfg.crop is not None:  # config validation refuses this combination
                raise ConfigError(f"method {self.cfg.method!r} gives no per-sample loss for augment.learned.crop")
            per = views[0].image.new_zeros(len(draws), views[0].image.shape[0])  # angle / colour: pathwise only
        draws = draws[: per.shape[0]]
        loss, logs = self.learned_objective(per[: len(draws)], draws, float(self.current_epoch))
        for family in self.learned_objective.families:
            self.log(
                f"train/learned/{family}/entropy_epoch",
                logs[f"learned/{family}/entropy"],
                on_step=False,
                on_epoch=True,
                sync_dist=True,
            )
        return loss, logs

    def on_train_epoch_end(self) -> None:
        """The entropy-bounds controller of the learned augmentations, on the epoch's mean training entropy."""
        if self.learned_objective is None:
            return
        metrics = self.trainer.callback_metrics
        found = {f: f"train/learned/{f}/entropy_epoch" for f in self.learned_objective.families}
        self.learned_objective.end_epoch({f: float(metrics[k]) for f, k in found.items() if k in metrics})

    # ---- momentum encoders, method hooks ---------------------------------------------------------------
    def on_after_backward(self) -> None:
        self.method.on_after_backward(self.global_step)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        pairs = self.method.momentum_pairs
        if pairs:
            if self.cfg.optim.ema_interval == "epoch":  # AugSelf reference, trainers.py line 282
                position, length = self.current_epoch, max(1, self.trainer.max_epochs or 1)
            else:
                position, length = self.global_step, max(1, int(self.trainer.estimated_stepping_batches))
            tau = momentum_at(self.method.momentum, self.method.momentum_schedule, position, length)
            self.ema_tau = tau
            for online, target in pairs:
                ema_update(getattr(self.method, online), getattr(self.method, target), tau)

    # ---- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        o = self.cfg.optim
        lr = batch_plan(self.cfg.trainer, o.base_lr, o.scale_lr, self.trainer.world_size).lr
        fixed = tuple(f"method.{m}" for m in self.method.fixed_lr_modules)
        groups = param_groups(self, o.weight_decay, o.exclude_norm_bias, fixed, ("learned",))
        if self.learned is not None:
            c = self.learned.cfg
            groups.append(module_group(self.learned, c.lr, c.weight_decay, c.start_epoch, c.warmup_epochs))
        opt = build_optimizer(o.name, groups, lr, o.momentum, o.weight_decay, o.betas, o.lars_eta)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        per_epoch = None  # optimiser steps per epoch, for the learned module's per-epoch schedule
        if self.learned is not None:
            batches = self.trainer.num_training_batches  # known once estimated_stepping_batches loaded the data
            per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches) if math.isfinite(batches) else None
        sched = lr_scheduler_config(
            opt, o.lr_interval, total, epochs, o.warmup_epochs, o.min_lr_ratio, steps_per_epoch=per_epoch
        )
        return {"optimizer": opt, "lr_scheduler": sched}
