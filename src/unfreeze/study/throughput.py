"""This machine's measured throughput for one model: forward (eval) and forward+backward (train) tokens per second.

Estimates built on constants measured once on someone else's laptop are wrong by 10× on a GPU and by 2× on a
busier CPU. So the first estimate for a model times a few real batches (a few seconds) and remembers the result
in the user cache dir (`$UNFREEZE_CACHE_DIR/throughput.json`, else `~/.cache/unfreeze/throughput.json`), keyed by
model + device + torch threads + the data's text-length bucket (+ the length timed, when shorter than the bucket);
later dry runs and plans read it back. `UNFREEZE_REMEASURE=1` measures again:
the figure is the machine's speed under the load of that moment, so one taken while other jobs ran is too low.
Tokens are counted as *padded* tokens per batch (what the encoder actually processes). A model that cannot be timed
(no weights, an unusual output) gets None, and callers fall back to the documented MiniLM constants.

The whole measurement stops at `CAP_SECONDS` (a long-text model on a busy CPU must not hold a dry run for minutes;
a caller timing two lengths passes each half of it as `cap`):
each mode times at least one batch, then stops at `MIN_SECONDS` or the cap. Before it starts, the 1-minute load
average is compared with the cores (`machine_load`): a figure taken while other jobs held the CPU is stored with
`"under_load"`, and a later plan re-measures it when the machine has become quiet, or else uses it and says so
(`load_note`).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

BATCH_SIZE = 8  # the fewest texts per timed batch: a batch of 16 × 256 took 25 s forward+backward on a busy 2-core CPU
BATCH_TOKENS = 2048  # tokens per timed batch: short texts are timed in batches of up to MAX_ROWS, as runs batch them
MAX_ROWS = 64  # (runs fill caches and evaluate in batches of `eval_batch_size` = 64, not 8)
WARM_UP_BATCHES = 2  # full batches run untimed first (allocations, kernel selection, the thread pool)
TRAIN_ROWS = 16  # forward+backward is timed at most at the default `train.batch_size`
MIN_SECONDS = 1.0  # per mode: keep timing batches until this much time has passed (or MAX_BATCHES ran)
MAX_BATCHES = 4
CAP_SECONDS = 20.0  # the whole measurement, model loading excluded (the dry run's promise: ≤ 30 s)
BUSY_LOAD = 0.75  # 1-minute load average per core above which the machine counts as busy


def machine_load() -> dict | None:
    """{"load1", "cores", "busy"} from `os.getloadavg` (None where the OS has none)."""
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    return {"load1": round(load1, 2), "cores": cores, "busy": load1 > BUSY_LOAD * cores}


def load_note(result: dict | None) -> str | None:
    """A line for plans that rest on a figure measured while the machine was busy (the main one or the one timed at
    512 tokens, `"longer"`), else None."""
    load = (result or {}).get("under_load") or ((result or {}).get("longer") or {}).get("under_load")
    if not load:
        return None
    return (f"throughput measured under load (load average {load['load1']:g} on {load['cores']} cores): estimates may "
            "be pessimistic; UNFREEZE_REMEASURE=1 measures again")


def cache_file() -> Path:
    env = os.environ.get("UNFREEZE_CACHE_DIR")
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unfreeze"
    return root / "throughput.json"


def device_name() -> str:
    import torch

    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"


def length_bucket(mean_tokens: float | None) -> int | None:
    """The power of two (32 … 512) at or above a data set's mean token length: per-token speed depends on it
    (short batches pay more per-batch overhead, long ones quadratic attention), so each bucket is measured."""
    if not mean_tokens:
        return None
    return next((b for b in (32, 64, 128, 256) if mean_tokens <= b), 512)


def cache_key(model_name: str, threads: int | None = None, length: int | None = None) -> str:
    import torch

    key = f"{model_name}|{device_name()}|threads={threads or torch.get_num_threads()}"
    return key + (f"|tokens<={length}" if length else "")


def _read() -> dict:
    try:
        return json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def timed_key(model_name: str, threads: int | None, bucket: int | None, max_length: int) -> str:
    """The cache key of a figure timed at `max_length` on data of length `bucket`: the bucket's own when they match,
    with `|at=N` when the timing cuts the data's texts shorter (N < bucket) or reaches past 256 tokens (a 512-token
    run costs 1.4-2× more per token: a study at 512 that reused a 256-token figure was estimated 35 % short,
    BENCHMARKS.md) on data long enough to reach it (bucket ≥ 128); short texts timed at 64, 256 or 512 share one
    entry (padded to their own length either way)."""
    separate = bucket and max_length != bucket and (max_length < bucket or (max_length > 256 and bucket >= 128))
    return cache_key(model_name, threads, bucket) + (f"|at={max_length}" if separate else "")


def cached_throughput(model_name: str, threads: int | None = None, length: int | None = None) -> dict | None:
    return _read().get(cache_key(model_name, threads, length))


def measure_throughput(model_cfg, texts: list[str], max_length: int = 128, threads: int | None = None,
                       refresh: bool = False, mean_tokens: float | None = None, announce=None,
                       loaded=None, cap: float = CAP_SECONDS) -> dict | None:
    """{"forward_tokens_per_s", "train_tokens_per_s", "step_seconds", "embedding_share", "layers", "hidden", "key"}
    for `model_cfg` on this machine, measured on batches of `texts` truncated at `max_length` (from the cache
    unless `refresh`; one entry per `length_bucket(mean_tokens)` of the data); None on failure. `announce(text)` is
    called before a measurement starts (not for a cached figure); `loaded`: the (model, tokenizer) already in
    memory (its weights are changed by the timed optimizer steps: pass one that is not used afterwards); `cap`:
    seconds the timing may take, model loading excluded."""
    import torch

    key = timed_key(model_cfg.name, threads, length_bucket(mean_tokens), max_length)
    known = _read()
    refresh = refresh or os.environ.get("UNFREEZE_REMEASURE") == "1"  # measured while the machine was busy
    load = machine_load()
    if key in known and not refresh and "batch_rows" in known[key]:  # older entries (timed at 8 texts) are redone
        if not (known[key].get("under_load") and load and not load["busy"]):
            return known[key]  # (one measured under load is taken again once the machine is quiet)
    if announce is not None:
        announce(f"measuring throughput at {max_length} tokens… (a few batches, at most {cap:.0f} s; cached per "
                 "machine and model)")
    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        result = _time_model(model_cfg, texts, max_length, *([loaded] if loaded is not None else []), cap=cap)
    except Exception as exc:  # noqa: BLE001 (an estimate must never block a plan)
        log.warning("could not measure throughput of %s: %s", model_cfg.name, exc)
        return None
    finally:
        torch.set_num_threads(before)  # the runs that follow in this process set their own
    result["key"] = key
    if load and load["busy"]:
        result["under_load"] = load
    known[key] = result
    from unfreeze.io import write_json

    cache_file().parent.mkdir(parents=True, exist_ok=True)
    write_json(cache_file(), known)
    return result


def _optimizer_step_seconds(model, device, deadline: float = float("inf")) -> float:
    """Seconds of one AdamW step over every parameter (the gradients of the last timed step are still there): paid
    once per batch whatever its length, so it dominates small batches of short texts with every layer trained."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.grad is not None], lr=1e-6)
    optimizer.step()  # allocates the moment buffers
    if device.type == "cuda":
        torch.cuda.synchronize()
    started, steps = time.perf_counter(), 0
    while steps < 1 or (steps < 20 and time.perf_counter() - started < MIN_SECONDS / 2
                        and time.perf_counter() < deadline):
        optimizer.step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def batch_rows(longest: int) -> int:
    """Texts per timed batch: about BATCH_TOKENS tokens (at least BATCH_SIZE texts, at most MAX_ROWS), so short
    texts are timed in the batch sizes a run uses, where a core does several times more tokens per second."""
    return max(BATCH_SIZE, min(MAX_ROWS, BATCH_TOKENS // max(int(longest), 1)))


def _time_model(model_cfg, texts: list[str], max_length: int, loaded=None, cap: float = CAP_SECONDS) -> dict:
    import torch

    from unfreeze.model.backbone import load_backbone

    model, tokenizer = loaded or load_backbone(model_cfg)
    deadline = time.perf_counter() + cap
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    texts = [t for t in texts if t] or ["a short example text"] * BATCH_SIZE
    longest = max(len(ids) for ids in tokenizer(texts[:MAX_ROWS], truncation=True, max_length=max_length)["input_ids"])
    rows = batch_rows(longest)
    texts = texts[:rows * MAX_BATCHES]

    def batched(size: int) -> list[dict]:
        encoded = [tokenizer(texts[i:i + size], truncation=True, max_length=max_length, padding=True,
                             return_tensors="pt") for i in range(0, len(texts), size)]
        return [{k: v.to(device) for k, v in b.items() if k in ("input_ids", "attention_mask")} for b in encoded]

    def hidden(batch):
        out = model(**batch)
        out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out)
        return out.float()

    def timed(step, share: float, batches: list[dict]) -> float:
        """Tokens/s of `step`; stops after one timed batch once `share` of the time left is used."""
        stop = time.perf_counter() + share * max(deadline - time.perf_counter(), 0.0)
        for _ in range(WARM_UP_BATCHES):  # untimed: allocations, kernel selection, the thread pool waking up
            step(batches[0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        tokens, started, i = 0, time.perf_counter(), 0
        while i < MAX_BATCHES and (i == 0 or (time.perf_counter() - started < MIN_SECONDS
                                              and time.perf_counter() < stop)):
            batch = batches[i % len(batches)]
            step(batch)
            tokens += int(batch["input_ids"].numel())
            i += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        return tokens / max(time.perf_counter() - started, 1e-9)

    def forward(batch):
        with torch.no_grad():
            hidden(batch)

    def train_step(batch):
        model.zero_grad(set_to_none=True)
        hidden(batch).pow(2).mean().backward()

    model.eval()
    forward_rate = timed(forward, 0.3, batched(rows))
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    train_rate = timed(train_step, 0.7, batched(min(rows, max(TRAIN_ROWS, BATCH_SIZE))))
    step_seconds = _optimizer_step_seconds(model, device, deadline)
    config = getattr(model, "config", None)
    total = sum(p.numel() for p in model.parameters())
    embeddings = getattr(model, "embeddings", None)
    in_embeddings = sum(p.numel() for p in embeddings.parameters()) if embeddings is not None else 0
    return {"forward_tokens_per_s": round(forward_rate, 1), "train_tokens_per_s": round(train_rate, 1),
            "step_seconds": round(step_seconds, 5), "embedding_share": round(in_embeddings / max(total, 1), 4),
            "layers": int(getattr(config, "num_hidden_layers", 0) or 0),
            "hidden": int(getattr(config, "hidden_size", 0) or 0), "device": device_name(),
            "threads": torch.get_num_threads(), "max_length": max_length, "batch_rows": rows}
