"""The method contract (:class:`augself.methods.contract.Method`): one set of defaults, each method declares only
what differs, the declared names exist, and the trainer calls the hook it names."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from augself.config import ConfigError, load_config
from augself.methods import METHODS, Method
from augself.models import build_backbone
from augself.train.module import PretrainModule
from helpers import TINY_RUN

DECLARED = ("momentum_pairs", "momentum_schedule", "fixed_lr_modules", "views_needed")
SMALL = {"proj_hidden_dim": 16, "proj_dim": 8, "pred_hidden_dim": 8, "queue_size": 16, "num_prototypes": 4}


def build(name: str) -> Method:
    params = inspect.signature(METHODS[name]).parameters
    kwargs = {k: v for k, v in SMALL.items() if k in params}
    backbone = build_backbone("small_cnn", widths=(4, 8))
    return METHODS[name](backbone, num_classes=3, **kwargs)


def test_one_set_of_defaults() -> None:
    """The trainer reads typed class attributes; a method restates none of the defaults."""
    hints = typing.get_type_hints(Method, include_extras=False)
    assert all(typing.get_origin(hints[a]) is typing.ClassVar for a in DECLARED)
    assert (Method.momentum_pairs, Method.momentum_schedule, Method.fixed_lr_modules) == ((), "const", ())
    assert (Method.views_needed, Method.momentum) == (2, 0.0)
    for name, cls in METHODS.items():
        assert issubclass(cls, Method), name
        for attr in DECLARED:
            if attr in vars(cls):
                assert vars(cls)[attr] != getattr(Method, attr), f"{name} restates the default {attr}"
    declared = {n: {a for a in DECLARED if a in vars(c)} for n, c in METHODS.items()}
    assert declared == {
        "simclr": set(),
        "moco": {"momentum_pairs"},
        "byol": {"momentum_pairs", "momentum_schedule"},
        "simsiam": {"fixed_lr_modules"},
        "swav": set(),
        "barlow": set(),
        "vicreg": set(),
        "supervised": {"views_needed"},
        "essl_simclr": set(),
    }
    assert "on_train_step" not in vars(METHODS["swav"])  # the one hook is on_after_backward


@pytest.mark.parametrize("name", sorted(METHODS))
def test_declared_names_exist(name: str) -> None:
    m = build(name)
    assert isinstance(m.backbone, nn.Module)
    assert m.momentum_schedule in ("const", "cosine") and 1 <= m.views_needed <= 2
    for online, target in m.momentum_pairs:
        a, b = getattr(m, online), getattr(m, target)
        assert isinstance(a, nn.Module) and isinstance(b, nn.Module)
        assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
        assert not any(p.requires_grad for p in b.parameters())
    assert (0 < m.momentum < 1) == bool(m.momentum_pairs)
    for sub in m.fixed_lr_modules:
        assert isinstance(getattr(m, sub), nn.Module)


def test_views_needed_is_the_config_check(tmp_path: Path) -> None:
    one_view = [*TINY_RUN, "augment.views=[{}]", f"out={tmp_path}"]
    load_config(None, [*one_view, "method=supervised"])  # its loss needs one view
    with pytest.raises(ConfigError, match=r"method .simclr. needs at least 2 views, augment\.views lists 1"):
        load_config(None, [*one_view, "method=simclr"])


def test_trainer_calls_the_hook_with_the_global_step(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY_RUN, "method=swav", "method_args.freeze_prototypes_iters=5", f"out={tmp_path}"])
    module = PretrainModule(cfg)
    steps: list[int] = []
    module.method.on_after_backward = steps.append  # type: ignore[method-assign]
    module.on_after_backward()
    assert steps == [0]
    swav = PretrainModule(cfg).method
    swav.prototypes.weight.grad = torch.ones_like(swav.prototypes.weight)
    swav.on_after_backward(4)
    assert swav.prototypes.weight.grad is None  # frozen for steps < 5
    swav.prototypes.weight.grad = torch.ones_like(swav.prototypes.weight)
    swav.on_after_backward(5)
    assert swav.prototypes.weight.grad is not None
