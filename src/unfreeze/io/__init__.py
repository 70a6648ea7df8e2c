"""Crash-safe file system primitives: every file and folder unfreeze writes goes through here.

* `atomic` — one file: temp file beside the target, fsync, rename; honours the umask; ENOSPC → `DiskFullError`.
* `swap` — one folder: `swap_dir(new, final)` installs a complete folder with a journal, so `kill -9` at any moment
  leaves the old or the new folder (`recover(final)` finishes an interrupted swap; readers call it first).
* `lock` — one process per study folder (`StudyLock`, an flock on ``<study>/.lock``) and clean-up of temp files
  whose writer died (`stale_temp_cleanup`).
* `integrity` — cache shard manifests (`write_manifest` / `verify`) and pre-allocated memory maps
  (`open_memmap_guarded`: a full disk is one error line, not SIGBUS).
* `faults` — named SIGKILL points for tests (``UNFREEZE_FAULT``).
* `paths` — where unfreeze may write (`check_out_folder`: never the current folder, home, root, a file or a folder
  it did not write) and collision-free file names from user strings (`path_component`).

The helpers below are the long-standing `unfreeze.io` API (`write_json`, `atomic_path` …), kept so callers import
from `unfreeze.io` as before.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from unfreeze.io.atomic import atomic_path, write_bytes, write_json, write_text
from unfreeze.io.swap import recover, swap_dir

__all__ = ["atomic_path", "read_json", "replace_dir", "write_bytes", "write_dataframe_csv", "write_json",
           "write_text", "write_yaml"]


def write_yaml(path: str | Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_dataframe_csv(path: str | Path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def replace_dir(tmp_dir: str | Path, final_dir: str | Path, flag: str | None = None) -> None:
    """Install the complete folder `tmp_dir` at `final_dir` (journaled swap: old-or-new after any crash); with
    `flag`, only where `final_dir` is still absent or empty (see `swap.swap_dir`)."""
    swap_dir(tmp_dir, final_dir, flag)


def recover_dir(final_dir: str | Path) -> str | None:
    """Finish an interrupted swap of `final_dir`, if any (see `swap.recover`)."""
    return recover(final_dir)
