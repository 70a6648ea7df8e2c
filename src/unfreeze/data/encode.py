"""Tokenise once, pad per batch, batch by length.

Padding every text to 512 tokens is the single largest waste in the notebooks we replace: a 30-token review
padded to 512 costs 17× the compute. Texts are tokenised once without padding; a batch is padded to its own
longest member; training batches are drawn from buckets of similar length (shuffled within and across
buckets, seeded), evaluation batches are sorted by length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from unfreeze.config.schema import DataConfig
from unfreeze.errors import DataError


@dataclass
class Encoded:
    """One tokenised split. `labels` is an int array (sequence task) or a list of per-token label lists with
    -100 where a position carries no label (token task)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: object
    lengths: np.ndarray
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def token_lengths(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
    enc = tokenizer(list(texts), list(pairs) if pairs is not None else None, add_special_tokens=True,
                    truncation=False, verbose=False)
    return np.array([len(ids) for ids in enc["input_ids"]])


def split_token_lengths(tokenizer, split) -> np.ndarray:
    """Token length (special tokens included, untruncated) of every example of a sequence split (texts, with their
    pairs) or a token split (pre-split words, as the token task encodes them)."""
    if hasattr(split, "words"):
        enc = tokenizer(list(split.words), is_split_into_words=True, truncation=False, verbose=False)
        return np.array([len(ids) for ids in enc["input_ids"]])
    return token_lengths(tokenizer, split.texts, getattr(split, "pairs", None))


def model_max_positions(tokenizer, model=None) -> int:
    limits = [512]
    if model is not None and getattr(model.config, "max_position_embeddings", None):
        offset = 2 if model.config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(int(model.config.max_position_embeddings) - offset)
    if 0 < getattr(tokenizer, "model_max_length", 0) < 100_000:
        limits.append(int(tokenizer.model_max_length))
    return min(limits)


def choose_max_length(lengths: np.ndarray, cfg: DataConfig, hard_limit: int) -> tuple[int, dict]:
    """`max_length: auto` → the configured percentile of training token lengths, rounded up to a multiple of 8,
    capped by `max_length_cap` and the model's position limit."""
    stats = {f"p{q}": int(np.percentile(lengths, q)) for q in (50, 90, 95, 99)}
    stats["max"] = int(lengths.max())
    if cfg.max_length == "auto":
        chosen = int(np.ceil(np.percentile(lengths, cfg.max_length_percentile) / 8) * 8)
        chosen = max(8, min(chosen, cfg.max_length_cap, hard_limit))
    else:
        chosen = int(cfg.max_length)
        if chosen > hard_limit:
            raise DataError(f"data.max_length={chosen} exceeds the model's limit of {hard_limit} positions")
    stats["chosen"] = chosen
    stats["truncated_share"] = float((lengths > chosen).mean())
    return chosen, stats


def encode_texts(tokenizer, texts, pairs, labels, max_length: int, use_token_types: bool) -> Encoded:
    enc = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                    max_length=max_length, add_special_tokens=True, return_token_type_ids=use_token_types,
                    verbose=False)
    ids = [list(x) for x in enc["input_ids"]]
    types = [list(x) for x in enc["token_type_ids"]] if use_token_types else None
    return Encoded(ids, types, np.asarray(labels), np.array([len(x) for x in ids]))


def uses_token_types(model) -> bool:
    return int(getattr(model.config, "type_vocab_size", 0) or 0) > 1


# ---------------------------------------------------------------------------------------------------------
# Batching


class LengthGroupedBatchSampler:
    """Batches of example indices. Training: shuffle, cut into mega-buckets of `bucket_batches` batches, sort
    each bucket by length, cut into batches, shuffle the batch order — every example exactly once per epoch,
    deterministic for (seed, epoch). Evaluation (`shuffle=False`): sorted by length, longest first.

    With `max_tokens`, a batch also stops growing once `len(batch) × longest ≥ max_tokens`."""

    def __init__(self, lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                 group_by_length: bool = True, max_tokens: int | None = None, bucket_batches: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.group = group_by_length
        self.max_tokens = max_tokens
        self.bucket_batches = bucket_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return self._cut(order)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        if not self.group:
            return self._cut(order)
        bucket = self.batch_size * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, n, bucket):
            chunk = order[start:start + bucket]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(self._cut(chunk))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        batches, current, longest = [], [], 0
        for idx in order.tolist():
            longest_if_added = max(longest, int(self.lengths[idx]))
            too_many_tokens = self.max_tokens is not None and current and \
                longest_if_added * (len(current) + 1) > self.max_tokens
            if len(current) == self.batch_size or too_many_tokens:
                batches.append(current)
                current, longest_if_added = [], int(self.lengths[idx])
            current.append(idx)
            longest = longest_if_added
        if current:
            batches.append(current)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def pad_2d(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


class Collator:
    """Turns a list of example indices into a padded batch; with a cache, also the stored hidden states."""

    def __init__(self, encoded: Encoded, pad_token_id: int, cache=None, token_task: bool = False):
        self.encoded = encoded
        self.pad_token_id = pad_token_id
        self.cache = cache
        self.token_task = token_task

    def __call__(self, indices: list[int]) -> dict:
        enc = self.encoded
        ids = [enc.input_ids[i] for i in indices]
        batch = {
            "index": torch.as_tensor(indices, dtype=torch.long),
            "input_ids": pad_2d(ids, self.pad_token_id),
        }
        batch["attention_mask"] = pad_2d([[1] * len(r) for r in ids], 0)
        if enc.token_type_ids is not None:
            batch["token_type_ids"] = pad_2d([enc.token_type_ids[i] for i in indices], 0)
        if self.token_task:
            batch["labels"] = pad_2d([enc.labels[i] for i in indices], -100)
        else:
            batch["labels"] = torch.as_tensor(np.asarray(enc.labels)[indices], dtype=torch.long)
        if self.cache is not None:
            batch["cached_states"] = self.cache.batch(indices, batch["input_ids"].shape[1])
        return batch
