"""One process per study folder, and clean-up of what dead processes left behind.

`StudyLock(folder)` takes an OS advisory lock (`fcntl.flock`) on ``<folder>/.lock``. Why flock and not "create a
pid file if absent": the kernel drops a flock when its holder dies in any way (exit, exception, `kill -9`, OOM
killer), so there is never a stale lock to break by hand, and no race between "is the pid alive?" and "take it".
The holder writes one JSON line ``{"pid", "host", "started_at", "command"}`` into the lock file only so that the
second process can say who is in its way; the lock itself is the flock, not the content.

What the caller can rely on:

* `acquire()` never waits: a second process (or a second `StudyLock` on the same folder in the same process) gets
  `LockedError` at once, one line naming the holder's pid, host, start time and command;
* the lock file is never deleted (deleting it would let two processes lock two different files of the same name);
  `release()` empties it, a killed holder leaves its line behind, which the next holder overwrites;
* file systems without flock support: Linux NFS (v3 with lockd, v4) maps flock to byte-range locks that work across
  hosts; where locking is unavailable flock fails with ENOLCK / EOPNOTSUPP and `acquire()` raises
  `LockUnsupportedError` (one line, with the fix), or, with ``allow_unsupported=True``, logs a warning and carries on
  unlocked (`locked` is False). NOT detectable: an NFS mount with ``-o nolock`` (and some FUSE / SMB mounts) accept
  flock but only lock it on the local host; two hosts then both "hold" the lock.
* fork: a child forked without exec (multiprocessing "fork", DataLoader workers) shares the lock; it stays held
  until the parent and such children have all exited. Exec'd children do not inherit it (the fd is O_CLOEXEC).

`stale_temp_cleanup` removes ``.NAME.<pid>.<hex>.tmp`` leftovers (files or staging folders, see `atomic.temp_name`)
whose pid is no longer alive on this host.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

from unfreeze.errors import LockedError, LockUnsupportedError
from unfreeze.io.atomic import TEMP_NAME_RE

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_UNSUPPORTED_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def read_holder(folder: str | Path, wait_s: float = 0.2) -> dict | None:
    """The holder line of ``<folder>/.lock`` as a dict, or None when empty / unreadable.

    A holder writes its line right after taking the lock, so a reader that lost the race by microseconds may see an
    empty file: retry for up to `wait_s` seconds."""
    path = Path(folder) / LOCK_FILE
    deadline = time.monotonic() + wait_s
    while True:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(info, dict):
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _holder_line(command: str | None) -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
                       "command": command if command is not None else shlex.join(sys.argv)}) + "\n"


def locked_message(folder: str | Path, holder: dict | None) -> str:
    if not holder:
        return (f"study folder {folder} is in use by another process (it has not written its pid to "
                f"{Path(folder) / LOCK_FILE} yet); wait for it or stop it")
    command = str(holder.get("command", "?"))
    if len(command) > 200:
        command = command[:197] + "..."
    return (f"study folder {folder} is in use by pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"since {holder.get('started_at', '?')} (command {command}); wait for it or stop it")


class StudyLock:
    """Exclusive, non-blocking, crash-proof lock on a study folder (see the module docstring).

    >>> with StudyLock(study_dir):          # or lock = StudyLock(d).acquire(); ...; lock.release()
    ...     run_the_study()
    """

    def __init__(self, folder: str | Path, command: str | None = None, allow_unsupported: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.command = command
        self.allow_unsupported = allow_unsupported
        self.locked = False  # True while this object holds the flock
        self._fd: int | None = None

    def acquire(self) -> StudyLock:
        """Take the lock or raise `LockedError` at once. Creates the folder if needed. Returns self."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: this StudyLock is already acquired")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(locked_message(self.folder, read_holder(self.folder))) from None
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED_ERRNOS:
                os.close(fd)
                raise
            message = (f"cannot lock study folder {self.folder}: its file system does not support file locks "
                       f"({errno.errorcode.get(exc.errno, exc.errno)}); put the study on a local disk, or make sure "
                       "no other process uses it and turn locking off")
            if not self.allow_unsupported:
                os.close(fd)
                raise LockUnsupportedError(message) from exc
            log.warning("%s; carrying on WITHOUT a lock", message)
            self._fd = fd
            self._write_holder()
            return self
        self._fd = fd
        self.locked = True
        self._write_holder()
        return self

    def _write_holder(self) -> None:
        data = _holder_line(self.command).encode("utf-8")
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError as exc:  # the holder line is informative only; a full disk must not break the lock
            log.warning("could not write holder info to %s: %s", self.path, exc)

    def release(self) -> None:
        """Give the lock back (idempotent). The lock file stays, emptied."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # still holding the lock: nobody else is writing it
        except OSError:
            pass
        try:
            if self.locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self.locked = False
            os.close(fd)

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a dropped lock object must not keep the folder locked until interpreter exit
        try:
            self.release()
        except Exception:  # noqa: BLE001 — never raise from __del__
            pass


def study_running(folder: str | Path) -> str | None:
    """"pid P on host H" when another process holds `folder`'s lock right now, else None. Never blocks, never
    creates the lock file; a holder line left by a killed process does not count (its flock is gone)."""
    if not (Path(folder) / LOCK_FILE).is_file():
        return None
    try:
        StudyLock(folder, command="probe").acquire().release()
    except LockedError:
        holder = read_holder(folder) or {}
        return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    except OSError:
        return None
    return None


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host. Errs towards True (pid 0/negative, no permission to signal)."""
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def stale_temp_cleanup(folder: str | Path, pattern: str = ".*.tmp", older_than_s: float = 60.0) -> list[Path]:
    """Remove leftovers named ``.NAME.<pid>.<hex>.tmp`` in `folder` (matching the glob `pattern`) whose writer died.

    Touches an entry only if all hold: its name carries a pid (`atomic.TEMP_NAME_RE`), that pid is not alive on this
    host, and it was last modified more than `older_than_s` seconds ago. A live writer's temp file is therefore never
    removed. Caveat: pids are per host; on a folder shared by several hosts a remote writer's pid may look dead here.
    The age guard (and holding the `StudyLock`) cover that. Returns what was removed."""
    removed = []
    now = time.time()
    for entry in sorted(Path(folder).glob(pattern)):
        match = TEMP_NAME_RE.match(entry.name)
        if match is None or pid_alive(int(match["pid"])):
            continue
        try:
            st = entry.lstat()
        except FileNotFoundError:
            continue
        if now - st.st_mtime < older_than_s:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except FileNotFoundError:
                continue
        removed.append(entry)
    return removed
