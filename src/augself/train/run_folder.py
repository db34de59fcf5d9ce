"""Who may write a run folder: one ``augself pretrain`` at a time, and never over a finished run by accident.

* :class:`RunFolderLock` holds ``<out>/.augself.lock`` (an exclusive ``fcntl.flock`` on a file holding the pid and
  host name) for the whole run. A second writer is refused with :class:`RunFolderBusyError` naming the holder.
  The kernel drops the lock when its process dies (even by ``kill -9``), so a lock file left by a crashed run is
  stale and taken over; where ``flock`` is unavailable, the pid in the file is checked instead (stale when that
  pid no longer exists on this host).
* :func:`existing_run` lists the weights a previous run left (``backbone.pt``, ``checkpoints/*.ckpt``, with its
  ``config.yaml``); :func:`check_new_run` refuses to start over them unless asked to (``--overwrite``), and
  :func:`clear_run` removes exactly the run's files (weights, config, logs) when asked. A ``config.yaml`` without
  any weights (a run stopped before its first checkpoint) protects nothing and is simply replaced.
* Under DDP only the launching process (rank 0) locks and checks: :func:`is_launch_rank_zero`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType

from augself.config import ConfigError

try:
    import fcntl
except ImportError:  # not on Windows: the pid check below is used
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_NAME = ".augself.lock"
#: What a run writes into its folder (``--overwrite`` removes these and nothing else).
RUN_FILES = ("backbone.pt", "learned.pt", "config.yaml", "hparams.yaml", "metrics.csv", "curves.png")
RUN_DIRS = ("tb",)
#: Environment variables that name a non-zero rank in the launchers Lightning supports (its own subprocess
#: launcher sets LOCAL_RANK / NODE_RANK; torchrun RANK / GROUP_RANK; SLURM SLURM_PROCID; LSF JSM_NAMESPACE_RANK).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


class RunFolderBusyError(OSError):
    """Another ``augself pretrain`` holds the run folder."""


def is_launch_rank_zero() -> bool:
    """True unless an environment variable of a distributed launcher names a non-zero rank for this process."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value != "0":
            return False
    return True


def existing_run(out: Path) -> list[str]:
    """The files of a previous run in ``out`` that a new run would overwrite (relative names); empty when the
    folder holds no weights (no ``backbone.pt``, no ``checkpoints/*.ckpt``)."""
    ckpts = out / "checkpoints"
    saved = sorted(f"checkpoints/{p.name}" for p in ckpts.glob("*.ckpt")) if ckpts.is_dir() else []
    if not saved and not (out / "backbone.pt").exists():
        return []
    return [name for name in ("backbone.pt", "config.yaml") if (out / name).exists()] + saved


def check_new_run(out: Path, resume: bool, overwrite: bool) -> None:
    """Raise :class:`ConfigError` (one line) if starting this run would silently replace another one's weights
    (``resume`` together with ``overwrite`` is refused earlier, by :func:`augself.train.run.run_pretrain`)."""
    if resume:
        return
    found = existing_run(out)
    if found and not overwrite:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        how = "pass --resume to continue it, " if "checkpoints/last.ckpt" in found else ""
        raise ConfigError(
            f"{out} already holds a run ({shown}); {how}pass --overwrite to replace it, or choose another --out"
        )


def clear_run(out: Path) -> list[str]:
    """Remove what a previous run wrote into ``out`` (:data:`RUN_FILES`, :data:`RUN_DIRS`, ``checkpoints/*.ckpt``
    and leftover temporary files); other files are kept. Returns the removed names."""
    removed = []
    for name in RUN_FILES:
        if (out / name).is_file():
            (out / name).unlink()
            removed.append(name)
    for name in RUN_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
            removed.append(name + "/")
    ckpts = out / "checkpoints"
    if ckpts.is_dir():
        for p in sorted([*ckpts.glob("*.ckpt"), *ckpts.glob(".*.tmp-*")]):
            p.unlink()
            removed.append(f"checkpoints/{p.name}")
        with contextlib.suppress(OSError):
            ckpts.rmdir()  # only if nothing else is in it
    if removed:
        kept = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
        log.warning(
            "--overwrite: removed %s from %s%s",
            ", ".join(removed),
            out,
            f"; kept {', '.join(kept)} (not written by pretrain)" if kept else "",
        )
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunFolderLock:
    """Exclusive lock on a run folder for the lifetime of one run (a context manager; see the module doc).

    ``acquire`` raises :class:`RunFolderBusyError` with one line naming the holder's pid and host.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunFolderLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _busy(self, holder: str) -> RunFolderBusyError:
        return RunFolderBusyError(
            f"run folder {self.folder} is in use by another augself pretrain ({holder}); wait for it to finish "
            f"or choose another --out (if no such run is alive, delete {self.path})"
        )

    def _holder(self) -> tuple[str, int | None, str]:
        """(description, pid, host) of what the lock file says."""
        try:
            text = self.path.read_text().split()
        except OSError:
            text = []
        pid = int(text[0]) if text and text[0].isdigit() else None
        host = text[1] if len(text) > 1 else "?"
        return (f"pid {pid} on host {host}" if pid is not None else "unknown process"), pid, host

    def acquire(self) -> None:
        """Take the lock (the folder must exist); refuse if another live process holds it."""
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(10):  # retried only when the file was replaced between open and lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
                if not locked:  # flock unsupported here: fall back to the pid in the file
                    self._check_pid()
                # the file may have been removed (released) and recreated by another run meanwhile
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, me.encode())
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return
        raise self._busy(self._holder()[0])

    def _flock(self, fd: int) -> bool:
        """True when locked; False when this file system has no flock; raise when another process holds it."""
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._busy(self._holder()[0]) from None
            return False  # ENOLCK / EOPNOTSUPP: no locking on this file system
        return True

    def _check_pid(self) -> None:
        holder, pid, host = self._holder()
        if pid is None or pid == os.getpid():
            return
        if host != socket.gethostname():
            raise self._busy(holder)  # cannot tell whether it is alive
        if _pid_alive(pid):
            raise self._busy(holder)
        log.info("taking over the stale lock of %s (no such process)", holder)

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still locked: a waiting process then sees a replaced file and retries
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
