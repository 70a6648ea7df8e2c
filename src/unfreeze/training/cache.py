"""Frozen-prefix activation cache: frozen layers cost one forward pass per study, not one per epoch per run —
for training, for every per-epoch validation and for the final val/test pass alike.

When the embeddings and the bottom `b` layers are frozen (`head`, `top_k`, `layer`), their output for an example
never changes. It is computed once (eval mode, no autograd), stored, and the run computes only the top layers +
head on the stored states (`backbone.start_at_layer`). When nothing between the stored states and the head trains
(`head`, `layer: k`; sequence tasks with `pooling: mean` or `cls`) the store keeps what the head reads — one pooled
vector per example — so such a run's training and evaluation never touch the encoder.

Storage is keyed **per example**, so the cache is shared by everything that sees the same example: runs and
seeds, the folds of a cross-validation (each fold's train/val is a re-shuffle of the same pool), the training-set
sizes of a size study, and re-runs of the study. One *store* per (backbone weights, dtype) holds shards. The
training split is stored in `train.cache_dtype` (fp16 by default: it only feeds gradient steps); val and test are
always stored in float32, whose states equal the full forward's, so validation and the reported val/test numbers
come from the cache and `unfreeze predict RUN/best` reproduces `predictions_test.csv`.

```
<root>/<weights fingerprint>-<dtype>/shard-<id>/
    keys.npy       (n, 20) uint8: sha1 of each example's exact token ids (+ token type ids) — so data,
                   tokenizer and max_length/truncation are all part of the key
    offsets.npy    (n + 1,) where each example's rows start in the layer arrays
    layer<b>.npy   the hidden states entering layer b, real tokens only (ragged, no padding)
    mean<b>.npy    (n, hidden): their mean over the attention mask (what a `pooling: mean` head reads); or
    cls<b>.npy     (n, hidden): their first token (`pooling: cls`)
    manifest.json  every file's length and crc32, written last
```
A run looks its examples up across shards and computes only what is missing — one forward pass with all hidden
states fills every array the study asked for — as a new shard, written to a temp folder and renamed, so a crash
never leaves a half shard that looks complete. Every shard is checksummed the first time a process opens it (then
memoised by size + mtime; `UNFREEZE_CACHE_VERIFY=full` checksums on every open, `lengths` never) and a damaged one
is deleted and recomputed. Arrays up to `train.cache_ram_mb` (per process) are held in RAM; the rest are
memory-mapped from disk.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from unfreeze.io.integrity import verify_mode
from unfreeze.model.backbone import weights_fingerprint
from unfreeze.strategies import get_strategy
from unfreeze.tasks import get_task
from unfreeze.training.cache_store import (POOLED, STATS, StoreIndex, ensure_examples, example_keys,  # noqa: F401
                                           open_array, parse_array, store_index)
from unfreeze.training import cache_store

log = logging.getLogger(__name__)

#: val and test are stored in float32 whatever `train.cache_dtype`: the reported numbers come from them
EVAL_DTYPE = "float32"


class SplitCache:
    """What one split's examples read from the cache, wherever their shard is: example i is
    `parts[p][start:end]` with `(p, start, end) = where[i]` — token rows for a `layer<b>` array, one row for a
    pooled (`mean<b>` / `cls<b>`) array."""

    def __init__(self, parts: list[np.ndarray], where: np.ndarray, dtype: str, pooled: bool = False):
        self.parts, self.where, self.dtype, self.pooled = parts, where, dtype, pooled

    @property
    def nbytes(self) -> int:
        """Bytes of this split's own rows (shards may hold other examples too)."""
        if not self.parts:
            return 0
        row = self.parts[0].shape[1] * self.parts[0].dtype.itemsize
        return int((self.where[:, 2] - self.where[:, 1]).sum() * row)

    def example(self, i: int) -> torch.Tensor:
        part, start, end = self.where[i]
        rows = torch.from_numpy(np.array(self.parts[part][start:end]))  # copy: memmaps are read-only
        if self.dtype == "bfloat16":
            rows = rows.view(torch.bfloat16)
        return rows.float()

    def batch(self, indices: list[int], width: int) -> torch.Tensor:
        """(batch, width, hidden) float32, zero where padded (masked out by attention anyway); pooled arrays:
        (batch, hidden), the head's input itself."""
        if self.pooled:
            return torch.cat([self.example(i) for i in indices])
        out = torch.zeros(len(indices), width, self.parts[0].shape[1])
        for row, i in enumerate(indices):
            ex = self.example(i)
            out[row, :ex.shape[0]] = ex
        return out


def cache_decision(run) -> tuple[bool, str]:
    """(use it?, why) — `auto` uses the cache whenever it is valid; `on` asks for it but falls back loudly."""
    mode = run.config.train.cache
    if mode == "off":
        return False, "cache: off"
    if not run.plan.cacheable:
        why = get_strategy(run.config.freeze.strategy).no_cache_reason(run.config.freeze)
        return False, f"activation cache not used: {why}; running the full forward"
    return True, f"activation cache: layers below {run.plan.frozen_prefix} computed once"


def default_cache_root() -> Path:
    """Where single runs keep their caches (reused by later runs on the same model and data)."""
    env = os.environ.get("UNFREEZE_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unfreeze" / "activations"


def array_for(run, boundary: int) -> str:
    """The array a run of this config reads at `boundary`: pooled vectors (`mean<b>` / `cls<b>`) when the head
    reads the states at `boundary` directly — nothing between them and the head trains — on a sequence task
    with `pooling: mean` or `cls`; else the token states `layer<b>` (top_k, token tasks, `pooling: pooler`,
    whose pooler may train). `boundary` is the run's own frozen prefix, or a `top_k` boundary of the study
    (`L - k`; k = 0, `head`, reads the encoder's output)."""
    model = run.model
    stop = model.layout.num_layers if model.stop_at is None else model.stop_at
    reads_states = boundary >= stop if boundary == run.plan.frozen_prefix else boundary >= model.layout.num_layers
    if reads_states and not get_task(run.config.task).per_token and model.pooling in POOLED:
        return f"{model.pooling}{boundary}"
    return f"layer{boundary}"


def caches_for_run(run, device, cache_root=None, progress: bool = False, boundaries: set[int] | None = None):
    """({split: SplitCache}, boundary) when the cache applies, else (None, None). `boundaries`: the study's other
    frozen prefixes, filled by the same forward pass."""
    use, why = cache_decision(run)
    (log.info if use or run.config.train.cache == "auto" else log.warning)(why)
    if not use:
        return None, None
    mode = verify_mode()  # a bad UNFREEZE_CACHE_VERIFY is one line before any work
    boundary = run.plan.frozen_prefix
    own = array_for(run, boundary)
    wanted = sorted({own, *(array_for(run, b) for b in (boundaries or ())
                            if 0 < b <= run.model.layout.num_layers)})
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    fingerprint = backbone_fingerprint(run)
    indexes: dict[str, StoreIndex] = {}
    caches, computed = {}, 0
    for split, enc in run.encoded.items():
        dtype = run.config.train.cache_dtype if split == "train" else EVAL_DTYPE
        if dtype not in indexes:
            indexes[dtype] = store_index(root / f"{fingerprint}-{dtype}", dtype, mode)
        keys = split_keys(run, split, enc)
        computed += ensure_examples(run, indexes[dtype], enc, keys, wanted, device, progress, split)
        caches[split] = open_split(indexes[dtype], keys, own, run.config.train.cache_ram_mb)
    log.info("activation cache: %s (train %s, val/test %s): %.1f MB in %s; %d of %d examples computed now, "
             "the rest reused", own, run.config.train.cache_dtype, EVAL_DTYPE,
             sum(c.nbytes for c in caches.values()) / 2**20, root, computed,
             sum(len(e) for e in run.encoded.values()))
    return caches, boundary


#: per process, so the runs of a study compute each once: weights fingerprints by what the weights were loaded
#: from, example keys by the data split object (a study's `DataPool` hands every run the same one) and encoding
_FINGERPRINTS: dict[tuple, str] = {}
_KEYS: dict[tuple, tuple] = {}
MEMO_SIZE = 32  # entries of each: a long-lived process studying many data sets does not keep them all


def _remember(memo: dict, key, value) -> None:
    memo[key] = value
    while len(memo) > MEMO_SIZE:
        memo.pop(next(iter(memo)))


def _weights_key(run) -> tuple | None:
    """What a transformer backbone's weights were loaded from: its local folder's files (name, size, mtime), the
    model config and the state dict's names, shapes and dtypes; None (not memoised) for anything else (a BiLSTM's
    seeded random weights, a hub id)."""
    from unfreeze.assets import resolve_model_path
    from unfreeze.config.schema import is_bilstm_name

    cfg = run.config.model
    if is_bilstm_name(cfg.name):
        return None
    try:
        source = Path(resolve_model_path(cfg.name))
        files = tuple(sorted((p.name, st.st_size, st.st_mtime_ns) for p in source.rglob("*") if p.is_file()
                             for st in [p.stat()])) if source.is_dir() else None
    except (OSError, ValueError):
        return None
    if not files:
        return None
    shapes = tuple((name, tuple(t.shape), str(t.dtype)) for name, t in run.model.backbone.state_dict().items())
    return str(source.resolve()), cfg.model_dump_json(), files, shapes


def backbone_fingerprint(run) -> str:
    """`weights_fingerprint` of the run's backbone, hashed once per process for weights loaded from the same
    unchanged files (`_weights_key`); a changed model folder or config hashes again."""
    key = _weights_key(run)
    if key is None:
        return weights_fingerprint(run.model.backbone)
    if key not in _FINGERPRINTS:
        _remember(_FINGERPRINTS, key, weights_fingerprint(run.model.backbone))
    return _FINGERPRINTS[key]


def split_keys(run, split: str, enc) -> np.ndarray:
    """`example_keys(enc)`, computed once per process for one data split object encoded the same way (task, model
    and data config, max_length), and only while its token lengths match; other splits (CV folds are rebuilt per
    run) are hashed each time."""
    source = getattr(run.data, split, None)
    lengths = np.asarray(enc.lengths)
    key = (split, id(source), run.config.task, run.config.model.model_dump_json(),
           run.config.data.model_dump_json(), run.max_length)
    hit = _KEYS.get(key)
    if hit is not None and hit[0] is source and np.array_equal(hit[1], lengths):
        return hit[2]
    keys = example_keys(enc)
    if source is not None:
        _remember(_KEYS, key, (source, lengths, keys))  # holds `source`: its id is not reused while remembered
    return keys


def reset_memory() -> None:
    """Forget everything this process holds (arrays, store indexes, fingerprints, keys), as a new process would."""
    cache_store.reset_memory()
    _FINGERPRINTS.clear()
    _KEYS.clear()


def open_split(index: StoreIndex, keys: np.ndarray, name: str, ram_mb: int) -> SplitCache:
    """Every example's rows of array `name`; shard arrays go to RAM while the per-process budget allows, else
    they are read-only memory maps."""
    found = index.rows[name]
    pooled = parse_array(name)[0] != "layer"
    parts: list[np.ndarray] = []
    part_of: dict[Path, int] = {}
    where = np.zeros((len(keys), 3), dtype=np.int64)
    for i, key in enumerate(keys):
        shard, row = found[key.tobytes()]
        if shard not in part_of:
            part_of[shard] = len(parts)
            parts.append(open_array(shard / f"{name}.npy", ram_mb))
        if pooled:
            where[i] = (part_of[shard], row, row + 1)
        else:
            offsets = index.offsets(shard)
            where[i] = (part_of[shard], offsets[row], offsets[row + 1])
    return SplitCache(parts, where, index.dtype, pooled)


def build_caches(run, accelerator, cache_root, progress: bool, top_ks):
    """(caches, boundary, examples computed now) for one prepared run on `accelerator`'s device: the frozen-prefix
    activation cache when valid and wanted, else (None, None, 0); `top_ks` are the study's `top_k` boundaries to
    fill in the same pass."""
    n = run.model.layout.num_layers
    boundaries = {n - k for k in (top_ks or ()) if 0 <= k < n}
    before = STATS["forward_examples"]
    caches, boundary = caches_for_run(run, accelerator.device, cache_root, progress, boundaries)
    return caches, boundary, STATS["forward_examples"] - before
