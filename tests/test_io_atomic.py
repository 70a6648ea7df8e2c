"""atomic.py: permissions like open(), crash safety at every step, one clear error on a full disk."""
from __future__ import annotations

import errno
import json
import os
import re
import stat

import pytest

from unfreeze.io import atomic
from unfreeze.io.atomic import ATOMIC_FAULT_POINTS, DiskFullError, atomic_path, write_bytes, write_json, write_text
from unfreeze.io.lock import stale_temp_cleanup

DISK_FULL_RE = re.compile(r"^disk full while writing (?P<path>\S+): free space on (?P<fs>\S+) \((?P<mb>\d+) MB free\) "
                          r"and rerun; nothing finished was changed$")


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027, 0o222])
def test_new_file_gets_the_same_mode_as_open_would_give(tmp_path, umask):
    """Regression: files written through mkstemp were always 0600, whatever the umask (unreadable to a group)."""
    old = os.umask(umask)
    try:
        write_text(tmp_path / "ours.txt", "x")
        with open(tmp_path / "reference.txt", "w") as fh:  # the reference: what plain open() creates
            fh.write("x")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "ours.txt") == mode_of(tmp_path / "reference.txt") == 0o666 & ~umask
    assert (tmp_path / "ours.txt").read_text() == "x"


def test_umask_022_gives_0644_and_an_explicit_mode_is_filtered_too(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        write_bytes(tmp_path / "b.bin", b"\x00\x01", mode=0o660)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a.json") == 0o644
    assert mode_of(tmp_path / "b.bin") == 0o640


def test_writes_replace_content_and_leave_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "m.json"
    write_json(target, {"v": 1})
    write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert leftovers(target.parent) == []


def test_an_error_in_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "m.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_temp_name_embeds_the_pid_so_cleanup_can_tell_dead_writers(tmp_path):
    with atomic_path(tmp_path / "x.csv") as tmp:
        match = atomic.TEMP_NAME_RE.match(tmp.name)
        assert match is not None and int(match["pid"]) == os.getpid()
        assert stale_temp_cleanup(tmp_path, older_than_s=0) == []  # our own, live: never touched
        tmp.write_text("a")
    assert (tmp_path / "x.csv").read_text() == "a"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_inside_the_block_is_one_clear_error(tmp_path, code):
    target = tmp_path / "m.txt"
    write_text(target, "old")
    with pytest.raises(DiskFullError) as info, atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise OSError(code, os.strerror(code))
    message = str(info.value)
    assert "\n" not in message
    if code == errno.ENOSPC:
        match = DISK_FULL_RE.match(message)
        assert match is not None, message
        assert match["path"] == str(target)
        assert os.path.ismount(match["fs"])
    else:
        assert message.startswith(f"disk quota exceeded while writing {target}: free space on ")
    assert isinstance(info.value.__cause__, OSError)
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_disk_full_during_fsync_is_translated_as_well(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DiskFullError):
        write_text(tmp_path / "m.txt", "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.faults
def test_real_disk_full_on_a_small_tmpfs(tmpfs):
    """A real ENOSPC from the kernel (1 MiB tmpfs), not a simulated one."""
    target = tmpfs / "metrics.json"
    write_text(target, "old")
    with pytest.raises(DiskFullError) as info:
        write_bytes(target, b"\x01" * (2 * 1024 * 1024))
    match = DISK_FULL_RE.match(str(info.value))
    assert match is not None, str(info.value)
    assert match["fs"] == str(tmpfs)
    assert int(match["mb"]) <= 1
    assert target.read_text() == "old"
    assert leftovers(tmpfs) == []
    write_text(target, "new")  # the space came back with the temp file
    assert target.read_text() == "new"


@pytest.mark.faults
@pytest.mark.parametrize("point", ATOMIC_FAULT_POINTS)
def test_kill_at_every_step_leaves_old_or_new_never_partial(tmp_path, child, point):
    target = tmp_path / "metrics.json"
    old = {"value": "old", "pad": "o" * 50_000}
    new = {"value": "new", "pad": "n" * 80_000}
    write_json(target, old)
    done = child(f"""
        from unfreeze.io.atomic import write_json
        write_json({str(target)!r}, {new!r})
        """, fault=point)
    assert done.returncode == -9, done.stderr  # the point exists and was reached
    content = json.loads(target.read_text())
    replaced = ATOMIC_FAULT_POINTS.index(point) >= ATOMIC_FAULT_POINTS.index("atomic.replaced")
    assert content == (new if replaced else old)
    # what the dead writer left is recognisably its own and goes away; a rerun completes
    assert len(leftovers(tmp_path)) == (0 if replaced else 1)
    stale_temp_cleanup(tmp_path, older_than_s=0)
    assert leftovers(tmp_path) == []
    assert child(f"from unfreeze.io.atomic import write_json; write_json({str(target)!r}, {new!r})").returncode == 0
    assert json.loads(target.read_text()) == new
