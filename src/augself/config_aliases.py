"""Old spellings of config keys, rewritten to the current names in one place (issue 15: one vocabulary).

Every view setting is named after its augmentation (``color_p``, ``sol_p``, ``rot_p``, ...; the table is
``docs/augmentations.md``). The older spellings (``jitter_p``, ``solarize_p``, ``rotate_p``, ``brightness``, ...
and the ``augself: {hue: ...}`` key) are declared next to each field in its spec (``ConfigField.aliases``,
``Target.aliases``) and still read: :func:`canonical_config` renames them in a raw (parsed, not yet merged) config
document wherever view settings appear (``augment``, each ``augment.views[i]``, ``essl.view``) and in ``augself``
(and reads the old boolean ``data.reduced_decode`` as ``data.decode``: ``true`` is ``draft``), printing one
``augself: warning:`` line per old spelling and process. A mapping that gives both spellings of one key is a
one-line :class:`ConfigError`. :func:`augself.config.load_config` calls it on every file and override,
:func:`augself.train.checkpointing.check_resume_config` on the config stored in a checkpoint (silently).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from augself.augment.specs.registry import CONFIG_ALIASES, TARGET_ALIASES
from augself.config_error import ConfigError


class ConfigAliasWarning(FutureWarning):
    """An old config key spelling was read (shown once per spelling and process)."""


_warned: set[str] = set()
"""The old spellings already reported by this process (one line each, however many files and overrides use it)."""


def view_aliases() -> dict[str, str]:
    """Old spelling of a view setting -> its current name."""
    return CONFIG_ALIASES


def target_aliases() -> dict[str, str]:
    """Old spelling of an ``augself: {...}`` key -> its current target name."""
    return TARGET_ALIASES


def _rename(mapping: Any, aliases: Mapping[str, str], key: str, where: str, warn: bool) -> Any:
    """``mapping`` with its old keys renamed (a new dict; anything but a dict is returned unchanged)."""
    if not isinstance(mapping, dict) or not any(k in aliases for k in mapping):
        return mapping
    out: dict[Any, Any] = {}
    for k, v in mapping.items():
        new = aliases.get(k, k) if isinstance(k, str) else k
        if new in out or (new != k and new in mapping):
            old = k if new != k else next(a for a, n in aliases.items() if n == new and a in mapping)
            raise ConfigError(
                f"{key}: both {old!r} and {new!r} given{where} ({old!r} is the old name of {new!r}); keep only {new!r}"
            )
        out[new] = v
        section = "augself." if key == "augself" else ""
        if new != k and warn and section + k not in _warned:
            _warned.add(section + k)
            warnings.warn(
                f"config key {section + k!r} is the old name of {section + new!r} and is read as {section + new!r}; "
                "rename it (docs/augmentations.md)",
                ConfigAliasWarning,
                stacklevel=2,
            )
    return out


def canonical_config(raw: Any, where: str = "", *, warn: bool = True) -> Any:
    """A raw config document (a file, an override, a stored config) with old key spellings renamed.

    ``where`` names the source in messages (`` (in file.yaml)``); ``warn=False`` renames silently (stored configs).
    Parts that are not mappings / lists are left for the shape checks that follow.
    """
    if not isinstance(raw, dict):
        return raw
    views, targets = view_aliases(), target_aliases()
    out = dict(raw)
    aug = _rename(out.get("augment"), views, "augment", where, warn)
    if isinstance(aug, dict) and isinstance(aug.get("views"), list):
        aug = {
            **aug,
            "views": [_rename(v, views, f"augment.views[{i}]", where, warn) for i, v in enumerate(aug["views"])],
        }
    if "augment" in out:
        out["augment"] = aug
    essl = out.get("essl")
    if isinstance(essl, dict) and isinstance(essl.get("view"), dict):
        out["essl"] = {**essl, "view": _rename(essl["view"], views, "essl.view", where, warn)}
    if "augself" in out:
        out["augself"] = _rename(out["augself"], targets, "augself", where, warn)
    if isinstance(out.get("data"), dict) and "reduced_decode" in out["data"]:
        out["data"] = _reduced_decode(out["data"], where, warn)
    return out


def _reduced_decode(data: dict[Any, Any], where: str, warn: bool) -> dict[Any, Any]:
    """``data.reduced_decode`` (the boolean that ``data.decode`` replaced) read as ``decode``: ``true`` is ``draft``,
    ``false`` is ``exact``; a ``decode`` given next to it must agree (configs written by augself hold both)."""
    out = dict(data)
    flag = out.pop("reduced_decode")
    if not isinstance(flag, bool):
        raise ConfigError(
            f"data.reduced_decode (the old form of data.decode) must be true or false, got {flag!r}{where}"
        )
    mode = "draft" if flag else "exact"
    if "decode" in out and out["decode"] != mode:
        raise ConfigError(
            f"data: reduced_decode: {str(flag).lower()} (the old spelling of decode: {mode}) and decode: "
            f"{out['decode']} given{where}; keep only decode"
        )
    out["decode"] = mode
    if warn and "data.reduced_decode" not in _warned:
        _warned.add("data.reduced_decode")
        warnings.warn(
            f"config key 'data.reduced_decode' is the old form of 'data.decode' and is read as decode: {mode}; "
            "rename it (docs/preprocessing.md)",
            ConfigAliasWarning,
            stacklevel=2,
        )
    return out
