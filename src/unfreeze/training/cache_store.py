"""The activation cache on disk: stores of shards, the index of which shard holds which example, and the one
forward pass that fills a new shard (layout and rationale in `cache.py`).

Array names in a shard: `layer<b>` holds the hidden states entering layer b, real tokens only (ragged, rows at
`offsets`); `mean<b>` / `cls<b>` hold one row per example, what a `head` (or `layer: k`) run's head reads from
those states — their mean over the attention mask, or their first token — so a head run reads one vector per
example instead of every token's states.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from unfreeze.errors import UnfreezeError
from unfreeze.io.atomic import temp_name
from unfreeze.io.integrity import open_memmap_guarded, remember_verified, verify_mode, verify_once, write_manifest
from unfreeze.io.lock import stale_temp_cleanup
from unfreeze.model.heads import mean_pool
from unfreeze.model.inference import encoder_inputs, inference_batches, run_inference
from unfreeze.tasks import get_task

log = logging.getLogger(__name__)

#: Counters tests use to prove reuse (no timing): forward batches / examples computed, arrays loaded, mapped.
STATS = {"forward_batches": 0, "forward_examples": 0, "loaded_ram": 0, "mapped_disk": 0}

NUMPY_DTYPE = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}
TORCH_DTYPE = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
POOLED = ("mean", "cls")
_RAM: dict[str, np.ndarray] = {}  # process-wide: runs of a study share what is already in memory
_RAM_BYTES = [0]
_ARRAY = re.compile(r"^(layer|mean|cls)(\d+)$")


def parse_array(name: str) -> tuple[str, int] | None:
    """("layer" | "mean" | "cls", boundary) of an array name, None for other files (keys, offsets)."""
    match = _ARRAY.match(name)
    return (match.group(1), int(match.group(2))) if match else None


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
    """Where each example's rows are, per array name: `rows[name][key] = (shard, row)`, from the shards' small key
    files; shards written meanwhile are added as they appear. Any shard holding an example will do: the same key
    means the same token ids through the same weights. One index per store and process (`store_index`): the runs
    of a study share it instead of re-reading every shard's keys.

    Every shard is verified whenever a run opens the store (`io.integrity.verify_once`: checksums the first time
    this process opens it, lengths and headers after); a damaged one is deleted with one warning and its examples
    count as missing."""

    def __init__(self, store: Path, dtype: str, mode: str | None = None):
        self.store, self.dtype, self.mode = store, dtype, mode or verify_mode()
        self.rows: dict[str, dict[bytes, tuple[Path, int]]] = {}
        self.shards: set[Path] = set()
        self._offsets: dict[Path, np.ndarray] = {}
        if store.is_dir():
            stale_temp_cleanup(store, ".shard-*.tmp")  # shards whose writer died before publishing them
        self._open(self._present())

    def _present(self) -> list[Path]:
        return sorted(s for s in self.store.glob("shard-*") if s.is_dir()) if self.store.is_dir() else []

    def _open(self, shards: list[Path]) -> bool:
        """Verify and add `shards`; False when one was damaged (deleted, its examples now missing)."""
        bad = []
        for shard in shards:
            problems = verify_once(shard, self.mode)
            if problems:
                bad.append(f"{shard.name} ({problems[0]})")
                forget_arrays(shard)  # a recomputed shard of the same name must not be served from memory
                shutil.rmtree(shard, ignore_errors=True)  # its examples count as missing and are recomputed
                continue
            if shard not in self.shards:
                self.add(shard)
        if bad:
            log.warning("activation cache %s: %d damaged shard(s) deleted, their examples are recomputed: %s",
                        self.store, len(bad), "; ".join(bad))
        return not bad

    def refresh(self) -> bool:
        """Before a later run reuses this index: every shard verified again (as a fresh index would), shards other
        processes published meanwhile added. False when one it knew is gone or damaged: build a fresh index."""
        present = self._present()
        if not self.shards <= set(present):
            return False
        return self._open(present)

    def add(self, shard: Path) -> None:
        keys = [k.tobytes() for k in np.load(shard / "keys.npy")]
        for path in shard.glob("*.npy"):
            if parse_array(path.stem) is not None:
                found = self.rows.setdefault(path.stem, {})
                found.update((key, (shard, row)) for row, key in enumerate(keys))
        self.shards.add(shard)

    def offsets(self, shard: Path) -> np.ndarray:
        if shard not in self._offsets:
            self._offsets[shard] = np.load(shard / "offsets.npy")
        return self._offsets[shard]


_INDEXES: dict[tuple[str, str, str], StoreIndex] = {}  # process-wide: (store, dtype, verify mode) → its index


def store_index(store: Path, dtype: str, mode: str | None = None) -> StoreIndex:
    """The process's index of `store`, built once and refreshed for each later run (`StoreIndex.refresh`)."""
    mode = mode or verify_mode()
    key = (os.path.abspath(store), dtype, mode)
    index = _INDEXES.get(key)
    if index is None or not index.refresh():
        index = _INDEXES[key] = StoreIndex(Path(store), dtype, mode)
    return index


def ensure_examples(run, index: StoreIndex, enc, keys: np.ndarray, wanted: list[str], device, progress: bool,
                    split: str) -> int:
    """Compute (as one new shard) the examples of `enc` that no shard holds for every wanted array; returns how
    many were computed."""
    missing, seen = [], set()
    for i, key in enumerate(keys):
        k = key.tobytes()
        if k not in seen and any(k not in index.rows.get(name, {}) for name in wanted):
            missing.append(i)
        seen.add(k)
    if missing:
        rows = np.asarray(missing, dtype=np.int64)
        index.add(write_shard(run, index, enc, rows, keys, wanted, device, progress, split))
    return len(missing)


def write_shard(run, index: StoreIndex, enc, rows: np.ndarray, keys: np.ndarray, wanted: list[str], device,
                progress: bool, split: str) -> Path:
    """Compute examples `rows` of `enc` for every array in `wanted` into a new shard; returns its folder."""
    store = index.store
    lengths = np.asarray(enc.lengths)[rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    hidden = run.model.backbone.config.hidden_size
    name = "shard-" + hashlib.sha1(keys[rows].tobytes() + repr(wanted).encode()).hexdigest()[:16]
    tmp = store / temp_name(name)  # carries the pid: `stale_temp_cleanup` removes it if this process dies
    tmp.mkdir(parents=True)
    try:
        # blocks reserved up front: a full disk is one DiskFullError here, not a SIGBUS while filling the map
        arrays = {a: open_memmap_guarded(tmp / f"{a}.npy", NUMPY_DTYPE[index.dtype],
                                         (int(offsets[-1]) if a.startswith("layer") else len(rows), hidden))
                  for a in wanted}
        compute_states(run, enc, rows, arrays, offsets, index.dtype, device, progress, split)
        for array in arrays.values():
            array.flush()
        del arrays
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "keys.npy", keys[rows])
        write_manifest(tmp)  # last: a shard without a manifest was never finished
        publish(tmp, store / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return store / name


def publish(tmp: Path, shard: Path) -> None:
    """Rename the finished `tmp` shard to `shard`. Only the race is ignored: another process published the same
    shard meanwhile (the rename finds a non-empty folder), and theirs is as good as ours. Any other failure (a
    read-only or vanished cache folder, permissions) is one line: the examples were computed but not stored."""
    try:
        tmp.rename(shard)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and (shard / "manifest.json").is_file():
            return
        why = exc.strerror or str(exc)
        raise UnfreezeError(f"activation cache {shard.parent}: could not store shard {shard.name} ({why}); make the "
                            "cache folder writable (or remove a damaged shard folder of that name), or set "
                            "UNFREEZE_CACHE_DIR elsewhere (or train.cache: off)") from exc
    remember_verified(shard)  # its checksums were just computed from the files on disk


def pooled(kind: str, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """What the head reads from `states` under pooling `kind` — the same ops as `EncoderClassifier.features`."""
    return states[:, 0] if kind == "cls" else mean_pool(states, attention_mask)


def compute_states(run, enc, rows: np.ndarray, arrays: dict, offsets: np.ndarray, dtype: str, device,
                   progress: bool, split: str) -> None:
    """One eval-mode forward over examples `rows` of `enc` with all hidden states; copy each array's states into
    it: real tokens for `layer<b>` (example `rows[j]` at `offsets[j]:offsets[j + 1]`), one pooled row `j` for
    `mean<b>` / `cls<b>`. A progress bar counts tokens (batches run longest first, so tokens give a fair ETA)."""
    from tqdm.auto import tqdm

    backbone = run.model.backbone
    was_training = backbone.training
    backbone.to(device)
    num_layers = run.model.layout.num_layers
    batches = inference_batches(enc, run.config.train.eval_batch_size, run.tokenizer.pad_token_id or 0,
                                get_task(run.config.task).per_token, rows)
    torch_dtype = TORCH_DTYPE[dtype]
    plan = {name: parse_array(name) for name in arrays}
    bar = tqdm(total=int(offsets[-1]), unit="tok", unit_scale=True, disable=not progress, leave=False,
               desc=f"caching frozen layers ({split}: {len(rows)} examples)", dynamic_ncols=True)

    def forward(item):
        inputs = encoder_inputs(item[1], device)
        return backbone(**inputs, output_hidden_states=True), inputs["attention_mask"]

    def store(item, result) -> None:
        (positions, _), (out, mask) = item, result
        STATS["forward_batches"] += 1
        STATS["forward_examples"] += len(positions)
        for name, array in arrays.items():
            kind, b = plan[name]
            states = out.last_hidden_state if b >= num_layers else out.hidden_states[b]
            if kind != "layer":
                states = pooled(kind, states, mask)
            states = states.to(torch_dtype).cpu()
            if torch_dtype == torch.bfloat16:
                states = states.view(torch.int16)
            states = states.numpy()
            if kind != "layer":
                array[np.asarray(positions)] = states.view(array.dtype)
                continue
            for row, j in enumerate(positions):
                n = offsets[j + 1] - offsets[j]
                array[offsets[j]:offsets[j + 1]] = states[row, :n].view(array.dtype)
        bar.update(int(sum(offsets[j + 1] - offsets[j] for j in positions)))

    try:
        run_inference(backbone, batches, forward, store)
    finally:
        bar.close()
    backbone.train(was_training)


def open_array(path: Path, ram_mb: int) -> np.ndarray:
    """The array at `path`, in RAM while this process's budget `ram_mb` allows, else a read-only memory map."""
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


def forget_arrays(shard: Path) -> None:
    prefix = str(shard.resolve()) + os.sep
    for key in [k for k in _RAM if k.startswith(prefix)]:
        _RAM_BYTES[0] -= _RAM.pop(key).nbytes


def reset_memory() -> None:
    """Forget what this process holds: arrays in RAM and the store indexes (as a new process would)."""
    _RAM.clear()
    _RAM_BYTES[0] = 0
    _INDEXES.clear()
