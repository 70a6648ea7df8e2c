"""Integrity of cache shards (folders of .npy files), and memory-mapped writes that fail cleanly on a full disk.

Why: a shard is computed once and then read by every later run. A file truncated by a crash, flipped by bad RAM /
disk, or left zero-length by a full disk must be noticed and recomputed, not silently trained on (or crash a run
hours later with an opaque numpy error).

* `write_manifest(folder)` records every file's byte length and checksum in ``manifest.json``, written LAST and
  atomically: a shard without a manifest was never finished. Call it in the shard's temp folder, before the rename
  that publishes the shard.
* `verify(folder)` returns the problems (empty list = intact): missing / unreadable manifest, missing or unlisted
  files, wrong length, checksum mismatch, .npy header unreadable or not matching the file size. ``checksums=False``
  checks lengths and headers only (reads a few hundred bytes per file); the full check reads every byte.
* `verify_once(folder)` is what a cache open calls: the full check (checksums included) the first time this process
  opens the shard, memoised by every file's name, size, mtime and inode; later opens of the unchanged shard check
  lengths and headers only. A flipped byte is therefore caught with default settings, at the cost of reading each
  shard once per process (crc32: see BENCHMARKS.md). `UNFREEZE_CACHE_VERIFY=full` checksums on every open,
  `UNFREEZE_CACHE_VERIFY=lengths` skips checksums (the cheap check only; for caches on trusted storage).
* `open_memmap_guarded(path, dtype, shape)` creates a .npy memory map whose blocks are reserved up front with
  `os.posix_fallocate`: a full disk is then a `DiskFullError` at creation, not a SIGBUS (process killed, no message)
  at the first page that cannot be allocated while filling the map. Caveat: on copy-on-write file systems (btrfs,
  ZFS) a reservation does not guarantee later writes; there only free-space headroom helps.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np

from unfreeze.errors import ConfigError, DiskFullError
from unfreeze.io.atomic import disk_full_error, is_disk_full, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "unfreeze-shard-manifest/1"
ALGORITHMS = ("crc32", "blake2b")
_CHUNK = 4 * 1024 * 1024
_NO_FALLOCATE_ERRNOS = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}

__all__ = [
    "MANIFEST",
    "DiskFullError",
    "file_checksum",
    "guard_mmap_write",
    "npy_problem",
    "open_memmap_guarded",
    "preallocate",
    "remember_verified",
    "verify",
    "verify_mode",
    "verify_once",
    "write_manifest",
]

#: `UNFREEZE_CACHE_VERIFY` values: checksums on the first open per process (default), on every open, or never.
VERIFY_MODES = ("first", "full", "lengths")
_VERIFIED: dict[str, tuple] = {}  # shard folder → the signature it had when its checksums last matched


def file_checksum(path: str | Path, algorithm: str = "crc32") -> str:
    """Checksum of the file's bytes as hex, streamed in 4 MiB chunks (constant memory for multi-GB layers).

    crc32 (zlib) catches truncation and bit flips, the failures that happen to a cache; blake2b (128 bit) also
    resists deliberate tampering, at about a third of the speed here."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}; use one of {ALGORITHMS}")
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    crc, digest = 0, hashlib.blake2b(digest_size=16)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if algorithm == "crc32":
                crc = zlib.crc32(view[:n], crc)
            else:
                digest.update(view[:n])
    return f"{crc:08x}" if algorithm == "crc32" else digest.hexdigest()


def _payload_files(folder: Path) -> list[Path]:
    """The files a manifest covers: regular, non-hidden files other than the manifest (temp files are hidden)."""
    return sorted(p for p in folder.iterdir()
                  if p.name != MANIFEST and not p.name.startswith(".") and p.is_file() and not p.is_symlink())


def write_manifest(folder: str | Path, algorithm: str = "crc32") -> Path:
    """Write ``folder/manifest.json`` (atomically, after hashing every file) and return its path.

    Call it once the folder's files are complete and flushed (``array.flush()`` / ``del`` of memory maps); anything
    written to the folder afterwards shows up in `verify` as a mismatch or an unlisted file."""
    folder = Path(folder)
    files = {p.name: {"bytes": p.stat().st_size, algorithm: file_checksum(p, algorithm)}
             for p in _payload_files(folder)}
    path = folder / MANIFEST
    write_json(path, {"format": MANIFEST_FORMAT, "algorithm": algorithm, "files": files})
    return path


def npy_problem(path: str | Path) -> str | None:
    """Why `path` is not a readable, complete, pickle-free .npy file, or None if it is.

    Reads only the header, then checks that the file is exactly header + shape x itemsize bytes long."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                shape, _, dtype = np.lib.format._read_array_header(fh, version)  # 3.0: utf-8 header
            data_start = fh.tell()
    except (OSError, ValueError, SyntaxError, TypeError) as exc:
        return f"{path}: unreadable .npy header ({exc})"
    if dtype.hasobject:
        return f"{path}: holds Python objects (a pickle); cache files must be plain numbers"
    expected = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        return f"{path}: {actual} bytes but its header ({dtype}, shape {tuple(shape)}) needs {expected}"
    return None


def verify(folder: str | Path, checksums: bool = True) -> list[str]:
    """Every problem found in the shard folder, one line each naming the file; [] means intact.

    `checksums=False` skips reading the data (lengths and .npy headers only)."""
    folder = Path(folder)
    problems: list[str] = []
    if not folder.is_dir():
        return [f"{folder}: shard folder is missing"]
    manifest_path = folder / MANIFEST
    entries: dict | None = None
    algorithm = "crc32"
    if not manifest_path.is_file():
        problems.append(f"{folder}: no {MANIFEST}; the shard was never finished (incomplete)")
    else:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            entries, algorithm = manifest["files"], manifest.get("algorithm", "crc32")
            if not isinstance(entries, dict) or algorithm not in ALGORITHMS:
                raise ValueError("unexpected content")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{manifest_path}: unreadable manifest ({exc})")
            entries = None
    present = {p.name: p for p in _payload_files(folder)}
    if entries is not None:
        for name, entry in entries.items():
            path = folder / name
            if name not in present:
                problems.append(f"{path}: missing (listed in {MANIFEST})")
                continue
            size = path.stat().st_size
            if size != entry.get("bytes"):
                problems.append(f"{path}: {size} bytes, {MANIFEST} says {entry.get('bytes')} (truncated or rewritten)")
                continue
            if checksums:
                actual = file_checksum(path, algorithm)
                if actual != entry.get(algorithm):
                    problems.append(f"{path}: {algorithm} {actual}, {MANIFEST} says {entry.get(algorithm)} "
                                    "(corrupted)")
        for name in sorted(set(present) - set(entries)):
            problems.append(f"{folder / name}: not listed in {MANIFEST} (written after the shard was finished)")
    for name, path in present.items():
        if name.endswith(".npy"):
            problem = npy_problem(path)
            if problem is not None:
                problems.append(problem)
    return problems


def verify_mode() -> str:
    """`UNFREEZE_CACHE_VERIFY`, checked: `first` (default, also when unset), `full` or `lengths`."""
    mode = os.environ.get("UNFREEZE_CACHE_VERIFY", "").strip().lower() or "first"
    if mode not in VERIFY_MODES:
        raise ConfigError(f"UNFREEZE_CACHE_VERIFY={mode!r} is not a verification mode; use one of {VERIFY_MODES} "
                          "(or unset it: checksums on each shard's first open per process)")
    return mode


def _signature(folder: Path) -> tuple:
    """(name, size, mtime, inode) of every entry: a rewritten, truncated or replaced file changes it."""
    with os.scandir(folder) as entries:
        stats = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
    return tuple(sorted((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, st in stats))


def verify_once(folder: str | Path, mode: str | None = None) -> list[str]:
    """`verify(folder)`, with checksums only when this process has not yet seen the shard, unchanged, pass them
    (`mode` `first`); `full` always checksums, `lengths` never. Returns the problems ([] = intact)."""
    folder = Path(folder)
    mode = mode or verify_mode()
    key = str(folder.resolve())
    try:
        signature = _signature(folder)
    except OSError as exc:
        return [f"{folder}: unreadable shard folder ({exc})"]
    checksums = mode == "full" or (mode == "first" and _VERIFIED.get(key) != signature)
    problems = verify(folder, checksums=checksums)
    if checksums and not problems:
        _VERIFIED[key] = signature
    elif problems:
        _VERIFIED.pop(key, None)
    return problems


def remember_verified(folder: str | Path) -> None:
    """Mark a shard this process has just written (its manifest hashed the files on disk) as verified."""
    folder = Path(folder)
    try:
        _VERIFIED[str(folder.resolve())] = _signature(folder)
    except OSError:
        pass


def forget_verified() -> None:
    """Forget every verified shard: the next open of each checksums it again (tests; a new process does this)."""
    _VERIFIED.clear()


def _zero_fill(fd: int, start: int, end: int) -> None:
    """Allocate [start, end) by writing zeros: the portable (slow) fallback where fallocate is unavailable."""
    zeros = bytes(min(_CHUNK, max(end - start, 0)))
    pos = start
    while pos < end:
        n = os.pwrite(fd, zeros[: min(len(zeros), end - pos)], pos)
        pos += n
    os.fsync(fd)


def preallocate(path: str | Path, nbytes: int, unwritten_from: int = 0) -> None:
    """Reserve disk blocks for the first `nbytes` of the existing file `path`; OSError(ENOSPC) if they do not fit.

    Uses `os.posix_fallocate` (Linux; glibc emulates it where the file system lacks fallocate). Elsewhere (macOS), or
    when it is refused, it writes zeros over ``[unwritten_from, nbytes)`` instead: correct but slower (one write of the
    whole region), and it overwrites that region, so pass where the not-yet-written data starts."""
    fd = os.open(path, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, nbytes)
                return
            except OSError as exc:
                if exc.errno not in _NO_FALLOCATE_ERRNOS:
                    raise
        _zero_fill(fd, unwritten_from, nbytes)
    finally:
        os.close(fd)


def open_memmap_guarded(path: str | Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """`np.lib.format.open_memmap(path, "w+", dtype, shape)`, but with every block reserved before it is returned.

    A plain w+ memory map is a sparse file: the disk blocks are allocated page by page while the caller fills it, and
    a full disk then kills the process with SIGBUS, without a message and without cleanup. Here a full disk raises
    `DiskFullError` (naming the file, file system and free space) before any work is done, and the partial file is
    removed. Returns the writable memory map (mode r+ over the reserved file)."""
    path = Path(path)
    try:
        created = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # header + sparse data
        data_start = created.offset
        del created
        preallocate(path, path.stat().st_size, unwritten_from=data_start)
        return np.lib.format.open_memmap(path, mode="r+")
    except OSError as exc:
        if is_disk_full(exc):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            raise disk_full_error(path, exc) from exc
        raise


guard_mmap_write = open_memmap_guarded  # the name used in the design notes
