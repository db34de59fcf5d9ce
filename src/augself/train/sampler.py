"""A seeded shuffling sampler that can resume in the middle of an epoch, and a DataLoader that exposes it.

The data order is a function of ``(seed, epoch)`` only (the same permutation as
``DistributedSampler(num_replicas=1, shuffle=True, seed=seed)``), so a resumed run sees exactly the batches an
uninterrupted run would have seen. With ``keyed=True`` the sampler yields ``(epoch, index)`` pairs instead of
indices (the DataLoader hands them to ``dataset[...]`` unchanged), so a dataset that draws random crops in its
workers can seed them from ``(seed, epoch, index)`` (``FileListDataset`` in ``full_image`` mode, whose
``keyed_by_epoch`` asks for it). :class:`ResumableDataLoader` implements ``state_dict`` / ``load_state_dict``;
Lightning stores that state in its checkpoints (``loops.fit_loop.combined_loader``) and restores it before the
first iterator of the resumed run is created. The position is set by
:class:`augself.train.checkpointing.ResumableCheckpoint` at every batch boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

log = logging.getLogger(__name__)


class ResumableSampler(Sampler[Any]):
    """Random permutation of ``range(n)`` seeded by ``seed + epoch``; the next iterator can start at an offset.

    ``len()`` is always the full epoch length (Lightning counts the already-trained batches itself). ``keyed``:
    yield ``(epoch, index)`` pairs instead of ``index`` (same order).
    """

    def __init__(self, n: int, seed: int = 0, keyed: bool = False) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.keyed = bool(keyed)
        self.epoch = 0
        self.start = 0
        """Samples of ``epoch`` to skip on the next ``iter()`` (set by :meth:`load_state_dict`)."""
        self.position: tuple[int, int] = (0, 0)
        """(epoch, samples consumed by training) at the last batch boundary; what :meth:`state_dict` stores."""

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start; a new epoch always starts at its beginning."""
        if int(epoch) != self.epoch:
            self.epoch, self.start = int(epoch), 0

    def order(self, epoch: int) -> list[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + int(epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[Any]:
        start, self.start = self.start, 0
        rest = self.order(self.epoch)[start:]
        if self.keyed:
            return iter([(self.epoch, i) for i in rest])
        return iter(rest)

    def __len__(self) -> int:
        return self.n

    def state_dict(self) -> dict[str, int]:
        epoch, consumed = self.position
        return {"epoch": epoch, "consumed": consumed, "seed": self.seed, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("n", self.n)) != self.n or int(state.get("seed", self.seed)) != self.seed:
            log.warning(
                "the dataset now has %d images (seed %d) but the checkpoint was written with %s (seed %s); "
                "the interrupted epoch restarts from its beginning, so this resumed run is not identical to "
                "an uninterrupted one",
                self.n,
                self.seed,
                state.get("n"),
                state.get("seed"),
            )
            self.epoch, self.start = int(state["epoch"]), 0
        else:
            self.epoch, self.start = int(state["epoch"]), int(state["consumed"])
        self.position = (self.epoch, self.start)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` whose position Lightning saves and restores."""

    def state_dict(self) -> dict[str, int]:
        assert isinstance(self.sampler, ResumableSampler)
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert isinstance(self.sampler, ResumableSampler)
        self.sampler.load_state_dict(state)
