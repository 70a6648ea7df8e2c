"""Atomic file writes: a reader, a crash or a full disk never leaves half a file under the final name.

Protocol for every file: create a temp file beside the target (same folder, so the rename cannot cross file systems),
let the caller fill it, fsync it, rename it over the target, fsync the folder (so the rename itself survives a power
cut). What the caller can rely on:

* the target holds either its previous content or the complete new content, never a mix, even after `kill -9`
  at any point (see the ``atomic.*`` fault points; leftovers are hidden ``.NAME.<pid>.<hex>.tmp`` files that
  `lock.stale_temp_cleanup` removes once their pid is dead);
* the new file gets the permissions `open()` would have given it: 0o666 minus the process umask (the temp file is
  created with ``os.open(..., 0o666)``, so the kernel applies the umask and any default ACL; `tempfile.mkstemp`
  always gives 0o600);
* a full disk (ENOSPC) or an exhausted quota (EDQUOT) becomes one `DiskFullError` naming the file, the file system
  and its free space; the temp file is removed and the target is untouched.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unfreeze.errors import DiskFullError
from unfreeze.io.faults import fault_point

ATOMIC_FAULT_POINTS = ("atomic.created", "atomic.written", "atomic.synced", "atomic.replaced", "atomic.dir_synced")

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# `.NAME.<pid>.<hex>.tmp`: the pid lets a later process tell a dead writer's leftovers from a live writer's work.
TEMP_NAME_RE = re.compile(r"^\..*\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")


def temp_name(name: str) -> str:
    """A hidden, unique sibling name for `name` that embeds this process's pid (see `TEMP_NAME_RE`).

    The visible part is cut to 150 characters so the result stays under the usual 255-byte name limit."""
    return f".{name[:150]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def mount_point(path: str | Path) -> Path:
    """The mount point of the file system holding `path` (or its nearest existing ancestor)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def disk_full_error(path: str | Path, exc: OSError | None = None) -> DiskFullError:
    """Build the one-line `DiskFullError` for a write of `path` that failed with ENOSPC / EDQUOT."""
    where = mount_point(path)
    try:
        free_mb = shutil.disk_usage(where).free // (1024 * 1024)
        free = f"{free_mb} MB free"
    except OSError:
        free = "free space unknown"
    what = "disk quota exceeded" if exc is not None and exc.errno == errno.EDQUOT else "disk full"
    return DiskFullError(f"{what} while writing {path}: free space on {where} ({free}) and rerun; "
                         "nothing finished was changed")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS


def fsync_dir(folder: str | Path) -> None:
    """Make renames / creations / deletions inside `folder` durable. No-op where folders cannot be fsynced."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems (and macOS for some) refuse fsync on a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flush `path`'s data to disk (the caller may have closed its own handle already)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except PermissionError:  # created unreadable (umask 0o4xx): flush everything instead
        os.sync()
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by the set-and-restore dance."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _create_temp(path: Path, mode: int) -> Path:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / temp_name(path.name)
        try:
            fd = os.open(tmp, flags, mode)  # the kernel applies the umask, exactly as for open(path, "w")
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temp file beside {path}")


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o666) -> Iterator[Path]:
    """Yield an empty temp path beside `path`; when the block ends without error, it replaces `path` atomically.

    Fill the yielded path by any means (open it, `np.save` to it, `frame.to_csv` it). `mode` is filtered by the
    umask like `os.open`'s. On any error the temp file is removed and `path` keeps its old content; ENOSPC /
    EDQUOT raise `DiskFullError`."""
    path = Path(path)
    final_mode = None
    if mode & ~current_umask() & 0o200 == 0:
        # The umask takes away the owner's write bit: a non-root caller could not reopen a file created that way,
        # so create it writable and give it the umask-filtered mode just before the rename.
        final_mode, mode = mode & ~current_umask(), 0o600
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(path, mode)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from exc
        raise
    fault_point("atomic.created")
    try:
        yield tmp
        fault_point("atomic.written")
        if final_mode is not None:
            os.chmod(tmp, final_mode)
        fsync_file(tmp)
        fault_point("atomic.synced")
        os.replace(tmp, path)
        fault_point("atomic.replaced")
        fsync_dir(path.parent)
        fault_point("atomic.dir_synced")
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from exc
        raise
    finally:
        _remove_quietly(tmp)  # gone already after a successful replace


def write_bytes(path: str | Path, data: bytes, mode: int = 0o666) -> None:
    with atomic_path(path, mode) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text(path: str | Path, text: str, mode: int = 0o666) -> None:
    with atomic_path(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any, mode: int = 0o666) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n", mode)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
