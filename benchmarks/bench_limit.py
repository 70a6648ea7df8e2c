"""The limit behind `unfreeze bench`'s efficiency column: what the hardware allows for a strategy, from timed
passes of the real model over real (unpadded) tokens — one eval forward of the frozen part over train + val, and per
epoch forward+backward of the trainable layers over train plus their forward over val.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from bench_methods import strategy_layers, sync


def limit_job(job: dict, data) -> dict:
    """Seconds per real token of (a) the frozen prefix's eval forward, (b) the trainable layers' eval forward,
    (c) the trainable layers' forward+backward (with the default and with zero attention dropout); then per
    strategy: limit = one frozen forward over train+val + epochs × (fwd+bwd over train + trainable fwd over val).
    Batches are sampled from the dataset's own length-grouped batches, so padding is what unfreeze would see."""
    from unfreeze.config.schema import ModelConfig

    model, tokenizer = limit_model(job, len(data.label_names), ModelConfig(name=job["model"]))
    encoded = {s: encode_split(tokenizer, model.backbone, getattr(data, s), job) for s in ("train", "val")}
    pad = tokenizer.pad_token_id or 0
    budget = job["limit_tokens"]
    forward = forward_costs(model, sample_batches(encoded["train"], job["eval_batch_size"], False,
                                                  budget["forward"], pad), job["device"])
    train_batches = sample_batches(encoded["train"], job["batch_size"], True, budget["train"], pad)
    per_token = {None: {s: train_cost(model, train_batches, s, job["device"]) for s in job["strategies"]}}
    model0, _ = limit_model(job, len(data.label_names), ModelConfig(name=job["model"], attention_dropout=0.0))
    per_token[0.0] = {s: (per_token[None][s] if s == "head" else train_cost(model0, train_batches, s, job["device"]))
                      for s in job["strategies"]}
    tokens = {s: int(e.lengths.sum()) for s, e in encoded.items()}
    n = model.layout.num_layers
    out = {"train_tokens": tokens["train"], "val_tokens": tokens["val"], "num_layers": n, "strategies": {}}
    for s in job["strategies"]:
        k = strategy_layers(s, n)
        frozen = 0.0 if k == n else (tokens["train"] + tokens["val"]) * forward["prefix"][n - k]
        val_fwd = tokens["val"] * (forward["full"] if k == n else forward["suffix"][k])
        out["strategies"][s] = {
            "limit_seconds": frozen + job["epochs"] * (tokens["train"] * per_token[None][s] + val_fwd),
            "limit_seconds_attention_dropout_0": frozen + job["epochs"] * (tokens["train"] * per_token[0.0][s] + val_fwd),
            "frozen_forward_tokens_per_s": None if k == n else 1 / forward["prefix"][n - k],
            "train_tokens_per_s": 1 / per_token[None][s],
            "train_tokens_per_s_attention_dropout_0": 1 / per_token[0.0][s],
        }
    out["full_forward_tokens_per_s"] = 1 / forward["full"]
    return out


def limit_model(job: dict, num_labels: int, cfg):
    from unfreeze.model.backbone import discover_layout, load_backbone
    from unfreeze.model.heads import EncoderClassifier

    backbone, tokenizer = load_backbone(cfg)
    torch.manual_seed(0)
    model = EncoderClassifier(backbone, discover_layout(backbone), num_labels, cfg).to(job["device"])
    return model, tokenizer


def encode_split(tokenizer, backbone, split, job: dict):
    from unfreeze.data.encode import encode_texts, uses_token_types

    return encode_texts(tokenizer, split.texts, None, split.labels, job["dataset"]["max_length"],
                        uses_token_types(backbone))


def sample_batches(enc, batch_size: int, shuffle: bool, token_budget: int, pad: int) -> list[dict]:
    """Random batches (of the real batching) until `token_budget` real tokens; the first is a warm-up."""
    from unfreeze.data.encode import Collator, LengthGroupedBatchSampler

    batches = LengthGroupedBatchSampler(enc.lengths, batch_size, shuffle=shuffle, seed=0).batches()
    order = np.random.default_rng(0).permutation(len(batches))
    chosen, tokens = [], 0
    for i in order:
        if tokens >= token_budget:
            break
        chosen.append(batches[i])
        tokens += int(enc.lengths[batches[i]].sum())
    warm_up = chosen[0][:2]  # two rows: thread pools and lazy initialisation, at a fraction of a batch's cost
    collate = Collator(enc, pad)
    return [collate(b) for b in (warm_up, *chosen)]


def inputs_of(batch: dict, device: str) -> dict:
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}


@torch.no_grad()
def forward_costs(model, batches: list[dict], device: str) -> dict:
    """Eval forward of the backbone, timed as a whole and per layer (hooks): seconds per real token of the
    prefix ending before layer b (`prefix[b]`, everything but the layers from b on) and of the top k layers."""
    layers = list(model.layout.layers)
    spent = [0.0] * len(layers)
    started: dict[int, float] = {}

    def before(i):
        def hook(*_):  # must return None: a returned value would replace the layer's input
            sync(device)
            started[i] = time.perf_counter()
        return hook

    def after(i):
        def hook(*_):  # must return None: a returned value would replace the layer's output
            sync(device)
            spent[i] += time.perf_counter() - started[i]
        return hook

    hooks = [h for i, layer in enumerate(layers)
             for h in (layer.register_forward_pre_hook(before(i)), layer.register_forward_hook(after(i)))]
    model.eval()
    total, tokens = 0.0, 0
    try:
        for i, batch in enumerate(batches):
            if i == 1:
                spent[:] = [0.0] * len(layers)
            sync(device)
            t = time.perf_counter()
            model.backbone(**inputs_of(batch, device))
            sync(device)
            if i > 0:
                total += time.perf_counter() - t
                tokens += int(batch["attention_mask"].sum())
    finally:
        for h in hooks:
            h.remove()
    n = len(layers)
    return {"full": total / tokens,
            "prefix": {b: (total - sum(spent[b:])) / tokens for b in range(n + 1)},
            "suffix": {k: sum(spent[n - k:]) / tokens for k in range(n + 1)}}


def train_cost(model, batches: list[dict], strategy: str, device: str) -> float:
    """Seconds per real token of forward+backward of what trains, fed (like unfreeze) with the frozen prefix's
    output, which is computed beforehand and not timed."""
    from unfreeze.config.schema import FreezeConfig
    from unfreeze.strategies.base import apply_freeze, set_train_mode

    plan = apply_freeze(model, FreezeConfig.model_validate(strategy))
    start = plan.frozen_prefix if plan.cacheable else None
    states = [prefix_states(model, batch, start, device) for batch in batches]
    set_train_mode(model, plan)
    total, tokens = 0.0, 0
    for i, (batch, cached) in enumerate(zip(batches, states)):
        inputs = inputs_of(batch, device)
        sync(device)
        t = time.perf_counter()
        logits = model(**inputs, cached_states=cached, cached_from=start)
        nn.functional.cross_entropy(logits.float(), batch["labels"].to(device)).backward()
        model.zero_grad(set_to_none=True)
        sync(device)
        if i > 0:
            total += time.perf_counter() - t
            tokens += int(batch["attention_mask"].sum())
    return total / tokens


@torch.no_grad()
def prefix_states(model, batch: dict, start, device: str):
    """Hidden states entering layer `start` (eval mode, no autograd), or None when nothing is cached."""
    if start is None:
        return None
    model.eval()
    out = model.backbone(**inputs_of(batch, device), output_hidden_states=True)
    return out.last_hidden_state if start >= model.layout.num_layers else out.hidden_states[start]
