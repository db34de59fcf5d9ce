"""Loop-safe folder walking for the image-folder readers.

Linked folders are followed (a class folder, or a folder inside one, that links to a directory elsewhere on
disk is a legitimate layout), but a walk never enters a directory

* that contains the folder being walked (``class/up -> ..`` or ``x -> .``: a loop that would list every image
  again, under the wrong class, or never end),
* that lies inside another class folder of the same dataset (its images would be labelled twice), or
* whose real directory, identified by ``(st_dev, st_ino)``, was already read.

What was skipped is collected in a :class:`WalkGuard` and reported as one warning with a count and an example.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["WalkGuard", "list_class_dirs", "walk_files"]


def _within(path: str, folder: str) -> bool:
    """True when real path ``path`` is ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # broken link, link loop (ELOOP), permission denied
        return None
    return st.st_dev, st.st_ino


@dataclass
class WalkGuard:
    """State shared by the walks of one dataset: real directories already read and the folders skipped."""

    visited: set[tuple[int, int]] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path as reached, its real path)

    def warn(self, stacklevel: int = 3) -> None:
        """One warning line with the number of skipped folders and the first one (then forget them)."""
        if self.skipped:
            path, real = self.skipped[0]
            warnings.warn(
                f"skipped {len(self.skipped)} linked folder(s) that loop back into the folder being read, lead "
                f"into another class folder or repeat a folder already read (e.g. {path!r} -> {real!r})",
                stacklevel=stacklevel,
            )
            self.skipped.clear()


def walk_files(
    folder: str | os.PathLike[str],
    keep: Callable[[str], bool],
    *,
    guard: WalkGuard | None = None,
    exclude: Sequence[str] = (),
) -> list[str]:
    """Sorted paths of the files below ``folder`` (recursive) whose name passes ``keep``; hidden entries skipped.

    Links are followed except into directories that contain ``folder``, lie inside one of the real paths in
    ``exclude`` or were already read under ``guard`` (see the module docstring). Without ``guard`` the skipped
    folders are reported at once as a warning; with one, the caller calls :meth:`WalkGuard.warn`.
    """
    own = guard is None
    g = guard if guard is not None else WalkGuard()
    top = os.path.realpath(folder)
    top_key = _key(str(folder))
    out: list[str] = []
    if top_key is None:
        return out
    if top_key in g.visited:
        g.skipped.append((str(folder), top))
        if own:
            g.warn()
        return out
    g.visited.add(top_key)
    excluded = [os.path.realpath(e) for e in exclude]
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        entered = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            key = _key(full)
            if key is None:
                continue
            if key in g.visited or _within(top, real) or any(_within(real, e) for e in excluded):
                g.skipped.append((full, real))
                continue
            g.visited.add(key)
            entered.append(d)
        dirnames[:] = entered
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".") and keep(f))
    if own:
        g.warn()
    return sorted(out)


def list_class_dirs(folder: str | os.PathLike[str], guard: WalkGuard | None = None) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder`` (links followed), without those that would loop.

    A sub-folder is left out (and recorded in ``guard``, else warned about) when its real path contains
    ``folder`` (``loop -> .`` or ``-> ..``) or overlaps a sub-folder already kept (``b -> a`` or ``b -> a/x``:
    the same images under two classes). Real folders are kept before links, so a link never displaces the
    folder it points to.
    """
    own = guard is None
    g = guard if guard is not None else WalkGuard()
    base = os.path.realpath(folder)
    try:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []
    kept: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: (e.is_symlink(), e.name)):
        real = os.path.realpath(e.path)
        if _within(base, real) or any(_within(real, r) or _within(r, real) for r in kept.values()):
            g.skipped.append((e.path, real))
            continue
        kept[e.name] = real
    if own:
        g.warn()
    return sorted(kept)
