"""Near-duplicates across splits: texts of val/test that equal a training text once case, punctuation, whitespace
and Unicode compatibility forms are ignored.

Why: exact de-duplication (`data.dedupe`) misses "Great movie!" in train vs "great movie" in test — the same
example to a model, and a test item it has in effect memorised. The check is cheap (one normalised key per text, a
set lookup) and always counted (`metrics.json["data"]["near_duplicates"]`, `unfreeze inspect`); whether the
matches are dropped is `data.near_duplicates` (docs/config.md: the default and the counts it rests on).

Shared passages (`passage_shares`): the share of val and test texts that hold a run of `PASSAGE_WORDS` words found in
a training text. A validation split carved at random from grouped data (several documents of one source, review
collections that reuse snippets) shares passages with training where the test file does not, and then flatters
whatever memorises — TF-IDF most: measured on review collections of movies (benchmarks/review_sets.py long), TF-IDF
scored 0.868 macro F1 on such a validation split and 0.484 on test. `leaky_validation` words the warning.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np

PASSAGE_WORDS = 12  # a run of 12 words shared by two texts is a copy, not a common phrase
LEAKY_SHARE = 0.2  # validation texts sharing a passage with training, at least, for the warning …
LEAKY_MARGIN = 0.1  # … and this much above the test texts' share (a test file split otherwise)
COMMON_MIN, COMMON_SHARE = 5, 0.01  # a passage in more training texts than max(5, 1 %) of them is a template
# a Han or kana character is a word of its own (Chinese and Japanese are not written with spaces); other letters and
# digits run into words (Hangul is spaced)
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_HAS_CJK, _PLAIN = re.compile(f"[{_CJK}]"), re.compile(r"\w+")  # most texts have none: the faster pattern
log = logging.getLogger("unfreeze.data.sequence")


def normalise(text: str) -> str:
    """NFKC, case-folded, with every punctuation character (Unicode category P*) and all whitespace removed."""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    # per distinct character, then one C-level translate: a per-character loop took 33 s on 4,775 long documents
    drop = {ord(c): None for c in set(folded) if c.isspace() or unicodedata.category(c).startswith("P")}
    return folded.translate(drop)


def keys(texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[str]:
    """One normalised key per example (a text pair is compared whole: both texts)."""
    if pairs is None:
        return [normalise(t) for t in texts]
    return [normalise(t) + "\x00" + normalise(p) for t, p in zip(texts, pairs)]


def matches(train_keys: Iterable[str], other_keys: Sequence[str]) -> list[bool]:
    """Per example of another split: does its normalised key occur in train? (Empty keys never match: a text of
    punctuation only says nothing about leakage.)"""
    seen = {k for k in train_keys if k.strip("\x00")}
    return [bool(k.strip("\x00")) and k in seen for k in other_keys]


def within(texts: Sequence[str]) -> int:
    """Texts of one table that repeat an earlier text only after normalisation (exact repeats not counted)."""
    exact, near, out = set(), set(), 0
    for t in texts:
        k = normalise(t)
        if t not in exact and k in near and k:
            out += 1
        exact.add(t)
        near.add(k)
    return out


#: odd 64-bit multipliers, one per position in a passage (fixed: the same text hashes alike in every process)
_POSITION = np.random.default_rng(0).integers(0, 2 ** 62, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_CHUNK = 2000  # texts tokenised at a time (memory: their words only, not a corpus' worth of strings)


def _passages(texts: Sequence[str], words: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every run of `words` words inside one text, the index of its text): word hashes combined with a
    multiplier per position (uint64, wrapping)."""
    hashes, owners = [], []
    for first in range(0, len(texts), _CHUNK):
        found = [(_WORD if _HAS_CJK.search(text) else _PLAIN).findall(text)
                 for text in (str(t).casefold() for t in texts[first:first + _CHUNK])]
        owner = np.repeat(np.arange(first, first + len(found), dtype=np.int64), [len(f) for f in found])
        n = len(owner) - words + 1
        if n <= 0:
            continue
        # str hashes: salted per process, but only compared within this call (64 bits: collisions negligible)
        word = np.fromiter(map(hash, (w for f in found for w in f)), dtype=np.int64, count=len(owner)).view(np.uint64)
        total = np.zeros(n, dtype=np.uint64)
        for j in range(words):
            total += word[j:j + n] * _POSITION[j]
        inside = owner[:n] == owner[words - 1:]
        hashes.append(total[inside])
        owners.append(owner[:n][inside])
    if not hashes:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    return np.concatenate(hashes), np.concatenate(owners)


def _copied(hashes: np.ndarray, owner: np.ndarray, n_texts: int) -> np.ndarray:
    """The sorted distinct passage hashes of the training texts, less those in more than max(`COMMON_MIN`,
    `COMMON_SHARE` × texts) of them (a template every text repeats — a form's preamble — is not a copy)."""
    order = np.argsort(hashes, kind="stable")  # stable: a hash's texts stay in ascending order
    h, o = hashes[order], owner[order]
    new_pair = np.r_[True, (h[1:] != h[:-1]) | (o[1:] != o[:-1])] if len(h) else np.zeros(0, dtype=bool)
    h = h[new_pair]
    starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, dtype=np.int64)
    texts_with = np.diff(np.r_[starts, len(h)])
    return h[starts][texts_with <= max(COMMON_MIN, COMMON_SHARE * n_texts)]


def passage_shares(train: Sequence[str], others: dict[str, Sequence[str]], words: int = PASSAGE_WORDS) -> dict:
    """{"words": words, split: share of its texts holding a run of `words` words that occurs in a training text}
    (a CJK character counts as a word; passages common to many training texts are ignored, `_copied`)."""
    seen = _copied(*_passages(list(train), words), len(train))
    out: dict = {"words": words}
    for name, texts in others.items():
        hashes, owner = _passages(list(texts), words)
        order = np.argsort(hashes)  # sorted needles: searchsorted walks `seen` once instead of jumping about
        hashes, owner = hashes[order], owner[order]
        at = np.minimum(np.searchsorted(seen, hashes), max(len(seen) - 1, 0))
        hit = owner[seen[at] == hashes] if len(seen) else owner[:0]
        if len(texts):  # an empty split has no share (0 % would read as "test shares nothing")
            out[name] = round(len(np.unique(hit)) / len(texts), 4)
    return out


def validation_leaks(shares: dict | None) -> bool:
    """Whether validation shares passages with training far more than test does (`LEAKY_SHARE`, `LEAKY_MARGIN`):
    a validation ranking then flatters models that memorise, and the test file is the one to read."""
    val, test = (shares or {}).get("val"), (shares or {}).get("test")
    return val is not None and val >= LEAKY_SHARE and (test is None or val >= test + LEAKY_MARGIN)


def shared_passage_warning(shares: dict | None) -> str | None:
    """The warning when validation shares passages with training far more than test does, or test does itself
    (`LEAKY_SHARE`, `LEAKY_MARGIN`); None when neither."""
    if not shares:
        return None
    val, test, words = shares.get("val"), shares.get("test"), shares.get("words", PASSAGE_WORDS)
    out = []
    if validation_leaks(shares):
        against = f" (test: {100 * test:.0f} %)" if test is not None else ""
        out.append(f"{100 * val:.0f} % of validation texts share a passage of {words}+ words with a training text"
                   f"{against}: validation may flatter models that memorise (TF-IDF most) and pick the wrong arm")
    if test is not None and test >= LEAKY_SHARE:
        out.append(f"{100 * test:.0f} % of test texts share a passage of {words}+ words with a training text: test "
                   "scores flatter models that memorise")
    if not out:
        return None
    return "; ".join(out) + "; if the data come in groups (one source, author or item per several texts), split " \
        "by group and pass the splits as files (data.val, data.test)"


def check_frames(frames: dict, policy: str, notes: dict) -> dict:
    """Count (and with `policy` "drop", remove) val/test texts equal to a training text after normalisation
    (`data.near_duplicates`): `notes["near_duplicates"]` = {"val": n, "test": n, "policy"}; and the shares of
    val / test texts that share a passage with training (`notes["shared_passages"]`, a warning when too many)."""

    def frame_keys(frame) -> list[str]:
        return keys(frame["text"].tolist(), frame["pair"].tolist() if "pair" in frame.columns else None)

    train = frame_keys(frames["train"])
    counts: dict = {"policy": policy}
    for name in ("val", "test"):
        hit = np.array(matches(train, frame_keys(frames[name])), dtype=bool)
        counts[name] = int(hit.sum())
        if hit.any():
            log.warning("%s: %d text(s) equal a training text after normalisation (case, punctuation, whitespace, "
                        "NFKC)%s", name, int(hit.sum()), "; dropped" if policy == "drop" else
                        "; kept (data.near_duplicates: keep)")
            if policy == "drop":
                frames[name] = frames[name][~hit].reset_index(drop=True)
    notes["near_duplicates"] = counts
    notes["shared_passages"] = passage_shares(frames["train"]["text"].tolist(),
                                              {name: frames[name]["text"].tolist() for name in ("val", "test")})
    warning = shared_passage_warning(notes["shared_passages"])
    if warning:
        log.warning(warning)
    return frames
