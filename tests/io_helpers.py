"""Child processes for fault tests: a fresh Python that imports this checkout's `unfreeze`, with a fault armed."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import unfreeze

SRC = Path(unfreeze.__file__).resolve().parent.parent  # the `src` folder the tests import from


def child_env(fault: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "UNFREEZE_FAULT"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(Path(__file__).resolve().parent)])
    if fault:
        env["UNFREEZE_FAULT"] = fault
    return env


def run_child(code: str, fault: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python; `fault` arms UNFREEZE_FAULT. The return code is -9 when a fault point fired."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env(fault), capture_output=True,
                          text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def mounted_tmpfs(mnt: Path, options: str = "size=1m"):
    """A tmpfs mounted on the new folder `mnt` for the block (root only); skips the test where mounting is refused."""
    import pytest

    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
