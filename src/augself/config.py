"""Structured pretraining configuration: YAML files plus ``key.sub=value`` command-line overrides (OmegaConf).

Defaults follow the AugSelf reference (Lee et al., NeurIPS 2021; ``../shared/augself-reference.md`` Sec. 4-5):
SGD momentum 0.9, base lr 0.03 scaled by batch/256, weight decay 5e-4, cosine schedule, batch 256.
AugSelf is switched on by one entry, e.g. ``augself: {crop: 1.0, color: 1.0}``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from augself.augment.config import AugmentConfig, ViewConfig
from augself.augment.learned.config import FAMILIES, LearnedConfig, parse_learned
from augself.augment.targets import TARGETS
from augself.config_aliases import canonical_config
from augself.config_checks import (
    check_shapes,
    check_values,
    check_view,
    coerce_tuples,
    convert_value,
    did_you_mean,
    schema_hints,
)
from augself.config_error import ConfigError
from augself.config_yaml import load_yaml_file, parse_override
from augself.data.folder import CROP_MODES
from augself.essl import rotation_view
from augself.methods import METHODS
from augself.models.backbones import BACKBONES, INITS
from augself.names import check_name
from augself.train.optim import INTERVALS
from augself.train.scaling import BATCH_SCOPES
from augself.trainer_args import flatten_trainer, move_trainer_args

__all__ = ["ConfigError", "PretrainConfig", "learned_config", "load_config", "resolve_learned", "validate"]


@dataclass
class DataConfig:
    name: str = "synthetic"
    """A built-in dataset name (see ``augself.data.registry.DATASETS``) or an ImageFolder path."""
    root: str | None = None
    split: str = "auto"
    """``auto``: ``train`` for built-in / named sets and folders with ``train/``; every image of an un-split folder
    (pretraining uses no labels, so nothing is held out). Other split names (``train``, ``all``, ...) are used as is."""
    size: int = 32
    """Source size: DataLoader workers decode and bring every image to ``size`` x ``size``."""
    n: int = 20000
    """Number of images for generated datasets."""
    num_workers: int = 2
    skip_corrupt: bool = False
    cache_mb: int = 1024
    """Image folders: decode the training set once into an in-memory uint8 cache when it needs at most this
    many MiB (CIFAR-size sets), so workers only index it; 0 = decode every image every epoch."""
    crop: str = "full_image"
    """How pretraining views are cut from variable-size images (image folders and the photo sets of
    ``augself.data.transfer_sets``). ``full_image`` (default, the reference's: torchvision ``ImageFolder`` +
    ``RandomResizedCrop`` on the whole decoded image, AugSelf ``datasets.py`` line 114): each view's crop is drawn
    on the whole original image and cut + resized in the DataLoader workers; ``size`` and the cache are then unused
    for training. ``centre_square``: resize the short side to ``size`` and keep the centred square, crop on the
    device; it never reaches the sides of a non-square image, but equals ``full_image`` on square images (folders
    of CIFAR-like images) and allows the cache. CIFAR / STL-10 / synthetic (fixed-size) always crop on the device."""
    decode: str = "exact"
    """``exact`` (default; what the reference's torchvision loaders do: PIL ``Image.open`` + ``convert("RGB")``, every
    pixel decoded) or ``draft``: JPEGs decoded at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling) where the result still
    covers the needed size (``full_image``: every view's box keeps its output size; ``centre_square``: the short side
    stays >= ``size``). Faster on large photos, different pixels (``docs/preprocessing.md``). Evaluation always
    decodes exactly. The old boolean ``reduced_decode`` is still read (``true``: ``draft``;
    :func:`augself.config_aliases.canonical_config`)."""


@dataclass
class ModelConfig:
    backbone: str = "small_cnn"
    cifar_stem: bool = False
    zero_init_residual: bool = True
    init: str = "torchvision"
    """Conv / linear init: "torchvision" (the network's own) or "pytorch" (every conv and linear re-drawn with
    PyTorch's default, as the AugSelf reference does: ``models.py`` lines 10-20, 30). Paper configs: "pytorch"."""
    channels_last: bool = True
    compile: bool = False


@dataclass
class AugmentSection(ViewConfig):
    """Shared view settings plus per-view overrides (``views[i]`` is merged into view i)."""

    views: list[dict[str, Any]] = field(default_factory=lambda: [{}, {}])
    learned: dict[str, Any] = field(default_factory=dict)
    """Learned per-input augmentations (InstaAug, Miao et al., ICML 2023), e.g. ``{angle: {}}`` or ``{crop: {grid:
    [[8, 0.75, 1.0], [1, 1.0, 1.0]], target_entropy: 3.7, entropy_weight: 0.3}, lr: 1e-4, start_epoch: 50}``: each
    named augmentation's values are drawn from per-input distributions of an invariance module trained with the
    network; the keys and their reference defaults: :mod:`augself.augment.learned.config` (read with
    :func:`learned_config`). Empty: off."""

    def build(self) -> AugmentConfig:
        """One :class:`ViewConfig` per entry of ``views``: the shared settings with the entry's values converted to
        the field types and checked as the shared ones are (``views=[{size: abc}]`` names ``augment.views[0].size``).
        """
        base = {f.name: getattr(self, f.name) for f in fields(ViewConfig)}
        if not isinstance(self.views, list | tuple) or len(self.views) < 1:
            raise ConfigError("augment.views must list at least one view, e.g. [{}, {}] for two views")
        out = []
        for i, over in enumerate(self.views):
            key = f"augment.views[{i}]"
            check_view(over, ViewConfig, key)
            values = {k: convert_value(v, schema_hints(ViewConfig)[k], f"{key}.{k}") for k, v in dict(over).items()}
            try:
                view = ViewConfig(**{**base, **values})
            except ValueError as e:
                raise ConfigError(f"{key}: {e}") from None
            out.append(view)
        return AugmentConfig(views=out)


@dataclass
class ESSLConfig:
    """E-SSL four-fold rotation prediction (Dangovski et al., ICLR 2022): lambda 0.4, a half-size view."""

    weight: float = 0.0
    size: int | None = None
    """Side of the rotation view; default half the view size (16 px for 32-px CIFAR, as in E-SSL)."""
    hidden_dim: int = 2048
    bottleneck_dim: int = 0
    """0: E-SSL's CIFAR-10 head (2048-2048-4); 128: its ImageNet head (2048-2048-128 with LayerNorm-4,
    rdangovs/essl ``imagenet/simclr/main.py`` lines 192-200)."""
    view: dict[str, Any] = field(default_factory=dict)
    """Overrides of view 0's settings for the rotation view, e.g. E-SSL ImageNet's ``{crop_scale: [0.05, 0.14],
    blur_p: 0.1}`` (``imagenet/simclr/main.py`` lines 316-330); see :func:`augself.essl.rotation_view`."""


@dataclass
class OptimConfig:
    name: str = "sgd"
    base_lr: float = 0.03
    """Learning rate at batch 256; the actual lr is base_lr * effective_batch / 256 (Goyal et al., 2017)."""
    scale_lr: bool = True
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    exclude_norm_bias: bool = True
    """No weight decay on normalisation parameters and biases (modern practice, Goyal et al., 2017). The AugSelf
    reference decays every parameter (one ``optim.SGD`` over all of them, ``pretrain.py`` lines 51-53):
    paper configs set false."""
    lr_interval: str = "step"
    """Granularity of the warm-up + cosine lr schedule: "step" (per optimiser step) or "epoch" (constant within
    an epoch; the AugSelf reference's ``CosineAnnealingLR(T_max=epochs)`` stepped at every epoch end,
    ``pretrain.py`` lines 55 and 345-348). Paper configs: "epoch"."""
    ema_interval: str = "step"
    """Granularity of a cosine EMA-momentum schedule (BYOL): "step" (Grill et al., 2020) or "epoch" (the value is
    a function of the 0-based epoch, applied at every step; AugSelf reference ``trainers.py`` line 282).
    Paper configs: "epoch"."""
    betas: tuple[float, float] = (0.9, 0.999)
    lars_eta: float = 0.02


@dataclass
class TrainerConfig:
    epochs: int = 200
    max_steps: int = -1
    batch_size: int = 256
    """Per-device batch size (``batch_scope: device``) or the global one (``batch_scope: global``)."""
    batch_scope: str = "device"
    """"device": ``batch_size`` is per device, the global batch is batch_size x devices x nodes x accumulation;
    "global": ``batch_size`` is the global batch, split evenly over the devices and accumulation steps (as the
    AugSelf reference's ``idist.auto_dataloader`` splits ``--batch-size`` over the GPUs, ``pretrain.py`` 274-279).
    """
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    sync_batchnorm: bool = True
    checkpoint_every_n_epochs: int = 10
    """Keep ``checkpoints/epoch=N.ckpt`` every N epochs (``last.ckpt`` is rewritten at every epoch start)."""
    checkpoint_every_n_steps: int = 0
    """Also rewrite ``last.ckpt`` every N optimizer steps (0 = only at epoch boundaries); bounds the work a
    killed job loses. Each save is atomic (temporary file + ``os.replace``)."""
    log_every_n_steps: int = 10
    loggers: list[str] = field(default_factory=lambda: ["csv"])
    progress_bar: bool = True
    deterministic: bool = False
    """``torch.use_deterministic_algorithms(True)`` (via Lightning): needed for bit-identical GPU runs; slower,
    and an op without a deterministic kernel then raises. CPU runs are deterministic without it."""
    lightning_args: dict[str, Any] = field(default_factory=dict)
    """Any other ``lightning.Trainer`` argument, written ``trainer.<name>`` (``trainer.gradient_clip_val=1.0``):
    checked against the Trainer's signature and passed on (:mod:`augself.trainer_args`)."""


_TRAINER_FIELDS = [f.name for f in fields(TrainerConfig)]


@dataclass
class MonitorConfig:
    every_n_epochs: int = 0
    """Weighted kNN accuracy on a labelled split every N epochs (0 = off)."""
    train_split: str = "train"
    test_split: str = "test"
    max_samples: int = 5000
    k: int = 200
    temperature: float = 0.1
    online_probe: bool = True
    """Train a linear classifier on detached features during pretraining (monitoring only)."""


@dataclass
class PretrainConfig:
    out: str = "runs/pretrain"
    seed: int = 0
    method: str = "simclr"
    method_args: dict[str, Any] = field(default_factory=dict)
    augself: dict[str, float] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentSection = field(default_factory=AugmentSection)
    essl: ESSLConfig = field(default_factory=ESSLConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """Merge the defaults, an optional YAML file and ``key=value`` overrides into a validated config.

    Every user error raises :class:`ConfigError` with one line naming the file / override and the key; YAML and
    overrides are parsed by :mod:`augself.config_yaml` (duplicate keys are errors), and shapes are checked by
    :mod:`augself.config_checks` before OmegaConf sees them, so messages do not depend on the OmegaConf version.
    """
    cfg = _defaults()
    if path is not None:
        cfg = _merge(cfg, _load_yaml(Path(path)), f" (in {path})")
    for o in overrides or []:
        if not isinstance(o, str) or "=" not in o:
            raise ConfigError(f"overrides must look like key=value, got {[o]}")
        raw = canonical_config(parse_override(o), f" (override {o!r})")  # old key spellings (issue 15)
        move_trainer_args(raw, _TRAINER_FIELDS, f" (override {o!r})")
        check_shapes(raw, PretrainConfig, f" (override {o!r})", view_schema=ViewConfig)
        cfg = _merge(cfg, raw, f" (override {o!r})")
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(_omegaconf_message(e, "")) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e) if isinstance(e, ConfigError) else " ".join(str(e).split())) from None
    assert isinstance(obj, PretrainConfig)
    obj.trainer.lightning_args = {k: v for k, v in obj.trainer.lightning_args.items() if v is not None}  # null: unset
    validate(obj)
    return obj


@functools.cache
def _defaults() -> DictConfig:
    """The structured defaults, built once (OmegaConf.merge copies, never changes, its first argument)."""
    return OmegaConf.structured(PretrainConfig)


def _merge(cfg: DictConfig, node: DictConfig | dict[str, Any], where: str) -> DictConfig:
    try:
        merged = OmegaConf.merge(cfg, node if isinstance(node, DictConfig) else OmegaConf.create(node))
    except OmegaConfBaseException as e:
        raise ConfigError(_omegaconf_message(e, where)) from None
    assert isinstance(merged, DictConfig)
    return merged


def _load_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load a YAML config; a top-level ``base: other.yaml`` (relative to the file) is merged underneath."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in _seen:
        raise ConfigError(f"config 'base' cycle through {path}")
    raw = canonical_config(load_yaml_file(path), f" (in {path})")  # old key spellings (issue 15)
    base = raw.pop("base", None)
    move_trainer_args(raw, _TRAINER_FIELDS, f" (in {path})")
    check_shapes(raw, PretrainConfig, f" (in {path})", view_schema=ViewConfig)
    node = _merge(OmegaConf.create(), raw, f" (in {path})")
    if base is None:
        return node
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be the file name of another config, got {base!r}")
    parent = _load_yaml(path.parent / base, (*_seen, path.resolve()))
    return _merge(parent, node, f" (in {path})")


def _schema_fields(full_key: str) -> tuple[str, list[str]]:
    """(parent key, field names under it) for the dotted key of an unknown-key error."""
    parent, cls = "", PretrainConfig
    for part in full_key.split(".")[:-1]:
        tp = schema_hints(cls).get(part)
        if not (isinstance(tp, type) and is_dataclass(tp)):
            break
        parent, cls = f"{parent}.{part}" if parent else part, tp
    return parent, [f.name for f in fields(cls)]


def _omegaconf_message(e: OmegaConfBaseException, where: str) -> str:
    """One line for an OmegaConf error, naming the key and where it came from (a file or an override)."""
    key = getattr(e, "full_key", None) or ""
    if isinstance(e, ConfigKeyError) and key:  # the same message under every OmegaConf version
        parent, valid = _schema_fields(key)
        hint = did_you_mean(key.rsplit(".", 1)[-1], valid, parent + "." if parent else "")
        under = f" in {parent}" if parent else ""
        return f"unknown config key {key!r}{where}; valid keys{under}: {', '.join(valid)}.{hint}"
    lines = str(e).splitlines()
    msg = " ".join(lines[0].split()) if lines else type(e).__name__
    if "$VALUE" in msg or "$KEY" in msg:  # an unformatted OmegaConf template
        msg = "a value could not be converted to the expected type"
    return (f"{key}: {msg}" if key and key not in msg else msg) + where


def resolve_learned(raw: Any) -> LearnedConfig | None:
    """An ``augment.learned`` mapping as a :class:`~augself.augment.learned.config.LearnedConfig`; None (off) when it
    is empty or every augmentation it names is switched off (``augment.learned.crop=null`` / ``false`` on the command
    line turns off a config file's learned crop: OmegaConf merges mappings, so no override can empty one)."""
    if isinstance(raw, dict):
        named = [k for k in raw if k in FAMILIES]
        if named and all(raw[k] is None or raw[k] is False for k in named):
            return None
    return parse_learned(raw)


def learned_config(cfg: PretrainConfig) -> LearnedConfig | None:
    """``cfg.augment.learned`` resolved (:func:`resolve_learned`; None: off)."""
    return resolve_learned(cfg.augment.learned)


def _validate_learned(cfg: PretrainConfig) -> None:
    """``augment.learned``: its own settings (:func:`parse_learned`) and what they need of the rest of the run."""
    learned = learned_config(cfg)
    if learned is None:
        return
    if learned.crop is not None and not METHODS[cfg.method].per_sample_loss:
        with_crop = [n for n, m in METHODS.items() if m.per_sample_loss]
        raise ConfigError(
            f"augment.learned.crop is trained by REINFORCE on each sample's loss, and method {cfg.method!r} has a "
            f"batch-level loss; use one of {', '.join(with_crop)}, or learn only angle / color"
        )


def validate(cfg: PretrainConfig) -> None:
    """Cross-field checks that OmegaConf's type checks cannot express; raises :class:`ConfigError`."""
    try:
        _validate(cfg)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _validate(cfg: PretrainConfig) -> None:
    check_name(cfg.method, METHODS, "method")
    coerce_tuples(cfg)
    if not cfg.model.backbone.startswith("timm:"):
        check_name(cfg.model.backbone, BACKBONES, "backbone")
    for name, lam in cfg.augself.items():
        check_name(name, TARGETS, "AugSelf augmentation")
        if not (lam >= 0 and math.isfinite(lam)):
            raise ConfigError(f"augself.{name} must be a finite number >= 0, got {lam}")
    if not (cfg.essl.weight >= 0 and math.isfinite(cfg.essl.weight)):
        raise ConfigError(f"essl.weight must be a finite number >= 0, got {cfg.essl.weight}")
    check_values(cfg)  # finite numbers, ranges, method_args, views, trainer names (augself.config_checks)
    _validate_learned(cfg)
    if cfg.essl.weight > 0:
        rotation_view(cfg.augment.build().views[0], cfg.essl)
    for key, value, valid in (
        ("data.crop", cfg.data.crop, CROP_MODES),
        ("optim.lr_interval", cfg.optim.lr_interval, INTERVALS),
        ("optim.ema_interval", cfg.optim.ema_interval, INTERVALS),
        ("trainer.batch_scope", cfg.trainer.batch_scope, BATCH_SCOPES),
        ("model.init", cfg.model.init, INITS),
    ):
        if value not in valid:
            raise ConfigError(f"{key} must be one of {', '.join(valid)}, got {value!r}")
    if cfg.trainer.batch_size < 2:
        raise ConfigError(f"trainer.batch_size must be >= 2, got {cfg.trainer.batch_size}")
    t = cfg.trainer
    for name in ("checkpoint_every_n_epochs", "checkpoint_every_n_steps"):
        if getattr(t, name) < 0:
            raise ConfigError(f"trainer.{name} must be >= 0, got {getattr(t, name)}")
    if t.log_every_n_steps < 1:
        raise ConfigError(f"trainer.log_every_n_steps must be >= 1, got {t.log_every_n_steps}")
    if cfg.trainer.epochs < 1 and cfg.trainer.max_steps <= 0:
        raise ConfigError("trainer.epochs must be >= 1 (or set trainer.max_steps)")
    check_name(cfg.optim.name, ("sgd", "lars", "adamw"), "optimizer")
    if cfg.augself and len(cfg.augment.views) < 2:
        raise ConfigError("AugSelf needs at least two views (augment.views)")
    queue = cfg.method_args.get("queue_size")
    if cfg.method == "moco" and queue is not None and int(queue) % cfg.trainer.batch_size:
        raise ConfigError(
            f"method_args.queue_size={queue} must be divisible by trainer.batch_size={cfg.trainer.batch_size}"
        )


def _literal(value: Any) -> Any:
    """Strings escaped so that OmegaConf reads them back as written (``${x}`` is text here, not a reference)."""
    if isinstance(value, str):
        return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_literal(v) for v in value]
    return value


def to_yaml(cfg: PretrainConfig) -> str:
    """The resolved config as YAML that :func:`load_config` reads back to an equal config (``config.yaml``)."""
    return OmegaConf.to_yaml(OmegaConf.create(_literal(to_dict(cfg))))


def to_dict(cfg: PretrainConfig) -> dict[str, Any]:
    """``asdict`` with ``trainer.lightning_args`` listed as ``trainer.<name>`` keys, as written in a config."""
    d = asdict(cfg)
    d["trainer"] = flatten_trainer(d["trainer"])
    return d


def as_dictconfig(cfg: PretrainConfig) -> DictConfig:
    return OmegaConf.structured(cfg)
