"""Quiet command-line output: a run prints its data line, batch plan, progress bar and final lines, not Lightning's.

The ``augself`` command runs inside :func:`quiet_output` unless ``--verbose`` is given. It hides

- Lightning's info lines (``GPU available: ...``, ``TPU available: ...``, the LitLogger tip, ``Loading
  `train_dataloader` ...``, ```Trainer.fit` stopped ...``): its loggers (:data:`LIGHTNING_LOGGERS`) are raised to
  WARNING once Lightning is loaded (:func:`quiet_lightning`, called by :func:`augself.train.run.build_trainer`:
  Lightning resets its logger to INFO when it is imported), so its warnings and errors still show;
- the dependency warnings of :data:`KNOWN_WARNINGS` only: each is matched by its category, the start of its
  message and the module it is attributed to (a Lightning module), so augself's own warnings (``skipped 3 corrupt
  image(s)``, ``resuming with a changed setting``) and any unknown warning still show.

Lightning's ``log_every_n_steps`` warning is not hidden but avoided: :func:`augself.train.run.log_interval` caps
the interval to the batches of an epoch. Everything is restored when the context ends.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

LIGHTNING_LOGGERS: tuple[str, ...] = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
"""Lightning's package loggers (the ``lightning`` and the standalone ``pytorch_lightning`` distributions); their
``rank_zero_info`` lines go through these."""


@dataclass(frozen=True)
class KnownWarning:
    """A dependency warning a normal run hides: ``warnings.filterwarnings("ignore", message, category, module)``."""

    message: str
    """Regular expression matched against the start of the warning text."""
    category: type[Warning]
    module: str
    """Regular expression matched against the start of the module the warning is attributed to."""
    why: str
    example: str
    """The text as one Lightning / torch version words it (tests check that the filter matches it)."""
    source: str = "lightning.pytorch.trainer.connectors.data_connector"
    """A module the warning is attributed to (with ``example``: what the tests emit)."""


KNOWN_WARNINGS: tuple[KnownWarning, ...] = (
    KnownWarning(
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        r"(lightning|pytorch_lightning)\.",
        "torch >= 2.10 deprecates LeafSpec, which Lightning's pytree helper still uses; nothing a user can change",
        "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and "
        "treespec.is_leaf()` instead.",
    ),
    KnownWarning(
        r"The '\w+_dataloader' does not have many workers",
        UserWarning,
        r"(lightning|pytorch_lightning)\.",
        "data.num_workers is a config setting the user chose",
        "The 'train_dataloader' does not have many workers which may be a bottleneck. Consider increasing the value "
        "of the `num_workers` argument` to `num_workers=7` in the `DataLoader` to improve performance.",
    ),
    KnownWarning(
        r"(GPU|TPU|HPU|IPU) available but not used",
        UserWarning,
        r"(lightning|pytorch_lightning)\.",
        "trainer.accelerator is a config setting the user chose",
        "GPU available but not used. You can set it by doing `Trainer(accelerator='gpu')`.",
    ),
    KnownWarning(
        r"The `srun` command is available on your system but is not used",
        UserWarning,
        r"(lightning|lightning_fabric|pytorch_lightning)\.",
        "a SLURM hint for interactive jobs; `augself pretrain` runs the same under srun or not",
        "The `srun` command is available on your system but is not used. HINT: If your intention is to run Lightning "
        "on SLURM, prepend your python command with `srun` like so: srun python train.py ...",
    ),
)

_quiet_depth = 0
_saved_levels: dict[str, int] = {}


@contextlib.contextmanager
def quiet_output(verbose: bool = False) -> Iterator[None]:
    """Hide :data:`KNOWN_WARNINGS` and (via :func:`quiet_lightning`) Lightning's info lines, unless ``verbose``."""
    global _quiet_depth
    if verbose:
        yield
        return
    with warnings.catch_warnings():
        for w in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=w.message, category=w.category, module=w.module)
        _quiet_depth += 1
        try:
            yield
        finally:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for name, level in _saved_levels.items():
                    logging.getLogger(name).setLevel(level)
                _saved_levels.clear()


def is_quiet() -> bool:
    """Inside :func:`quiet_output` without ``verbose``."""
    return _quiet_depth > 0


def quiet_lightning() -> None:
    """In quiet mode: Lightning's loggers at WARNING (call once Lightning is imported; undone by the context)."""
    if not is_quiet():
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            _saved_levels.setdefault(name, logger.level)
            logger.setLevel(logging.WARNING)
