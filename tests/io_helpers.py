"""Child processes for fault tests: a fresh Python that imports this checkout's `unfreeze`, with a fault armed."""
from __future__ import annotations

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
