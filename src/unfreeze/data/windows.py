"""Token classification: words → subword windows for the model, and model outputs → one tag per word.

* **Alignment** (`encode_token_splits`): words → subwords with the fast tokenizer; the first subword of a word
  carries its label (or every subword with `label_all_subwords`), other positions -100. A word always gets exactly
  one prediction — from the logits of its first subword in the window that *owns* it, the one where it is most
  central (see `_owner_windows`) — or the fallback tag when it has no position at all (the tokenizer produced no
  subword for it, or `truncate` cut it off); such words are counted, never skipped, so metrics are over the words
  of the data as given.
* **Windows**: a sentence longer than `max_length` is cut at word boundaries into overlapping windows (`stride`
  subwords re-read by the next window) instead of being truncated, unless `data.truncate`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from unfreeze.config.schema import DataConfig
from unfreeze.data.encode import Encoded, choose_max_length
from unfreeze.errors import DataError
from unfreeze.data.tokens import TokenTaskData

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Alignment and windows


@dataclass
class TokenEncoded(Encoded):
    """Windows of one split (what the model sees) plus the map back to words (what metrics see).

    `sentence_index[k]`: the sentence of window k. `word_ids[k][p]`: word index (within its sentence) of
    position p of window k, -1 for special tokens. `owners[i]`: (n_words, 2) array of (window, position of the
    word's first subword) that predicts each word of sentence i, (-1, -1) for a word with no position (fallback).
    """

    sentence_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    word_ids: list[list[int]] = field(default_factory=list)
    owners: list[np.ndarray] = field(default_factory=list)
    fallback: int = 0
    dropped_words: int = 0  # words with zero subwords (the tokenizer removed them)
    truncated_words: int = 0  # words cut off by `data.truncate`
    windowed_sentences: int = 0


def special_template(tokenizer) -> tuple[list[int], list[int]]:
    """(prefix, suffix) special-token ids the tokenizer wraps a single sequence in, e.g. ([CLS], [SEP]) —
    learned by encoding one probe word, so it holds for any architecture without a per-model table."""
    for probe in ("a", "the", "x", "1"):
        enc = tokenizer([[probe]], is_split_into_words=True, add_special_tokens=True)
        wids = enc.word_ids(0)
        where = [i for i, w in enumerate(wids) if w == 0]
        if where:
            ids = list(enc["input_ids"][0])
            return ids[:where[0]], ids[where[-1] + 1:]
    raise DataError("the tokenizer produced no subword for the probe words a/the/x/1; cannot find its special tokens")


def word_pieces(tokenizer, sentences: Sequence[Sequence[str]], chunk: int = 1024) -> list[list[list[int]]]:
    """Subword ids of every word: `out[i][j]` is the (possibly empty) list for word j of sentence i."""
    out: list[list[list[int]]] = []
    for start in range(0, len(sentences), chunk):
        batch = [list(s) for s in sentences[start:start + chunk]]
        try:
            enc = tokenizer(batch, is_split_into_words=True, add_special_tokens=False, truncation=False,
                            verbose=False)
            word_ids = [enc.word_ids(i) for i in range(len(batch))]
        except ValueError as exc:  # slow tokenizers have no word_ids; BPE ones may need add_prefix_space
            raise DataError(f"token tasks need a fast tokenizer that accepts pre-split words: "
                            f"{str(exc).splitlines()[0]}") from None
        for i, words in enumerate(batch):
            pieces: list[list[int]] = [[] for _ in words]
            for token, w in zip(enc["input_ids"][i], word_ids[i]):
                if w is not None:
                    pieces[w].append(int(token))
            out.append(pieces)
    return out


def plan_windows(sizes: Sequence[int], capacity: int, stride: int, truncate: bool) -> list[tuple[int, int]]:
    """Word ranges [start, end) of the windows of one sentence whose words have `sizes` subwords each.

    Windows break only between words. Each next window starts so that it re-reads the last words of the
    previous one, at most `stride` subwords of them (at least one new word per window, so it always ends). A
    single word longer than `capacity` gets a window of its own and its subwords are cut to fit. With
    `truncate`, only the first window is kept."""
    n = len(sizes)
    if sum(sizes) <= capacity:
        return [(0, n)]
    windows = []
    start = 0
    while True:
        end, total = start, 0
        while end < n and total + sizes[end] <= capacity:
            total += sizes[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n or truncate:
            return windows
        nxt, overlap = end, 0
        while nxt - 1 > start and overlap + sizes[nxt - 1] <= stride:
            nxt -= 1
            overlap += sizes[nxt]
        start = nxt


def _owner_windows(sizes: Sequence[int], windows: list[tuple[int, int]], n: int) -> list[int]:
    """For each word, the index of the window that predicts it (-1: in no window or no subword).

    Rule: the window where the word is most central — the largest min(subwords of context on its left, on its
    right) inside the window, where a window edge that is also the sentence edge counts as unlimited context
    (nothing was cut there). Ties go to the earlier window. Fixed at encoding time, so it does not depend on
    the logits and a word is labelled for training in exactly the window that later predicts it."""
    owner = [-1] * n
    best = [-1.0] * n
    for k, (start, end) in enumerate(windows):
        total = sum(sizes[start:end])
        left = 0
        for w in range(start, end):
            right = total - left - sizes[w]
            if sizes[w] > 0:
                score = min(left if start > 0 else float("inf"), right if end < n else float("inf"))
                if score > best[w]:
                    best[w], owner[w] = score, k
            left += sizes[w]
    return owner


def build_windows(pieces: list[list[list[int]]], tags: list[list[int]] | None, template: tuple[list[int], list[int]],
                  max_length: int, stride: int, truncate: bool, label_all: bool, fallback: int) -> TokenEncoded:
    """Input ids, labels and the word map for every window of every sentence (see `plan_windows`)."""
    prefix, suffix = template
    capacity = max_length - len(prefix) - len(suffix)
    if capacity < 1:
        raise DataError(f"data.max_length={max_length} leaves no room for words after "
                        f"{len(prefix) + len(suffix)} special tokens")
    stride = min(stride, capacity // 2)
    ids, labels, word_ids, sentence_index, owners = [], [], [], [], []
    dropped = truncated = windowed = 0
    for i, sentence in enumerate(pieces):
        sizes = [min(len(p), capacity) for p in sentence]
        windows = plan_windows(sizes, capacity, stride, truncate)
        owner = _owner_windows(sizes, windows, len(sentence))
        dropped += sum(1 for s in sizes if s == 0)
        truncated += sum(1 for w in range(windows[-1][1], len(sentence)) if sizes[w] > 0)
        windowed += len(windows) > 1
        positions = np.full((len(sentence), 2), -1, dtype=np.int64)
        base = len(ids)
        for k, (start, end) in enumerate(windows):
            row_ids, row_labels, row_words = list(prefix), [-100] * len(prefix), [-1] * len(prefix)
            for w in range(start, end):
                chunk = sentence[w][:sizes[w]]
                mine = owner[w] == k
                if mine:
                    positions[w] = (base + k, len(row_ids))
                for j, token in enumerate(chunk):
                    row_ids.append(token)
                    row_words.append(w)
                    labelled = mine and tags is not None and (j == 0 or label_all)
                    row_labels.append(int(tags[i][w]) if labelled else -100)  # type: ignore[index]
            row_ids += suffix
            row_labels += [-100] * len(suffix)
            row_words += [-1] * len(suffix)
            ids.append(row_ids)
            labels.append(row_labels)
            word_ids.append(row_words)
            sentence_index.append(i)
        owners.append(positions)
    return TokenEncoded(ids, None, labels, np.array([len(r) for r in ids], dtype=np.int64), truncated=truncated,
                        sentence_index=np.array(sentence_index, dtype=np.int64), word_ids=word_ids, owners=owners,
                        fallback=fallback, dropped_words=dropped, truncated_words=truncated,
                        windowed_sentences=windowed)


def encode_token_splits(tokenizer, data: TokenTaskData, cfg: DataConfig, max_positions: int):
    """({split: TokenEncoded}, max_length, stats). `max_length: auto` is the configured percentile of training
    sentence lengths in subwords (+ special tokens), as for sequence tasks; longer sentences become windows
    (or are truncated with `data.truncate`), so `auto` trades a few windowed sentences for short batches."""
    template = special_template(tokenizer)
    n_special = len(template[0]) + len(template[1])
    splits = {"train": data.train, "val": data.val, "test": data.test}
    pieces = {name: word_pieces(tokenizer, split.words) for name, split in splits.items()}
    lengths = np.array([sum(len(p) for p in s) + n_special for s in pieces["train"]])
    max_length, stats = choose_max_length(lengths, cfg, max_positions)
    fallback = data.label_names.index(data.notes.get("fallback_tag", data.label_names[0]))
    encoded = {name: build_windows(pieces[name], split.tags, template, max_length, cfg.stride, cfg.truncate,
                                   cfg.label_all_subwords, fallback) for name, split in splits.items()}
    all_words = [w for s in pieces["train"] for w in s if w]
    # choose_max_length calls it `truncated_share`; here long sentences are windowed unless data.truncate
    stats["long_share"] = stats.pop("truncated_share")
    stats.update(
        long_handling="truncate" if cfg.truncate else "windows",
        unit="subwords per sentence incl. special tokens",
        subwords_per_word=round(float(np.mean([len(w) for w in all_words])) if all_words else 0.0, 3),
        stride=min(cfg.stride, (max_length - n_special) // 2),
        windows={k: len(e) for k, e in encoded.items()},
        windowed_sentences={k: e.windowed_sentences for k, e in encoded.items()},
        dropped_words={k: e.dropped_words for k, e in encoded.items()},
        truncated_words={k: e.truncated_words for k, e in encoded.items()},
    )
    for name, enc in encoded.items():
        if enc.dropped_words:
            example = next(w for s, p in zip(splits[name].words, pieces[name]) for w, q in zip(s, p) if not q)
            log.warning("%s: %d word(s) have no subword under this tokenizer (e.g. %r); they get the fallback tag "
                        "%r and count in metrics", name, enc.dropped_words, example, data.label_names[fallback])
        if enc.truncated_words:
            log.warning("%s: data.truncate cut %d word(s) beyond max_length=%d; they get the fallback tag %r and "
                        "count in metrics", name, enc.truncated_words, max_length, data.label_names[fallback])
    return encoded, max_length, stats


def words_from_logits(enc: TokenEncoded, logits: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One predicted tag index per word of every sentence: argmax at the word's first subword in its owner
    window; the fallback tag where the word has no position."""
    if len(logits) != len(enc):
        raise ValueError(f"{len(logits)} windows of logits for {len(enc)} encoded windows")
    best = [np.asarray(row).argmax(-1) for row in logits]
    out = []
    for positions in enc.owners:
        pred = np.full(len(positions), enc.fallback, dtype=np.int64)
        for w in np.flatnonzero(positions[:, 0] >= 0):
            pred[w] = best[positions[w, 0]][positions[w, 1]]
        out.append(pred)
    return out
