"""lock.py: one process per study folder, freed by any death of the holder; dead writers' temp leftovers removed."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from unfreeze.io import lock
from io_helpers import SRC as HERE
from unfreeze.io.lock import LOCK_FILE, LockedError, LockUnsupportedError, StudyLock, stale_temp_cleanup

HOLDER = """
import sys, time
from unfreeze.io.lock import StudyLock
lock = StudyLock(sys.argv[1], command="unfreeze study demo.yaml").acquire()
print("ready", flush=True)
time.sleep(60)
"""


def start_holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(HERE)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_process_fails_at_once_naming_the_holder_and_kill_9_frees_the_lock(tmp_path):
    study = tmp_path / "study"
    holder = start_holder(study)
    try:
        started = time.monotonic()
        with pytest.raises(LockedError) as info:
            StudyLock(study).acquire()
        assert time.monotonic() - started < 1.0  # no waiting
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"study folder {study} is in use by pid {holder.pid} on host "
                                  f"{socket.gethostname()} since ")
        assert message.endswith("(command unfreeze study demo.yaml); wait for it or stop it")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert holder.returncode == -9
    with StudyLock(study) as second:  # the kernel dropped the dead holder's flock: no stale lock to break
        assert second.locked
        assert json.loads((study / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path):
    first = StudyLock(tmp_path).acquire()
    try:
        with pytest.raises(LockedError, match=f"in use by pid {os.getpid()} "):
            StudyLock(tmp_path).acquire()
    finally:
        first.release()
    StudyLock(tmp_path).acquire().release()


def test_release_empties_but_keeps_the_lock_file_and_exceptions_release(tmp_path):
    with pytest.raises(ValueError), StudyLock(tmp_path, command="x") as held:
        assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == "x"
        raise ValueError
    assert not held.locked
    assert (tmp_path / LOCK_FILE).read_text() == ""  # kept: deleting it would let two processes lock two files
    held.release()  # idempotent
    with StudyLock(tmp_path):
        pass


def test_holder_without_a_line_yet_gives_a_message_without_pid():
    assert "in use by another process" in lock.locked_message("/s", None)


def test_file_system_without_locks_fails_clearly_or_carries_on_when_allowed(tmp_path, monkeypatch):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    with pytest.raises(LockUnsupportedError, match=r"^cannot lock study folder .*ENOLCK.*local disk"):
        StudyLock(tmp_path).acquire()
    unlocked = StudyLock(tmp_path, allow_unsupported=True).acquire()
    assert not unlocked.locked
    unlocked.release()


def test_stale_temp_cleanup_removes_only_dead_writers_old_leftovers(tmp_path):
    dead = dead_pid()
    live_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead_file = tmp_path / f".metrics.json.{dead}.0a1b2c3d.tmp"
        dead_dir = tmp_path / f".shard-abc.{dead}.12345.tmp"
        fresh_dead = tmp_path / f".config.yaml.{dead}.ffff.tmp"
        live_other = tmp_path / f".history.csv.{live_child.pid}.beef.tmp"
        live_self = tmp_path / f".x.{os.getpid()}.beef.tmp"
        no_pid = tmp_path / ".something.tmp"
        visible = tmp_path / "results.tmp"
        for path in (dead_file, fresh_dead, live_other, live_self, no_pid, visible):
            path.write_text("x")
        (dead_dir / "sub").mkdir(parents=True)
        (dead_dir / "sub" / "layer0.npy").write_bytes(b"x")
        old = time.time() - 3600
        for path in (dead_file, dead_dir, live_other, live_self, no_pid, visible):
            os.utime(path, (old, old))
        removed = stale_temp_cleanup(tmp_path, older_than_s=600)
    finally:
        live_child.kill()
        live_child.wait()
    assert sorted(removed) == sorted([dead_file, dead_dir])
    assert not dead_file.exists() and not dead_dir.exists()
    for kept in (fresh_dead, live_other, live_self, no_pid, visible):
        assert kept.exists(), kept


def test_pid_alive_matches_the_process_table():
    assert lock.pid_alive(os.getpid())
    assert lock.pid_alive(1)  # init exists (signal 0 to it is allowed or refused, either means alive)
    assert not lock.pid_alive(dead_pid())
