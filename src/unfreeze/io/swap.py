"""Replace a folder with a fully written new one so that `kill -9` at any moment loses neither.

Design: a journal plus renames (not a symlink flip). Why not the symlink: the run folder would become a link to a
versioned sibling, which breaks `shutil.rmtree(run_dir)` (refuses symlinks), `cp -r` / zip / rsync of a study
(copies links, not runs) and the first overwrite of an existing real folder (a folder cannot be atomically replaced
by a link). With a journal, ``FINAL`` stays a plain folder and every reader (``(FINAL / "metrics.json").is_file()``,
``runs/*/metrics.json`` globs) works unchanged.

On-disk layout while a swap of ``PARENT/NAME`` is in progress (or after a crash during one)::

    PARENT/NAME/                         the installed folder: the old one, then the new one
    PARENT/.swap/                        exists only while some swap in PARENT is unfinished; flock-ed by swappers
    PARENT/.swap/NAME.journal.json       {"final": "NAME", "incoming": "NAME.<tok>.new", "backup": "NAME.<tok>.old", ...}
    PARENT/.swap/NAME.<tok>.new/         the new folder, moved here first (nobody else writes into it any more)
    PARENT/.swap/NAME.<tok>.old/         the previous NAME, moved aside; deleted once NAME is the new one

``<tok>`` is ``<pid>-<8 hex>``. Everything sits two levels below PARENT, so ``PARENT/*/metrics.json`` never matches
a folder in flight, and nothing is ever named like a user's ``NAME.old``: `swap_dir` / `recover` only ever delete
the backup folder their own journal names.

Steps of `swap_dir(new_dir, PARENT/NAME)` (each followed by a fault point, see `faults.py`):

1. lock ``.swap`` (flock on the folder: concurrent swaps in one PARENT take turns), run `recover` for NAME;
2. write the journal atomically                           -> crash: nothing moved; recover deletes the journal
3. rename new_dir -> .swap/NAME.<tok>.new                 -> crash: recover rolls forward (3, 4, 5)
4. rename NAME -> .swap/NAME.<tok>.old (if NAME exists)   -> crash: NAME is missing until recover rolls forward
5. rename .swap/NAME.<tok>.new -> NAME, fsync both folders -> the new folder is installed (the commit point)
6. delete .swap/NAME.<tok>.old file by file               -> crash: recover finishes the deletion
7. delete the journal, remove ``.swap`` if empty.

What the caller can rely on: after a SIGKILL at any point, ``PARENT/NAME`` is the complete old folder or the complete
new folder, except in the window between steps 4 and 5 where it is missing; `recover(PARENT/NAME)` (which every
`swap_dir` runs first, and which a reader can run before looking) then installs the new one. Once the journal exists
the new folder is the one that wins; a crash before the journal leaves `new_dir` where the caller put it.
Requirements: `new_dir` is complete before the call (the journal is the promise that it is), and it lives on the same
file system as PARENT (renames only, never copies).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from unfreeze.errors import UnfreezeError
from unfreeze.io.atomic import fsync_dir, write_json
from unfreeze.io.faults import fault_point
from unfreeze.io.lock import stale_temp_cleanup

SWAP_AREA = ".swap"
SWAP_FAULT_POINTS = ("swap.start", "swap.journal_written", "swap.new_staged", "swap.old_moved",
                     "swap.new_installed", "swap.removing_old", "swap.old_removed", "swap.journal_removed")
RECOVER_FAULT_POINTS = ("swap.recover.start", "swap.recover.old_moved", "swap.recover.new_installed",
                        "swap.recover.old_removed")
_NO_LOCK_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def journal_path(final_dir: str | Path) -> Path:
    final_dir = Path(final_dir)
    return final_dir.parent / SWAP_AREA / f"{final_dir.name}.journal.json"


@contextmanager
def _swap_area(parent: Path) -> Iterator[Path]:
    """Create and flock ``PARENT/.swap``; on exit remove it if empty (while still holding the lock).

    A process that waited for the lock re-checks that the folder it locked is still the one at that path (the
    previous holder may have removed it) and starts over if not."""
    area = parent / SWAP_AREA
    while True:
        area.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(area, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:  # removed between mkdir and open by a finishing swapper
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in _NO_LOCK_ERRNOS:
                os.close(fd)
                raise
            # No locks on this file system: swaps of one PARENT must not overlap (the study lock sees to that).
        try:
            same = os.stat(area).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield area
    finally:
        try:
            area.rmdir()  # only when empty; leaves it when a crashed swap's journal is still there
        except OSError:
            pass
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """`shutil.rmtree` one entry at a time, with a fault point after each file (so tests can stop it half-way).

    Never follows symlinks: a link inside the backup is removed, not what it points to."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
            fault_point("swap.removing_old")
        for name in dirs:
            full = os.path.join(root, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)


def _recover_locked(area: Path, final_dir: Path) -> str | None:
    """Finish (or undo) an interrupted swap of `final_dir`; the caller holds the ``.swap`` lock."""
    # Journal temp files of swappers killed mid-write; safe at any age: we hold the lock, so no live one is writing.
    stale_temp_cleanup(area, older_than_s=0)
    journal = area / f"{final_dir.name}.journal.json"
    if not journal.is_file():
        return None
    try:
        info = json.loads(journal.read_text(encoding="utf-8"))
        incoming, backup = area / info["incoming"], area / info["backup"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnfreezeError(f"{journal}: unreadable swap journal ({exc}); keep whichever of {final_dir} and the "
                            f"folders in {area} is complete, then delete the journal") from exc
    fault_point("swap.recover.start")
    action = "cleaned up"
    if os.path.lexists(incoming):
        if os.path.lexists(final_dir):
            if os.path.lexists(backup):
                raise UnfreezeError(
                    f"{final_dir} was created after an interrupted swap that still holds the old folder {backup} "
                    f"and the new folder {incoming}; move {final_dir} away and rerun")
            os.rename(final_dir, backup)
            fault_point("swap.recover.old_moved")
        os.rename(incoming, final_dir)
        fsync_dir(final_dir.parent)
        fsync_dir(area)
        fault_point("swap.recover.new_installed")
        action = "rolled forward"
    elif not os.path.lexists(final_dir) and os.path.lexists(backup):
        os.rename(backup, final_dir)  # the new folder is gone (deleted by hand): put the old one back
        fsync_dir(final_dir.parent)
        action = "rolled back"
    if os.path.lexists(backup):
        _remove_tree(backup)
        fault_point("swap.recover.old_removed")
    journal.unlink()
    fsync_dir(area)
    return action


def recover(final_dir: str | Path) -> str | None:
    """Complete an interrupted `swap_dir` of `final_dir`, if any. Idempotent, itself safe to kill at any point.

    Returns None when there was nothing to do, else "rolled forward" (the new folder is now installed), "rolled
    back" (the new folder had vanished, the old one is back) or "cleaned up" (the crash left only leftovers)."""
    final_dir = Path(final_dir)
    if not journal_path(final_dir).is_file():  # cheap common case: no lock, no folder created
        return None
    with _swap_area(final_dir.parent) as area:
        return _recover_locked(area, final_dir)


def readable(final_dir: str | Path) -> Path:
    """Where a reader finds the complete `final_dir`: after a kill mid-swap, `recover` it first (so `predict` and
    `export` never say "not a saved model" between the two renames); where the reader cannot write there
    (read-only copy), the complete new folder the journal names instead. No journal: `final_dir` itself."""
    final_dir = Path(final_dir)
    journal = journal_path(final_dir)
    if not journal.is_file():
        return final_dir
    try:
        recover(final_dir)
        return final_dir
    except (OSError, UnfreezeError):
        try:
            incoming = journal.parent / json.loads(journal.read_text(encoding="utf-8"))["incoming"]
        except (OSError, ValueError, KeyError, TypeError):
            return final_dir
        return incoming if incoming.is_dir() else final_dir


def recover_all(parent: str | Path) -> dict[str, str]:
    """Run `recover` for every interrupted swap inside `parent` (e.g. a study's ``runs/``); {name: action}."""
    area = Path(parent) / SWAP_AREA
    done = {}
    for journal in sorted(area.glob("*.journal.json")) if area.is_dir() else []:
        name = journal.name[: -len(".journal.json")]
        action = recover(Path(parent) / name)
        if action is not None:
            done[name] = action
    return done


def swap_dir(new_dir: str | Path, final_dir: str | Path, flag: str | None = None) -> None:
    """Install the complete folder `new_dir` at `final_dir`, replacing any folder there (see the module docstring).

    `new_dir` is moved (renamed), not copied; on return it no longer exists. Raises `UnfreezeError` when `new_dir` is
    not a folder or sits on another file system than `final_dir`. `flag` (e.g. "--out"): `final_dir` was absent or
    empty when the command checked it, so it must still be at the swap, checked under the swap lock: a second
    process that filled it meanwhile wins and this one raises `UnfreezeError` (naming `flag`), leaving `new_dir`."""
    new_dir, final_dir = Path(new_dir), Path(final_dir)
    if not new_dir.is_dir() or new_dir.is_symlink():
        raise UnfreezeError(f"{new_dir}: not a folder; nothing to install at {final_dir}")
    if os.path.abspath(new_dir) == os.path.abspath(final_dir):
        raise UnfreezeError(f"{new_dir}: cannot replace a folder with itself")
    parent = final_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    if os.stat(new_dir).st_dev != os.stat(parent).st_dev:
        raise UnfreezeError(f"{new_dir} and {final_dir} are on different file systems; stage the new folder next "
                            f"to {final_dir} (a copy across file systems cannot be atomic)")
    with _swap_area(parent) as area:
        _recover_locked(area, final_dir)
        fault_point("swap.start")
        if flag is not None and os.path.lexists(final_dir) and (
                not final_dir.is_dir() or final_dir.is_symlink() or any(final_dir.iterdir())):
            raise UnfreezeError(f"{flag} {final_dir}: was written by another process meanwhile (it was new or empty "
                                f"when this one started); this result was not installed: rerun with another {flag}")
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        incoming = area / f"{final_dir.name}.{token}.new"
        backup = area / f"{final_dir.name}.{token}.old"
        journal = area / f"{final_dir.name}.journal.json"
        write_json(journal, {"version": 1, "final": final_dir.name, "incoming": incoming.name,
                             "backup": backup.name, "source": str(new_dir), "pid": os.getpid()})
        fault_point("swap.journal_written")
        os.rename(new_dir, incoming)
        fsync_dir(area)
        fsync_dir(new_dir.parent)
        fault_point("swap.new_staged")
        if os.path.lexists(final_dir):
            os.rename(final_dir, backup)
            fault_point("swap.old_moved")
        os.rename(incoming, final_dir)
        fsync_dir(parent)
        fsync_dir(area)
        fault_point("swap.new_installed")
        if os.path.lexists(backup):
            _remove_tree(backup)
        fault_point("swap.old_removed")
        journal.unlink()
        fsync_dir(area)
        fault_point("swap.journal_removed")
