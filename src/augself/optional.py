"""Optional packages (``pip install -e '.[timm]'`` etc.): check before use, fail with one line and an install hint.

A missing package is reported before a run creates anything (:func:`augself.preflight.preflight`), as
:class:`MissingPackageError`, which is both a :class:`~augself.config_error.ConfigError` (the CLI: one line, exit
status 2) and an ``ImportError`` (for code that catches that).
"""

from __future__ import annotations

import importlib.util
import sys

from augself.config_error import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {
    "timm": ("timm",),
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "safetensors": ("safetensors",),
}
"""Extra name in ``pyproject.toml`` -> importable modules, any one of which serves (Lightning's TensorBoardLogger
takes ``tensorboard`` or ``tensorboardX``)."""


class MissingPackageError(ConfigError, ImportError):
    """An optional package a setting needs is not installed."""


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it); ``sys.modules[module] = None`` counts as absent."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(extra: str) -> str:
    return f"pip install -e '.[{extra}]' in a clone of augself (or pip install {EXTRAS[extra][0]})"


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingPackageError` naming ``what`` (the setting) unless a module of ``extra`` is installed."""
    if not any(is_installed(m) for m in EXTRAS[extra]):
        raise MissingPackageError(
            f"{what} needs the optional package {EXTRAS[extra][0]}, which is not installed: {install_hint(extra)}"
        )
