"""The cache part of a run: its frozen prefix's activations, filled (or found) before the first step, from
`train.cache*` and the study's cache plan (`RunCallbacks.cache_root` / `cache_top_ks`). The store itself is
`training/cache.py`; this is what one run holds of it and what metrics.json says about it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from unfreeze.training.cache import EVAL_DTYPE, build_caches
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.prepare import RunData, RunModel


@dataclass(frozen=True)
class CacheInputs:
    """What the activation cache (`training/cache.py`, `cache_store.py`) reads of a run, and nothing else: the
    config (`train.cache*`, the task, `freeze:`, `model:`), the freezing plan, the model and tokenizer, the
    encoded splits, the data as read (its split objects key the memoised example hashes) and `max_length`."""

    config: object
    plan: object
    model: object
    tokenizer: object
    encoded: dict
    data: object
    max_length: int


@dataclass
class CachePart:
    """`caches`: {split: SplitCache} or None (full forward); `cached_from`: the layer the cached states enter."""

    caches: dict | None
    cached_from: int | None
    computed: int
    seconds: float

    def summary(self, pooling: str, cache_dtype: str) -> dict:
        """metrics.json "cache": whether it served the run, from which layer, what the head read (`pooled`: `mean`
        / `cls` vectors, or null for token states), the dtypes per split, examples computed now and the fill time."""
        summary = {"used": self.cached_from is not None, "from_layer": self.cached_from,
                   "computed_examples": self.computed, "fill_seconds": round(self.seconds, 3)}
        if self.caches:
            summary.update(pooled=pooling if self.caches["train"].pooled else None,
                           dtypes={"train": cache_dtype, "val": EVAL_DTYPE, "test": EVAL_DTYPE})
        return summary


def fill_cache(config, run_data: RunData, run_model: RunModel, accelerator, callbacks: RunCallbacks,
               progress: bool) -> CachePart:
    """The run's cache part on `accelerator`'s device: one process fills the on-disk cache, the others then read
    it. `config`: the run's config (the cache reads `train.cache*`, the task and the freezing strategy)."""
    view = CacheInputs(config, run_model.plan, run_model.model, run_model.tokenizer, run_data.encoded,
                       run_data.data, run_data.max_length)
    with accelerator.main_process_first():
        started = time.perf_counter()
        caches, cached_from, computed = build_caches(view, accelerator, callbacks.cache_root, progress,
                                                     callbacks.cache_top_ks)
        return CachePart(caches, cached_from, computed, time.perf_counter() - started)
