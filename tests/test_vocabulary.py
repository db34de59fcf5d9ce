"""Issue 15, one vocabulary: every name of an augmentation starts with it, the table in docs/augmentations.md is the
generated one, and configs / overrides / checkpoints / backbone files written with the old spellings
(``jitter_p``, ``solarize_p``, ``rotate_p``, ``brightness``, ``augself: {hue}``, ...) still load, as the new names."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from augself.augment.specs.registry import (
    CONFIG_ALIASES,
    DOC_BEGIN,
    DOC_END,
    SPECS,
    TARGET_ALIASES,
    vocabulary_markdown,
)
from augself.config import ConfigError, load_config, to_dict
from augself.config_aliases import ConfigAliasWarning, canonical_config
from helpers import TINY_RUN

DOC = Path(__file__).resolve().parents[1] / "docs" / "augmentations.md"

OLD = {
    "jitter_p": "color_p",
    "brightness": "color_brightness",
    "contrast": "color_contrast",
    "saturation": "color_saturation",
    "hue": "color_hue",
    "saturation_mode": "color_saturation_mode",
    "solarize_p": "sol_p",
    "solarize_threshold": "sol_threshold",
    "rotate_p": "rot_p",
}
"""The spellings before issue 15 (written out here, not derived: the aliases must keep covering them)."""


def test_docs_table_is_the_generated_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split(DOC_BEGIN + "\n")[1].split(DOC_END)[0]
    assert table == vocabulary_markdown(), (
        "docs/augmentations.md is out of date: run python -c "
        "\"from augself.augment.specs.registry import update_vocabulary_doc as u; u('docs/augmentations.md')\""
    )
    for old, new in OLD.items():
        assert f"`{old}` -> `{new}`" in table
    assert "`hue` -> `color_hue` (`augself:` key)" in table


def test_every_old_spelling_is_an_alias_and_every_name_is_prefixed() -> None:
    assert CONFIG_ALIASES == OLD and TARGET_ALIASES == {"hue": "color_hue"}
    for s in SPECS:
        names = [f.name for f in s.config] + [f.name for f in s.record] + [t.name for t in s.targets]
        assert all(n == s.name or n.startswith(s.name + "_") for n in names), (s.name, names)


def _old_spelling(d: dict[str, Any]) -> dict[str, Any]:
    back = {new: old for old, new in OLD.items()}
    return {back.get(k, k): v for k, v in d.items()}


OLD_YAML = """
augself: {crop: 1.0, hue: 0.5}
augment:
  jitter_p: 0.7
  brightness: 0.3
  contrast: 0.2
  saturation: 0.1
  hue: 0.05
  saturation_mode: hsv
  solarize_threshold: [0.5, 0.5]
  rotate_p: 0.25
  views:
    - {solarize_p: 0.1}
    - {solarize_p: 0.3, jitter_p: 0.6}
essl:
  weight: 0.4
  view: {rotate_p: 0.0, solarize_p: 0.0}
"""
NEW_YAML = """
augself: {crop: 1.0, color_hue: 0.5}
augment:
  color_p: 0.7
  color_brightness: 0.3
  color_contrast: 0.2
  color_saturation: 0.1
  color_hue: 0.05
  color_saturation_mode: hsv
  sol_threshold: [0.5, 0.5]
  rot_p: 0.25
  views:
    - {sol_p: 0.1}
    - {sol_p: 0.3, color_p: 0.6}
essl:
  weight: 0.4
  view: {rot_p: 0.0, sol_p: 0.0}
"""


def test_old_spellings_in_a_file_load_as_the_new_names_with_one_warning_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import augself.config_aliases

    monkeypatch.setattr(augself.config_aliases, "_warned", set())  # as in a fresh process
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD_YAML)
    new.write_text(NEW_YAML)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cfg_old = load_config(old, ["augment.jitter_p=0.65"])  # an old-spelling override on top, again
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        cfg_new = load_config(new, ["augment.color_p=0.65"])
    expected = to_dict(cfg_new)
    assert to_dict(cfg_old) == expected
    assert cfg_old.augment.color_p == 0.65 and cfg_old.augself == {"crop": 1.0, "color_hue": 0.5}
    views = cfg_old.augment.build().views
    assert (
        [v.sol_p for v in views] == [0.1, 0.3] and views[1].color_p == 0.6 and views[0].color_saturation_mode == "hsv"
    )
    lines = [str(w.message) for w in seen if issubclass(w.category, ConfigAliasWarning)]
    assert len(lines) == len(set(lines)) == len(OLD) + 1  # every old spelling once, although some appear 2-3 times
    assert "config key 'jitter_p' is the old name of 'color_p'" in "\n".join(lines)
    assert "config key 'augself.hue' is the old name of 'augself.color_hue'" in "\n".join(lines)
    assert not [w for w in quiet if issubclass(w.category, ConfigAliasWarning)]
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        load_config(old)  # the same process reads an old file again (the demo's arms): no second line
    assert not [w for w in again if issubclass(w.category, ConfigAliasWarning)]


def test_both_spellings_of_one_key_is_a_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "both.yaml"
    f.write_text("augment:\n  color_p: 0.5\n  jitter_p: 0.5\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert "\n" not in msg and "augment: both 'jitter_p' and 'color_p'" in msg and str(f) in msg
    with pytest.raises(ConfigError, match=r"augment.views\[1\]: both 'rotate_p' and 'rot_p'"):
        load_config(None, ["augment.views=[{}, {rotate_p: 1.0, rot_p: 1.0}]"])
    with pytest.raises(ConfigError, match="augself: both 'hue' and 'color_hue'"):
        load_config(None, ["augself={hue: 1.0, color_hue: 1.0}"])
    # a base file with the old spelling and a child with the new one is an override, not a conflict
    (tmp_path / "base.yaml").write_text("augment:\n  jitter_p: 0.5\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\naugment:\n  color_p: 0.4\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigAliasWarning)
        assert load_config(child).augment.color_p == 0.4


def test_did_you_mean_knows_the_new_names() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'augment.color_p'\?"):
        load_config(None, ["augment.jiter_p=0.5"])
    with pytest.raises(ConfigError, match=r"Did you mean 'rot_p'\?"):
        load_config(None, ["augment.views=[{rotat_p: 1.0}, {}]"])
    with pytest.raises(ConfigError, match=r"Did you mean 'augment.sol_p'\?"):
        load_config(None, ["augment.sol_pp=0.5"])


def test_canonical_config_leaves_other_shapes_to_the_checks() -> None:
    raw = {"augment": {"views": "nonsense"}, "essl": {"view": [1]}, "augself": None, "data": {"hue": 1}}
    assert canonical_config(raw) == raw  # not mappings where expected: the shape checks report them
    assert canonical_config(["a"]) == ["a"]


# ------------------------------------------------------------------------------------------ stored configs
def _old_style(config: dict[str, Any]) -> dict[str, Any]:
    """A ``to_dict`` config as a run before issue 15 (and before ``sharp``) stored it."""
    aug = {k: v for k, v in _old_spelling(config["augment"]).items() if not k.startswith("sharp_")}
    aug["views"] = [_old_spelling(v) for v in aug["views"]]
    augself = {("hue" if k == "color_hue" else k): v for k, v in config["augself"].items()}
    essl = {**config["essl"], "view": _old_spelling(config["essl"]["view"])}
    return {**config, "augment": aug, "augself": augself, "essl": essl}


def test_resume_compares_an_old_checkpoint_config_equal() -> None:
    from augself.train.checkpointing import check_resume_config

    now = to_dict(load_config(None, ["augself.color_hue=1.0", "augment.views=[{sol_p: 0.2}, {}]", "augment.rot_p=0.5"]))
    saved = _old_style(now)
    assert "jitter_p" in saved["augment"] and "sharp_p" not in saved["augment"] and saved["augself"] == {"hue": 1.0}
    assert check_resume_config({"hyper_parameters": {"config": saved}}, now, None, "last.ckpt") == []
    # a real difference is still refused, named with today's key
    other = to_dict(load_config(None, ["augself.color_hue=1.0", "augment.views=[{sol_p: 0.2}, {}]"]))
    with pytest.raises(ConfigError, match=r"augment.rot_p: 0.5 in the checkpoint, 0.0 now"):
        check_resume_config({"hyper_parameters": {"config": saved}}, other, None, "last.ckpt")
    with pytest.raises(ConfigError, match=r"augment\.sharp_p"):  # a setting added since, not at its default
        check_resume_config(
            {"hyper_parameters": {"config": saved}}, {**now, "augment": {**now["augment"], "sharp_p": 0.5}}, None, "x"
        )


def test_resume_of_a_run_written_with_the_old_names(tmp_path: Path) -> None:
    """End to end: a finished one-epoch run whose checkpoint and config.yaml use the old spellings resumes to two."""
    from augself.train.run import run_pretrain

    out = tmp_path / "run"
    over = [*TINY_RUN, f"out={out}", "augself.crop=1.0", "augself.color_hue=1.0", "augment.rot_p=0.5"]
    run_pretrain(load_config(None, [*over, "trainer.epochs=1"]))
    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    ckpt["hyper_parameters"]["config"] = _old_style(ckpt["hyper_parameters"]["config"])
    torch.save(ckpt, last)
    old_yaml = (out / "config.yaml").read_text().replace("rot_p:", "rotate_p:").replace("color_hue: 1.0", "hue: 1.0")
    (out / "config.yaml").write_text(old_yaml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigAliasWarning)
        cfg = load_config(out / "config.yaml", ["trainer.epochs=2"])  # the old run's own config file
    assert cfg.augment.rot_p == 0.5 and cfg.augself == {"crop": 1.0, "color_hue": 1.0}
    run_pretrain(cfg, resume=True)
    assert torch.load(last, weights_only=False)["global_step"] == 4  # 64 images / 32 per step, two epochs


def test_backbone_file_with_an_old_config_loads(tmp_path: Path) -> None:
    """``backbone.pt`` stores the config as written; an old one (old key names) still loads and evaluates."""
    from augself.eval.backbone_loading import read_preprocessing
    from augself.models.backbone_info import load_checkpoint_dict, read_backbone_info
    from augself.models.backbones import build_backbone, load_backbone, save_backbone

    cfg = to_dict(load_config(None, ["augment.size=24", "augself.color_hue=1.0"]))
    old = _old_style(cfg)
    path = tmp_path / "backbone.pt"
    save_backbone(build_backbone("small_cnn"), path, {"size": 24, "mean": [0.5] * 3, "std": [0.25] * 3, "config": old})
    info = read_backbone_info(path)
    assert info.config is not None and info.config["augment"]["jitter_p"] == 0.8 and info.size == 24
    assert '"jitter_p": 0.8' in info.to_json()  # shown as stored (augself eval / export metadata)
    load_backbone(path)
    pre, _ = read_preprocessing(path, ckpt=load_checkpoint_dict(path))
    assert pre.size == 24
