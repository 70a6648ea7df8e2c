"""Frozen-prefix activation cache: frozen layers cost one forward pass per study, not one per epoch per run.

When the embeddings and the bottom `b` layers are frozen (`head`, `top_k`), their output for an example never
changes. It is computed once (eval mode, no autograd), stored, and training runs only the top layers + head on
the stored states (`backbone.start_at_layer`).

Storage is keyed **per example**, so the cache is shared by everything that sees the same example: runs and
seeds, the folds of a cross-validation (each fold's train/val is a re-shuffle of the same pool), the training-set
sizes of a size study, and re-runs of the study. One *store* per (backbone weights, dtype) holds shards:

```
<root>/<weights fingerprint>-<dtype>/shard-<id>/
    keys.npy       (n, 20) uint8: sha1 of each example's exact token ids (+ token type ids) — so data,
                   tokenizer and max_length/truncation are all part of the key
    offsets.npy    (n + 1,) where each example's rows start in the layer arrays
    layer<b>.npy   the hidden states entering layer b, real tokens only (ragged, no padding), for every
                   boundary b asked for when the shard was written
```
A run looks its examples up across shards and computes only what is missing — one forward pass with all hidden
states fills every boundary the study asked for — as a new shard, written to a temp folder and renamed, so a
crash never leaves a half shard that looks complete; `manifest.json` (lengths + crc32, written last) lets every
open check each shard's lengths and headers (`UNFREEZE_CACHE_VERIFY=full`: checksums too) and recompute a damaged one. Arrays up to `train.cache_ram_mb` (per process) are held in
RAM; the rest are memory-mapped from disk.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from unfreeze.io.atomic import temp_name
from unfreeze.io.integrity import open_memmap_guarded, verify, write_manifest
from unfreeze.io.lock import stale_temp_cleanup
from unfreeze.model.backbone import weights_fingerprint
from unfreeze.strategies import get_strategy
from unfreeze.model.inference import encoder_inputs, inference_batches, run_inference

log = logging.getLogger(__name__)

#: Counters tests use to prove reuse (no timing): forward batches / examples computed, arrays loaded, mapped.
STATS = {"forward_batches": 0, "forward_examples": 0, "loaded_ram": 0, "mapped_disk": 0}
_RAM: dict[str, np.ndarray] = {}  # process-wide: runs of a study share what is already in memory
_RAM_BYTES = [0]

_NUMPY_DTYPE = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}


class SplitCache:
    """Hidden states entering layer `boundary` for every example of one split, wherever its shard is:
    example i is `parts[p][start:end]` with `(p, start, end) = where[i]`."""

    def __init__(self, parts: list[np.ndarray], where: np.ndarray, dtype: str):
        self.parts, self.where, self.dtype = parts, where, dtype

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
        """(batch, width, hidden) float32, zero where padded (masked out by attention anyway)."""
        out = torch.zeros(len(indices), width, self.parts[0].shape[1])
        for row, i in enumerate(indices):
            ex = self.example(i)
            out[row, :ex.shape[0]] = ex
        return out


def reset_memory() -> None:
    _RAM.clear()
    _RAM_BYTES[0] = 0


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


def caches_for_run(run, device, cache_root=None, progress: bool = False, boundaries: set[int] | None = None):
    """({split: SplitCache}, boundary) when the cache applies, else (None, None)."""
    use, why = cache_decision(run)
    (log.info if use or run.config.train.cache == "auto" else log.warning)(why)
    if not use:
        return None, None
    boundary = run.plan.frozen_prefix
    wanted = sorted({boundary, *(b for b in (boundaries or ()) if 0 < b <= run.model.layout.num_layers)})
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    dtype = run.config.train.cache_dtype
    store = root / f"{weights_fingerprint(run.model.backbone)}-{dtype}"
    index = StoreIndex(store)
    caches, computed = {}, 0
    for split, enc in run.encoded.items():
        keys = example_keys(enc)
        computed += ensure_examples(run, index, enc, keys, wanted, device, progress, split)
        caches[split] = open_split(index, keys, boundary, dtype, run.config.train.cache_ram_mb)
    total = sum(c.nbytes for c in caches.values()) / 2**20
    examples = sum(len(e) for e in run.encoded.values())
    log.info("activation cache for layer %d: %.1f MB (%s) in %s; %d of %d examples computed now, the rest reused",
             boundary, total, dtype, store, computed, examples)
    return caches, boundary


def example_keys(enc) -> np.ndarray:
    """(n, 20) uint8: the identity of each example's frozen-prefix output — its exact token ids (+ types)."""
    keys = np.zeros((len(enc.input_ids), 20), dtype=np.uint8)
    for i, ids in enumerate(enc.input_ids):
        digest = hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes())
        if enc.token_type_ids is not None:
            digest.update(b"|" + np.asarray(enc.token_type_ids[i], dtype=np.int8).tobytes())
        keys[i] = np.frombuffer(digest.digest(), dtype=np.uint8)
    return keys


class StoreIndex:
    """Where each example's rows are, per boundary: `rows[b][key] = (shard, row)`. Read once per run from the
    shards' small key files; shards written during the run are added as they appear. Any shard holding an
    example will do: the same key means the same token ids through the same weights."""

    def __init__(self, store: Path, checksums: bool | None = None):
        self.store = store
        self.rows: dict[int, dict[bytes, tuple[Path, int]]] = {}
        self._offsets: dict[Path, np.ndarray] = {}
        if checksums is None:  # full checksums read every byte; lengths + .npy headers are enough for a crash
            checksums = os.environ.get("UNFREEZE_CACHE_VERIFY", "") == "full"
        if store.is_dir():
            stale_temp_cleanup(store, ".shard-*.tmp")  # shards whose writer died before publishing them
        bad = []
        for shard in sorted(store.glob("shard-*")) if store.is_dir() else []:
            if not shard.is_dir():
                continue
            problems = verify(shard, checksums=checksums)
            if problems:
                bad.append(f"{shard.name} ({problems[0]})")
                shutil.rmtree(shard, ignore_errors=True)  # its examples count as missing and are recomputed
                continue
            self.add(shard)
        if bad:
            log.warning("activation cache %s: %d damaged shard(s) deleted, their examples are recomputed: %s",
                        store, len(bad), "; ".join(bad))

    def add(self, shard: Path) -> None:
        keys = [k.tobytes() for k in np.load(shard / "keys.npy")]
        for layer in shard.glob("layer*.npy"):
            found = self.rows.setdefault(int(layer.stem[len("layer"):]), {})
            found.update((key, (shard, row)) for row, key in enumerate(keys))

    def offsets(self, shard: Path) -> np.ndarray:
        if shard not in self._offsets:
            self._offsets[shard] = np.load(shard / "offsets.npy")
        return self._offsets[shard]


def ensure_examples(run, index: StoreIndex, enc, keys: np.ndarray, wanted: list[int], device, progress: bool,
                    split: str) -> int:
    """Compute (as one new shard) the examples of `enc` that no shard holds for every wanted boundary; returns
    how many were computed."""
    missing, seen = [], set()
    for i, key in enumerate(keys):
        k = key.tobytes()
        if k not in seen and any(k not in index.rows.get(b, {}) for b in wanted):
            missing.append(i)
        seen.add(k)
    if missing:
        rows = np.asarray(missing, dtype=np.int64)
        index.add(write_shard(run, index.store, enc, rows, keys, wanted, device, progress, split))
    return len(missing)


def write_shard(run, store: Path, enc, rows: np.ndarray, keys: np.ndarray, wanted: list[int], device,
                progress: bool, split: str) -> Path:
    """Compute examples `rows` of `enc` for every boundary in `wanted` into a new shard; returns its folder."""
    lengths = np.asarray(enc.lengths)[rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    hidden = run.model.backbone.config.hidden_size
    dtype = run.config.train.cache_dtype
    name = "shard-" + hashlib.sha1(keys[rows].tobytes() + repr(wanted).encode()).hexdigest()[:16]
    tmp = store / temp_name(name)  # carries the pid: `stale_temp_cleanup` removes it if this process dies
    tmp.mkdir(parents=True)
    try:
        # blocks reserved up front: a full disk is one DiskFullError here, not a SIGBUS while filling the map
        arrays = {b: open_memmap_guarded(tmp / f"layer{b}.npy", _NUMPY_DTYPE[dtype], (int(offsets[-1]), hidden))
                  for b in wanted}
        compute_states(run, enc, rows, arrays, offsets, device, progress, split)
        for array in arrays.values():
            array.flush()
        del arrays
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "keys.npy", keys[rows])
        write_manifest(tmp)  # last: a shard without a manifest was never finished
        try:
            tmp.rename(store / name)
        except OSError:  # another process wrote the same shard meanwhile: theirs is as good as ours
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return store / name


def compute_states(run, enc, rows: np.ndarray, arrays: dict, offsets: np.ndarray, device, progress: bool,
                   split: str) -> None:
    """One eval-mode forward over examples `rows` of `enc` with all hidden states; copy real tokens into each
    boundary's array (example `rows[j]` at `offsets[j]:offsets[j + 1]`)."""
    from tqdm.auto import tqdm

    backbone = run.model.backbone
    was_training = backbone.training
    backbone.to(device)
    num_layers = run.model.layout.num_layers
    batches = inference_batches(enc, run.config.train.eval_batch_size, run.tokenizer.pad_token_id or 0,
                                run.config.task == "token", rows)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[
        run.config.train.cache_dtype]

    def store(item, out) -> None:
        positions, _ = item
        STATS["forward_batches"] += 1
        STATS["forward_examples"] += len(positions)
        for b, array in arrays.items():
            states = out.last_hidden_state if b >= num_layers else out.hidden_states[b]
            states = states.to(dtype).cpu()
            if dtype == torch.bfloat16:
                states = states.view(torch.int16)
            states = states.numpy()
            for row, j in enumerate(positions):
                n = offsets[j + 1] - offsets[j]
                array[offsets[j]:offsets[j + 1]] = states[row, :n].view(array.dtype)

    bar = tqdm(batches, desc=f"caching frozen layers ({split})", disable=not progress, leave=False)
    run_inference(backbone, bar, lambda item: backbone(**encoder_inputs(item[1], device), output_hidden_states=True),
                  store)
    backbone.train(was_training)


def open_split(index: StoreIndex, keys: np.ndarray, boundary: int, dtype: str, ram_mb: int) -> SplitCache:
    """Every example's rows at `boundary`; shard arrays go to RAM while the per-process budget allows, else they
    are read-only memory maps."""
    found = index.rows[boundary]
    parts: list[np.ndarray] = []
    part_of: dict[Path, int] = {}
    where = np.zeros((len(keys), 3), dtype=np.int64)
    for i, key in enumerate(keys):
        shard, row = found[key.tobytes()]
        if shard not in part_of:
            part_of[shard] = len(parts)
            parts.append(_open_array(shard / f"layer{boundary}.npy", ram_mb))
        offsets = index.offsets(shard)
        where[i] = (part_of[shard], offsets[row], offsets[row + 1])
    return SplitCache(parts, where, dtype)


def _open_array(path: Path, ram_mb: int) -> np.ndarray:
    key = str(path.resolve())
    if key in _RAM:
        return _RAM[key]
    mapped = np.load(path, mmap_mode="r")
    if _RAM_BYTES[0] + mapped.nbytes <= ram_mb * 2**20:
        states = np.array(mapped)
        _RAM[key] = states
        _RAM_BYTES[0] += states.nbytes
        STATS["loaded_ram"] += 1
        return states
    STATS["mapped_disk"] += 1
    return mapped
