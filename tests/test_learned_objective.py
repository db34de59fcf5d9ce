"""The invariance module's loss (InstaAug, issue 16): REINFORCE and entropy terms, the target ramp and the
entropy-bounds controller with exact resume, entropy behaviour on toy problems, one-line config errors."""

from __future__ import annotations

import math

import pytest
import torch

from augself.augment import ViewParams
from augself.augment.learned import LearnedAugment, LearnedDraw, LearnedObjective, parse_learned
from augself.augment.learned.objective import BOUND_FACTOR, BOUND_MAX_STEPS
from augself.config_error import ConfigError


@pytest.fixture(autouse=True)
def _small_conv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy problems' 8-px convolutions run about twice as fast without oneDNN on CPU (same maths)."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)


def draw(logprob: list[float], **entropy: list[float]) -> LearnedDraw:
    return LearnedDraw(
        torch.tensor(logprob, requires_grad=True), {k: torch.tensor(v, requires_grad=True) for k, v in entropy.items()}
    )


# ---- the loss ------------------------------------------------------------------------------------------------
def test_reinforce_and_linear_bonus() -> None:
    """loss = mean_vi sg(l_vi) log p_vi - w mean H; the task loss is detached (no gradient through it)."""
    obj = LearnedObjective(parse_learned({"crop": {"entropy_weight": 0.2, "entropy_bounds": None}}))
    d1, d2 = draw([-1.0, -2.0], crop=[1.0, 2.0]), draw([-0.5, -3.0], crop=[1.0, 2.0])
    l = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss, logs = obj(l, [d1, d2], epoch=0.0)
    want = (1 * -1 + 2 * -2 + 3 * -0.5 + 4 * -3) / 4 - 0.2 * 1.5
    assert math.isclose(float(loss.detach()), want, rel_tol=1e-6)
    loss.backward()
    assert l.grad is None
    torch.testing.assert_close(d1.logprob.grad, torch.tensor([1.0, 2.0]) / 4)
    torch.testing.assert_close(d2.entropy["crop"].grad, torch.full((2,), -0.2 / 4))
    assert math.isclose(float(logs["learned/crop/entropy"]), 1.5) and math.isclose(
        float(logs["learned/crop/weight"]), 0.2, rel_tol=1e-6
    )
    with pytest.raises(ValueError, match="per_sample_loss must have shape"):
        obj(torch.zeros(3, 2), [d1, d2], 0.0)


def test_target_ramps_from_the_first_batch_and_resumes_exactly() -> None:
    """Quadratic penalty w (H - T_t)^2, T_t = r T + (1 - r) H_0, r = epoch / ramp, H_0 = the first call's batch
    entropy (``examples/self-supervised/train.py:144-157``), kept in the state_dict."""
    cfg = parse_learned({"angle": {"entropy_weight": 0.3, "target_entropy": 2.0, "target_ramp_epochs": 10}})
    obj = LearnedObjective(cfg)
    loss, logs = obj(torch.zeros(1, 2), [draw([0.0, 0.0], angle=[0.4, 0.6])], epoch=0.0)
    assert math.isclose(float(logs["learned/angle/target"]), 0.5) and abs(float(loss.detach())) < 1e-12
    loss, logs = obj(torch.zeros(1, 2), [draw([0.0, 0.0], angle=[1.0, 1.0])], epoch=5.0)
    assert math.isclose(float(logs["learned/angle/target"]), 1.25)
    assert math.isclose(float(loss.detach()), 0.3 * (1.0 - 1.25) ** 2, rel_tol=1e-6)
    resumed = LearnedObjective(cfg)
    resumed.load_state_dict(obj.state_dict())
    for epoch in (5.0, 10.0, 30.0):
        assert resumed.target("angle", epoch) == obj.target("angle", epoch)
    assert resumed.target("angle", 30.0) == 2.0


def test_entropy_bounds_controller_follows_the_reference_scheduler() -> None:
    """``InstaAug_module/scheduler.py``: two consecutive epochs out of bounds step the weight (x1.2 below, /1.2
    above) unless the entropy moved toward the bounds by more than 0.005; inside resets; 50 net steps at most."""
    cfg = parse_learned({"crop": {"entropy_weight": 0.2, "entropy_bounds": [3.0, 3.5]}})
    obj = LearnedObjective(cfg)
    steps = [
        (2.0, 0),  # first epoch below: marked only
        (2.0, 1),  # second: x1.2
        (2.1, 0),  # rose by 0.1 > 0.005: hold
        (2.102, 1),  # rose by 0.002: x1.2
        (3.2, 0),  # inside
        (4.0, 0),  # above, marked
        (4.0, -1),  # /1.2
        (3.9, 0),  # fell by 0.1: hold
    ]
    w = 0.2
    for i, (h, step) in enumerate(steps):
        obj.end_epoch({"crop": h})
        w = w * BOUND_FACTOR**step
        assert math.isclose(obj.weight("crop"), w, rel_tol=1e-12), (i, h)
        if i == 3:  # resume mid-way: the copy continues identically
            copy = LearnedObjective(cfg)
            copy.load_state_dict(obj.state_dict())
    for h, _ in steps[4:]:
        copy.end_epoch({"crop": h})
    assert copy.weight("crop") == obj.weight("crop")
    capped = LearnedObjective(cfg)
    for _ in range(2 * BOUND_MAX_STEPS + 10):
        capped.end_epoch({"crop": 1.0})
    assert math.isclose(capped.weight("crop"), 0.2 * BOUND_FACTOR**BOUND_MAX_STEPS, rel_tol=1e-9)


# ---- toy problems: entropy behaves ------------------------------------------------------------------------
def train(raw: dict, task, steps: int = 100, seed: int = 0) -> float:
    """Adam on a LearnedAugment over a fixed batch of 8-px inputs, two views per step; ``task(params, draw)`` -> (B,)
    per-sample loss. Returns the family's mean entropy over the last 30 steps."""
    torch.manual_seed(seed)
    cfg = parse_learned({**raw, "widths": [4, 4, 8, 8]})
    family = cfg.families[0]
    m, obj = LearnedAugment(cfg, 3, 8), LearnedObjective(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=0.06)
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed + 1)
    hs = []
    for step in range(steps):
        d = m.distributions(x)
        draws, losses = [], []
        for _ in range(2):
            p = ViewParams.identity(8)
            draws.append(m.sample_into(d, p, g))
            losses.append(task(p, draws[-1]))
        per_sample = torch.stack(losses)
        extra, logs = obj(per_sample, draws, epoch=step / 10)
        (per_sample.mean() + extra).backward()
        opt.step()
        opt.zero_grad()
        hs.append(float(logs[f"learned/{family}/entropy"]))
    return sum(hs[-30:]) / 30


def angle_task(p: ViewParams, _: LearnedDraw) -> torch.Tensor:
    return p.angle**2  # pulls the range toward 0


def test_larger_target_entropy_widens_the_learned_angle_range() -> None:
    """Loss theta^2 against w (H - T)^2 with H = lo + hi: for lo = hi = a, E theta^2 = a^2 / 3, so the optimum is
    H = 8 w T / (2/3 + 8 w) = 0.923 T at w = 1; the learned width follows the target (within 10 %: Adam noise)."""
    widths = {t: train({"angle": {"entropy_weight": 1.0, "target_entropy": t}}, angle_task) for t in (0.5, 1.5)}
    assert widths[1.5] > widths[0.5] + 0.6
    for t, h in widths.items():
        assert abs(h - 0.923 * t) < 0.1 * t, widths


def test_linear_bonus_widens_the_angle_range_with_its_weight() -> None:
    """Loss theta^2 - w (lo + hi): optimum a = 3 w, H = 6 w (0.3 and 1.2 rad); the range grows with w."""
    widths = {w: train({"angle": {"entropy_weight": w}}, angle_task, steps=150) for w in (0.05, 0.2)}
    assert widths[0.2] > widths[0.05] + 0.5, widths
    assert abs(widths[0.2] - 1.2) < 0.25 and abs(widths[0.05] - 0.3) < 0.1, widths


def test_larger_target_entropy_widens_the_crop_distribution() -> None:
    """Crop (REINFORCE): a per-candidate loss (the nominal side: small crops preferred) against w (H - T)^2; the
    categorical entropy follows the target (max log 17 = 2.83 nats)."""
    grid = [[4, 0.5, 0.0], [1, 1.0, 0.0]]
    side = torch.tensor([0.5] * 16 + [1.0])

    def task(p: ViewParams, d: LearnedDraw) -> torch.Tensor:
        return side[d.crop_index]

    ent = {t: train({"crop": {"grid": grid, "entropy_weight": 1.0, "target_entropy": t}}, task) for t in (0.8, 2.0)}
    assert ent[2.0] > ent[0.8] + 0.8
    for t, h in ent.items():
        assert abs(h - t) < 0.15 * t, ent


# ---- configs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"crop": {"entropy_weight": -0.1}}, "entropy_weight must be >= 0"),
        ({"angle": {"entropy_weight": "x"}}, "entropy_weight must be a number"),
        ({"blur": {}}, "unknown key augment.learned.blur"),
        ({"colour": {}}, "Did you mean .color."),
        ({"crop": {"grid": [[4, 1.5, 0.0]]}}, "side must be in"),
        ({"lr": 1e-4}, "names no augmentation"),
    ],
)
def test_bad_configs_get_one_line(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        parse_learned(raw)
    assert "\n" not in str(err.value)
