"""Named crash points for testing what a SIGKILL leaves on disk.

Why: "the folder is old-or-new complete after any crash" is only believable if a test kills the process at every
step and looks. Code that writes files calls `fault_point("swap.old_moved")` between its steps; normally that is one
dict lookup. With the environment variable ``UNFREEZE_FAULT`` naming a point, the process sends itself SIGKILL there:
no `finally`, no `atexit`, no flush, exactly like `kill -9`, the OOM killer or a pulled power cord (minus the page
cache).

    UNFREEZE_FAULT=swap.old_moved          kill at the first time that point is reached
    UNFREEZE_FAULT=atomic.replaced@3       kill at the third time (the 3rd atomic write of the process)
    UNFREEZE_FAULT=a.b,c.d                 kill at whichever of the listed points comes first

What the caller can rely on: without the variable, `fault_point` never does anything but count.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

FAULT_ENV = "UNFREEZE_FAULT"

_hits: Counter[str] = Counter()


def _wanted(spec: str) -> dict[str, int]:
    """Parse ``name[@n],name[@n]`` into {name: n}; a bad count is read as 1 so a typo still crashes loudly."""
    wanted: dict[str, int] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, count = part.partition("@")
        wanted[name] = int(count) if count.isdigit() and int(count) > 0 else 1
    return wanted


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL here if ``UNFREEZE_FAULT`` asks for `name` (at its n-th hit); else no-op."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    _hits[name] += 1
    wanted = _wanted(spec)
    if name in wanted and _hits[name] == wanted[name]:
        os.kill(os.getpid(), signal.SIGKILL)
