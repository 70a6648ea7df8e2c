"""What a study needs from one run, handed in as one object: `train(config, out, callbacks=RunCallbacks(...))`.

A single run (`unfreeze train`) needs none of it. A study passes where its activation cache lives and which
boundaries to fill in the same forward pass (its cache plan), what to record in `run.json`, and — a search —
a pruner that sees each evaluation. Adding a study need means adding a field here, not a `train()` argument.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class RunCallbacks:
    """`cache_root`: the activation cache's folder (None: the per-user default, `training.cache.default_cache_root`);
    `cache_top_ks`: every `top_k` of the study (0 = head), so one forward pass fills the cache for all of them;
    `run_info`: written to `run.json` before the run is marked finished; `on_eval(row)`: called with each history
    row; True stops the run with `errors.Pruned` and nothing is written."""

    cache_root: str | Path | None = None
    cache_top_ks: frozenset[int] | set[int] | None = None
    run_info: dict | None = None
    on_eval: Callable[[dict], bool] | None = None


#: a single run: default cache folder, no run.json, never pruned
NO_CALLBACKS = RunCallbacks()
