"""Pretraining a user's own ``nn.Module``: ``PretrainModule(cfg, backbone=net, feature_dim=D)`` and
``run_pretrain(cfg, backbone=net, feature_dim=D)``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from augself.config import ConfigError, load_config
from augself.models.backbones import Backbone
from augself.train.module import PretrainModule
from augself.train.run import run_pretrain
from helpers import TINY_RUN

SMALL_SIMCLR = ["method=simclr", "method_args.proj_hidden_dim=16", "method_args.proj_dim=8"]


def tiny_net(dim: int = 16) -> nn.Sequential:
    """(N, 3, S, S) -> (N, dim) at any size S."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(8, dim),
    )


class WithDim(nn.Module):
    """A module that declares its feature dimension itself."""

    dim = 12

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_net(12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def config(tmp_path: Path, *over: str):  # type: ignore[no-untyped-def]
    return load_config(None, [*TINY_RUN, *SMALL_SIMCLR, "trainer.epochs=1", f"out={tmp_path / 'run'}", *over])


def test_run_pretrain_trains_a_user_module_and_exports_its_weights(tmp_path: Path) -> None:
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = config(tmp_path, "trainer.max_steps=2", "augself.crop=1.0", "essl.weight=0.5", "essl.hidden_dim=8")
    out = run_pretrain(cfg, backbone=net, feature_dim=16)
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())  # trained in place
    ckpt = torch.load(out / "backbone.pt", map_location="cpu", weights_only=True)
    assert ckpt["dim"] == 16 and ckpt["name"] == "custom:torch.nn.modules.container.Sequential"
    state = ckpt["state_dict"]
    assert set(state) == {f"net.{k}" for k in net.state_dict()}  # the Backbone layout: net.<the module's keys>
    assert all(torch.equal(state[f"net.{k}"], v) for k, v in net.state_dict().items())
    restored = tiny_net()
    restored.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    x = torch.rand(4, 3, 16, 16)
    net = net.to(memory_format=torch.contiguous_format)  # trained channels_last (model.channels_last): same layout
    torch.testing.assert_close(restored.eval()(x), net.eval()(x), rtol=0, atol=0)


def test_module_uses_the_given_module_with_its_dimension(tmp_path: Path) -> None:
    net = tiny_net()
    module = PretrainModule(config(tmp_path, "augself.crop=1.0"), num_classes=4, backbone=net, feature_dim=16)
    backbone = module.method.backbone
    assert isinstance(backbone, Backbone) and backbone.net is net and backbone.dim == 16
    assert module.method.projector[0].in_features == 16 and module.online_probe.in_features == 16
    own = PretrainModule(config(tmp_path), backbone=WithDim())  # feature_dim defaults to its .dim
    assert own.method.backbone.dim == 12 and own.method.projector[0].in_features == 12


def test_dry_run_leaves_the_module_as_it_was(tmp_path: Path) -> None:
    net = tiny_net().train()
    stats = net[1].running_mean.clone(), int(net[1].num_batches_tracked)
    PretrainModule(config(tmp_path), backbone=net, feature_dim=16)
    assert net.training and torch.equal(net[1].running_mean, stats[0])
    assert int(net[1].num_batches_tracked) == stats[1]
    frozen = tiny_net().eval()
    PretrainModule(config(tmp_path), backbone=frozen, feature_dim=16)
    assert not frozen.training


@pytest.mark.parametrize(
    ("backbone", "feature_dim", "over", "message"),
    [
        (tiny_net(), None, [], "backbone Sequential has no .dim attribute: pass feature_dim=<D>"),
        (tiny_net(), 15, [], "must map (2, 3, 16, 16) images to (2, 15) features (feature_dim), got (2, 16)"),
        (WithDim(), 16, [], "feature_dim=16 differs from backbone WithDim.dim=12"),
        (tiny_net(), 0, [], "feature_dim must be a positive int, got 0"),
        (
            nn.Conv2d(1, 4, 3),
            4,
            [],
            "backbone Conv2d failed on a (2, 3, 16, 16) image batch: RuntimeError: ",
        ),
        (  # fits view 0's 16 px but not view 1's 8 px: every view size is checked
            nn.Sequential(nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.Flatten(1), nn.Linear(2 * 8 * 8, 16)),
            16,
            ["augment.views=[{}, {size: 8}]"],
            "failed on a (2, 3, 8, 8) image batch: RuntimeError: mat1 and mat2 shapes cannot be multiplied",
        ),
        (None, 16, [], "feature_dim is only for a user backbone (backbone=...)"),
    ],
    ids=["no-dim", "wrong-dim", "dim-differs", "zero-dim", "forward-fails", "one-view-size-fails", "dim-alone"],
)
def test_bad_backbone_is_one_line(
    tmp_path: Path, backbone: nn.Module | None, feature_dim: int | None, over: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        PretrainModule(config(tmp_path, *over), backbone=backbone, feature_dim=feature_dim)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_run_pretrain_with_a_bad_backbone_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \.dim attribute"):
        run_pretrain(config(tmp_path), backbone=tiny_net())
    assert not (tmp_path / "run").exists()
