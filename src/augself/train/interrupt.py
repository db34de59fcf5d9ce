"""SIGTERM / SIGINT during pretraining: finish the step, save a resumable checkpoint, stop with a non-zero status.

A scheduler's SIGTERM (or Ctrl+C) must never look like a finished run. During training,
:class:`StopOnSignal` replaces the handlers (Lightning's own SIGTERM handler included: it only stops the loop,
and Lightning then exits with status 0) by one that records the signal; at the next step boundary (the start
of the next training batch, where :class:`augself.train.checkpointing.ResumableCheckpoint` saves as well) every
rank agrees to stop, ``last.ckpt`` is written through the atomic path and :class:`TrainingInterrupted` is
raised. ``augself pretrain`` prints its one-line message and exits with ``128 + signal`` (143 for SIGTERM, 130
for SIGINT), the shell convention for a process ended by a signal. A second signal stops at once (the previous
checkpoint is intact). Outside training (data set-up, export) :func:`sigterm_raises` turns SIGTERM into
:class:`TrainingInterrupted` as well, and SIGINT is Python's ``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from augself.train.checkpointing import ResumableCheckpoint

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(BaseException):
    """The run was stopped by a signal; ``exit_code`` is ``128 + signum``.

    A ``BaseException`` like ``KeyboardInterrupt`` (it is not an error of the program or the input), but not a
    subclass of it: Lightning turns a ``KeyboardInterrupt`` into ``sys.exit(1)``.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextlib.contextmanager
def sigterm_raises(last: Path) -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`TrainingInterrupted` (only in the main thread; else a no-op);
    its message says whether ``last`` (the run's ``last.ckpt``) exists to resume from."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if last.is_file():
            left = f"the last checkpoint {last} is intact; continue with --resume"
        else:
            left = "no checkpoint was written; run the same command again to start over"
        raise TrainingInterrupted(signum, f"interrupted by {signal_name(signum)} outside the training steps; {left}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def preserve_signal_handlers() -> Iterator[None]:
    """Restore the SIGTERM / SIGINT handlers on exit (Lightning re-installs its own, and ours, when ``fit`` ends)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


class StopOnSignal(L.Callback):
    """Turns SIGTERM / SIGINT during training into a checkpoint at the next step boundary and
    :class:`TrainingInterrupted` (see the module doc). Place it right after ``checkpoint`` in the callbacks.

    The handlers are installed in ``setup`` (before Lightning forks data-loader workers, which inherit them and
    ignore the signals: only the training process acts on them) and again in ``on_train_start``, replacing the
    SIGTERM handler Lightning registers in between.
    """

    def __init__(self, checkpoint: ResumableCheckpoint) -> None:
        self.checkpoint = checkpoint
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()

    # ---- handlers -----------------------------------------------------------------------------------------
    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked data-loader worker: the training process decides
            return
        if self.received is not None:  # asked twice: stop now
            raise TrainingInterrupted(
                signum,
                f"interrupted by {signal_name(self.received)} and then {signal_name(signum)} before the step "
                f"finished; {self.checkpoint.describe_last()}; continue with --resume",
            )
        self.received = signum

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._pid = os.getpid()
        for signum in SIGNALS:
            previous = signal.signal(signum, self._handler)
            self._previous.setdefault(signum, previous)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)
        self._previous = {}

    # ---- hooks --------------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.received = None
        self._install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        connector = getattr(trainer, "_signal_connector", None)
        if getattr(connector, "received_sigterm", False):  # arrived while Lightning's handler was in place
            self.received = self.received or signal.SIGTERM
            connector.received_sigterm = False  # we stop (and save) instead of Lightning, which would exit 0
        self._install()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # all ranks decide together (a signal may reach only one): one all_reduce
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        signum = self.received if self.received is not None else signal.SIGTERM
        step = trainer.global_step
        if step > 0 and self.checkpoint.last_saved_step != step:
            self.checkpoint.save(trainer)
        self._restore()
        if self.checkpoint.last_saved_step is None:
            raise TrainingInterrupted(
                signum,
                f"interrupted by {signal_name(signum)} before the first training step; no checkpoint was "
                "written, so there is nothing to resume (run the same command again to start over)",
            )
        raise TrainingInterrupted(
            signum,
            f"interrupted by {signal_name(signum)} at step {step}; resumable checkpoint saved to "
            f"{self.checkpoint.last}; continue with --resume",
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()  # a signal after the last step: the run is complete (backbone.pt follows)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()
