"""Frozen-prefix activation cache: frozen layers cost one forward pass per study, not one per epoch per run.

When the embeddings and the bottom `b` layers are frozen (`head`, `top_k`), their output for an example never
changes. It is computed once (eval mode, no autograd), stored, and training runs only the top layers + head on
the stored states (`backbone.start_at_layer`).

Storage: per (weights, split token ids, dtype) a folder with one ragged array per layer boundary —
`layer<b>.npy` holds the real tokens of every example back to back (no padding), `offsets.npy` where each
example starts. One forward pass with all hidden states fills every boundary the study asked for. Arrays up to
`train.cache_ram_mb` (per process) are held in RAM; the rest are memory-mapped from disk. Files are written to a
temp name and renamed, so a crash never leaves a half cache that looks complete.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .backbone import weights_fingerprint
from .encode import Collator, LengthGroupedBatchSampler

log = logging.getLogger(__name__)

#: Counters tests use to prove reuse (no timing): forward batches computed, arrays loaded, arrays mapped.
STATS = {"forward_batches": 0, "loaded_ram": 0, "mapped_disk": 0}
_RAM: dict[str, np.ndarray] = {}  # process-wide: runs of a study share what is already in memory
_RAM_BYTES = [0]

_NUMPY_DTYPE = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}


class SplitCache:
    """Hidden states entering layer `boundary` for every example of one split."""

    def __init__(self, states: np.ndarray, offsets: np.ndarray, dtype: str):
        self.states, self.offsets, self.dtype = states, offsets, dtype

    @property
    def nbytes(self) -> int:
        return int(self.states.nbytes)

    def example(self, i: int) -> torch.Tensor:
        rows = torch.from_numpy(np.array(self.states[self.offsets[i]:self.offsets[i + 1]]))  # copy: memmaps are read-only
        if self.dtype == "bfloat16":
            rows = rows.view(torch.bfloat16)
        return rows.float()

    def batch(self, indices: list[int], width: int) -> torch.Tensor:
        """(batch, width, hidden) float32, zero where padded (masked out by attention anyway)."""
        out = torch.zeros(len(indices), width, self.states.shape[1])
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
        why = (f"strategy `{run.config.freeze.label}` trains parameters inside the frozen prefix or changes it "
               "during training" if run.plan.strategy not in ("all",) else "nothing is frozen")
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
    fingerprint = weights_fingerprint(run.model.backbone)
    dtype = run.config.train.cache_dtype
    caches = {}
    for split, enc in run.encoded.items():
        folder = root / split_key(fingerprint, enc, dtype)
        ensure_boundaries(run, folder, enc, wanted, device, progress, split)
        caches[split] = open_split(folder, boundary, dtype, run.config.train.cache_ram_mb)
    total = sum(c.nbytes for c in caches.values()) / 2**20
    log.info("activation cache for layer %d: %.1f MB (%s) in %s", boundary, total, dtype, root)
    return caches, boundary


def split_key(fingerprint: str, enc, dtype: str) -> str:
    """Identity of what the cache holds: weights, exact token ids (so tokenizer settings and data), dtype."""
    digest = hashlib.sha1(fingerprint.encode())
    for ids in enc.input_ids:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
        digest.update(b"|")
    if enc.token_type_ids is not None:
        for types in enc.token_type_ids:
            digest.update(np.asarray(types, dtype=np.int8).tobytes())
    return f"{digest.hexdigest()[:20]}-{dtype}"


def ensure_boundaries(run, folder: Path, enc, wanted: list[int], device, progress: bool, split: str) -> None:
    missing = [b for b in wanted if not (folder / f"layer{b}.npy").is_file()]
    if not missing:
        return
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum(enc.lengths)]).astype(np.int64)
    hidden = run.model.backbone.config.hidden_size
    dtype = run.config.train.cache_dtype
    tmp_files = {b: folder / f".layer{b}.{np.random.randint(1 << 30)}.tmp.npy" for b in missing}
    arrays = {b: np.lib.format.open_memmap(tmp_files[b], mode="w+", dtype=_NUMPY_DTYPE[dtype],
                                           shape=(int(offsets[-1]), hidden)) for b in missing}
    try:
        compute_states(run, enc, arrays, offsets, device, progress, split)
        _write_npy_atomic(folder / "offsets.npy", offsets)  # first: a visible layer file implies its offsets
        for b, array in arrays.items():
            array.flush()
            tmp_files[b].replace(folder / f"layer{b}.npy")
    finally:
        for tmp in tmp_files.values():
            tmp.unlink(missing_ok=True)


@torch.inference_mode()
def compute_states(run, enc, arrays: dict, offsets: np.ndarray, device, progress: bool, split: str) -> None:
    """One eval-mode forward over the split with all hidden states; copy real tokens into each boundary's array."""
    from tqdm.auto import tqdm

    backbone = run.model.backbone
    was_training = backbone.training
    backbone.eval()
    backbone.to(device)
    num_layers = run.model.layout.num_layers
    sampler = LengthGroupedBatchSampler(enc.lengths, run.config.train.eval_batch_size, shuffle=False)
    collate = Collator(enc, run.tokenizer.pad_token_id or 0, token_task=run.config.task == "token")
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[
        run.config.train.cache_dtype]
    for indices in tqdm(sampler, desc=f"caching frozen layers ({split})", disable=not progress, leave=False):
        batch = collate(indices)
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        out = backbone(**inputs, output_hidden_states=True)
        STATS["forward_batches"] += 1
        for b, array in arrays.items():
            states = out.last_hidden_state if b >= num_layers else out.hidden_states[b]
            states = states.to(dtype).cpu()
            if dtype == torch.bfloat16:
                states = states.view(torch.int16)
            states = states.numpy()
            for row, i in enumerate(indices):
                n = offsets[i + 1] - offsets[i]
                array[offsets[i]:offsets[i + 1]] = states[row, :n].view(array.dtype)
    backbone.train(was_training)


def open_split(folder: Path, boundary: int, dtype: str, ram_mb: int) -> SplitCache:
    """RAM while the per-process budget allows, else a read-only memory map."""
    path = folder / f"layer{boundary}.npy"
    key = str(path.resolve())
    offsets = np.load(folder / "offsets.npy")
    if key in _RAM:
        return SplitCache(_RAM[key], offsets, dtype)
    mapped = np.load(path, mmap_mode="r")
    if _RAM_BYTES[0] + mapped.nbytes <= ram_mb * 2**20:
        states = np.array(mapped)
        _RAM[key] = states
        _RAM_BYTES[0] += states.nbytes
        STATS["loaded_ram"] += 1
        return SplitCache(states, offsets, dtype)
    STATS["mapped_disk"] += 1
    return SplitCache(mapped, offsets, dtype)


def _write_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{np.random.randint(1 << 30)}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)
