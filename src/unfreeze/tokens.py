"""Token classification (NER-style): tagged sentences in, one predicted tag per input word out.

What a caller can rely on:

* **Reading** (`load_token_data`): CoNLL-style column files, JSONL with a tokens list and a tags list, `datasets`
  folders saved to disk, and the built-in `wnut16`. Exact duplicate sentences are removed before splitting (so
  one sentence cannot sit in train and test); fraction splits and `train_size` subsamples depend on
  `data.split_seed` only (every seed and arm of a study sees the same test set). Every problem is one
  `DataError` naming file, line and value.
* **Tag schemes** are detected (or declared) and *checked, never repaired*: an `I-X` after `O` in IOB2 is counted,
  logged and stored in `notes["scheme_violations"]`, because silently rewriting gold tags changes the test set
  that every published number refers to.
* **Alignment** (`encode_token_splits`): words → subwords with the fast tokenizer (`is_split_into_words=True`,
  `word_ids()`); the first subword of a word carries its label (or every subword with `label_all_subwords`),
  other positions -100. A word always gets exactly one prediction — from the logits of its first subword in the
  window that *owns* it — the one where it is most central (see `_owner_windows`) — or the fallback tag when it has no position at all (the tokenizer
  produced no subword for it, or `truncate` cut it off); such words are counted, never skipped, so metrics are
  over the words of the data as given.
* **Windows**: a sentence longer than `max_length` is cut at word boundaries into overlapping windows (`stride`
  subwords re-read by the next window) instead of being truncated, unless `data.truncate`.

Metric definitions live in `token_metrics.py`.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import DataConfig
from .encode import Encoded, choose_max_length
from .errors import DataError
from .files import write_text
from .token_metrics import detect_scheme, parse_tag, scheme_violations, tag_metrics  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

_ALLOWED_PREFIXES = {"iob1": {"B", "I"}, "iob2": {"B", "I"}, "bioes": {"B", "I", "E", "S"}}
_SPLIT_NAMES = {"validation": "val", "dev": "val", "valid": "val"}


# ---------------------------------------------------------------------------------------------------------
# Data structures


@dataclass
class TokenSplit:
    """One split: parallel lists; `tags[i][j]` indexes `TokenTaskData.label_names` for word j of sentence i."""

    ids: list[str]
    words: list[list[str]]
    tags: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "TokenSplit":
        index = [int(i) for i in np.asarray(index, dtype=int)]
        return TokenSplit([self.ids[i] for i in index], [self.words[i] for i in index], [self.tags[i] for i in index])


@dataclass
class TokenTaskData:
    train: TokenSplit
    val: TokenSplit
    test: TokenSplit
    label_names: list[str]
    notes: dict = field(default_factory=dict)


@dataclass
class Sentence:
    """A sentence as read, before labels become indices; `where` is `file:line` (or `folder[split] row i`)."""

    id: str
    words: list[str]
    tags: list[str] | None
    where: str


# ---------------------------------------------------------------------------------------------------------
# Reading


def read_conll(path: str | Path, tag_column: int = -1, require_tags: bool = True) -> list[Sentence]:
    """Sentences of a CoNLL-style file: one word per line, token in column 0, tag in `tag_column`; a blank (or
    whitespace-only) line ends a sentence; `-DOCSTART-` lines are document markers, not words.

    Columns are split on tabs when the line has a tab (so a token may contain other whitespace, e.g. a
    no-break space, and still reach the tokenizer), else on ASCII spaces."""
    path = Path(path)
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str | None] = []
    start = 0

    def flush() -> None:
        if words:  # with require_tags every line was checked to carry a tag
            has_all = all(t is not None for t in tags)
            sentences.append(Sentence(str(len(sentences)), list(words), list(tags) if has_all else None,  # type: ignore[arg-type]
                                      f"{path}:{start}"))
        words.clear()
        tags.clear()

    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    flush()
                    continue
                parts = line.split("\t") if "\t" in line else [p for p in line.strip(" ").split(" ") if p]
                if parts[0].strip() == "-DOCSTART-":
                    flush()
                    continue
                tag = None
                if len(parts) >= 2:
                    try:
                        column = range(len(parts))[tag_column]
                    except IndexError:
                        raise DataError(f"{path}:{n}: no tag column {tag_column} in {line!r} ({len(parts)} "
                                        "columns); set data.conll_tag_column") from None
                    if column == 0:
                        raise DataError(f"{path}:{n}: data.conll_tag_column={tag_column} points at the token "
                                        "column (0)")
                    tag = parts[column].strip()
                if require_tags and not tag:
                    raise DataError(f"{path}:{n}: expected `token<TAB>tag` (or space-separated columns with the tag "
                                    f"in column {tag_column}), got {line!r}")
                if not words:
                    start = n
                words.append(parts[0])
                tags.append(tag or None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    flush()
    return sentences


def read_token_jsonl(path: str | Path, tokens_column: str = "tokens", tags_column: str | None = "tags",
                     id_column: str | None = None, require_tags: bool = True) -> list[Sentence]:
    """Sentences of a JSONL file: one object per line with a list of tokens and (for training) a list of tags of
    the same length. Integer tags are kept as their string (`3` → "3"). A missing/empty/null tokens or tags
    value is returned with `tags=None` / `words=[]` and handled by `data.bad_rows` later; anything malformed
    (not JSON, not lists of strings, lengths differ) is an error. `tags_column=None` reads tokens only."""
    path = Path(path)
    out: list[Sentence] = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): U+2028 may sit inside a token
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg}): {line[:80]!r}") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
        if tokens_column not in row:
            raise DataError(f"{where}: no key {tokens_column!r}; keys are {sorted(row)} (set data.tokens_column)")
        words = row[tokens_column] or []
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError(f"{where}: {tokens_column!r} must be a list of strings, got {str(words)[:80]}")
        tags = row.get(tags_column) if tags_column else None
        if require_tags and tags_column not in row:
            raise DataError(f"{where}: no key {tags_column!r}; keys are {sorted(row)} (set data.tags_column)")
        if tags:
            if not isinstance(tags, list) or not all(isinstance(t, (str, int)) and not isinstance(t, bool)
                                                     for t in tags):
                raise DataError(f"{where}: {tags_column!r} must be a list of strings or integers, got {str(tags)[:80]}")
            if len(tags) != len(words):
                raise DataError(f"{where}: {len(words)} tokens but {len(tags)} tags")
            tags = [str(t).strip() for t in tags]
            if any(not t for t in tags):
                raise DataError(f"{where}: empty tag at position {[not t for t in tags].index(True)}")
        ident = str(row[id_column]) if id_column and id_column in row else str(len(out))
        out.append(Sentence(ident, words, tags or None, where))
    return out


def read_token_dataset(path: str | Path, cfg: DataConfig) -> dict[str, list[Sentence]]:
    """A `datasets` folder saved with `save_to_disk`: {split: sentences} ({"all": …} for a single Dataset).
    Sequence-of-ClassLabel tags become their names, so labels read the same as in a CoNLL file."""
    import datasets

    path = Path(path)
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure: name the folder
        raise DataError(f"{path}: could not load as a datasets folder: {str(exc).splitlines()[0]}") from None
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}
    out = {}
    for name, ds in parts.items():
        for column in (cfg.tokens_column, cfg.tags_column):
            if column not in ds.features:
                raise DataError(f"{path}[{name}]: no column {column!r}; columns are {list(ds.features)} "
                                "(set data.tokens_column / data.tags_column)")
        inner = getattr(ds.features[cfg.tags_column], "feature", None)
        names = inner.names if isinstance(inner, datasets.ClassLabel) else None
        ids = ds[cfg.id_column] if cfg.id_column and cfg.id_column in ds.features else range(len(ds))
        sentences = []
        for i, (ident, words, tags) in enumerate(zip(ids, ds[cfg.tokens_column], ds[cfg.tags_column])):
            where = f"{path}[{name}] row {i}"
            words = list(words or [])
            tags = [names[int(t)] if names else str(t) for t in (tags or [])]
            if tags and len(tags) != len(words):
                raise DataError(f"{where}: {len(words)} tokens but {len(tags)} tags")
            if not all(isinstance(w, str) for w in words):
                raise DataError(f"{where}: tokens must be strings, got {words[:5]}")
            sentences.append(Sentence(str(ident), words, tags or None, where))
        out[_SPLIT_NAMES.get(name, name)] = sentences
    return out


def token_format(path: Path, declared: str = "auto") -> str:
    """conll | jsonl | disk for token data (a declared `tsv` is read as tab-separated CoNLL columns)."""
    if declared in ("conll", "tsv"):
        return "conll"
    if declared in ("jsonl", "disk"):
        return declared
    if declared != "auto":
        raise DataError(f"{path}: data.format={declared!r} is not a token-task format; use conll, jsonl or disk")
    if path.is_dir():
        return "disk"
    suffixes = "".join(path.suffixes).lower()
    if ".jsonl" in suffixes or ".json" in suffixes:
        return "jsonl"
    if any(ext in suffixes for ext in (".conll", ".txt", ".tsv", ".iob", ".bio", ".bioes")):
        return "conll"
    raise DataError(f"{path}: cannot tell the token-data format from the name; set data.format (conll, jsonl, disk)")


def read_token_file(path: str | Path, cfg: DataConfig, require_tags: bool = True) -> dict[str, list[Sentence]]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    fmt = token_format(path, cfg.format)
    if fmt == "disk":
        return read_token_dataset(path, cfg)
    if fmt == "jsonl":
        return {"all": read_token_jsonl(path, cfg.tokens_column, cfg.tags_column, cfg.id_column, require_tags)}
    return {"all": read_conll(path, cfg.conll_tag_column, require_tags)}


def _raw_sentences(cfg: DataConfig) -> dict[str, tuple[list[Sentence], str]]:
    """{split: (sentences, source name)} for whatever the config points at; missing splits are absent."""
    if cfg.dataset is not None:
        from .assets import DATASETS, TOKEN_DATASETS

        if cfg.dataset not in TOKEN_DATASETS:
            known = ", ".join(sorted(TOKEN_DATASETS))
            raise DataError(f"data.dataset={cfg.dataset!r} is not a token-classification data set (built-in token "
                            f"data sets: {known}); use it with `task: sequence`" if cfg.dataset in DATASETS else
                            f"unknown built-in token data set {cfg.dataset!r}; built-ins: {known}")
        location = DATASETS[cfg.dataset].locate()
        return {"all": (read_conll(location, -1), f"dataset {cfg.dataset} ({location})")}
    if cfg.path is not None:
        parts = read_token_file(cfg.path, cfg)
        if set(parts) == {"all"}:
            return {"all": (parts["all"], cfg.path)}
        return {name: (s, f"{cfg.path}[{name}]") for name, s in parts.items()}
    out = {}
    for name in ("train", "val", "test"):
        file = getattr(cfg, name)
        if file is not None:
            parts = read_token_file(file, cfg)
            if set(parts) != {"all"}:
                raise DataError(f"{file}: a DatasetDict folder; give it as data.path instead of data.{name}")
            out[name] = (parts["all"], file)
    return out


# ---------------------------------------------------------------------------------------------------------
# Cleaning, splitting, schemes


def _drop_bad(sentences: list[Sentence], cfg: DataConfig, source: str, notes: dict) -> list[Sentence]:
    bad = [s for s in sentences if not s.words or s.tags is None]
    if not bad:
        return sentences
    what = f"{len(bad)} sentence(s) with no tokens or no tags, first at {bad[0].where}"
    if cfg.bad_rows == "error":
        raise DataError(f"{source}: {what}; fix the data or set data.bad_rows: drop")
    log.warning("%s: dropped %s", source, what)
    notes["dropped"][source] = len(bad)
    return [s for s in sentences if s.words and s.tags is not None]


def _dedupe(sentences: list[Sentence], source: str, notes: dict) -> list[Sentence]:
    """Keep the first of every exact duplicate word sequence; count removals and tag conflicts."""
    seen: dict[tuple[str, ...], Sentence] = {}
    conflicts = 0
    for s in sentences:
        key = tuple(s.words)
        if key in seen:
            conflicts += seen[key].tags != s.tags
        else:
            seen[key] = s
    removed = len(sentences) - len(seen)
    notes["duplicates_removed"][source] = removed
    if removed:
        log.info("%s: removed %d exact duplicate sentence(s) before splitting", source, removed)
    if conflicts:
        notes.setdefault("duplicate_tag_conflicts", {})[source] = conflicts
        log.warning("%s: %d duplicate sentence(s) carried different tags than their first copy (first kept)",
                    source, conflicts)
    return list(seen.values())


def _split_off(sentences: list[Sentence], fraction: float, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    """(rest, held_out): a seeded random `fraction` of sentences held out (not stratified: a sentence holds many
    labels), both in original order."""
    if fraction <= 0 or not sentences:
        return sentences, []
    n_held = max(1, int(round(len(sentences) * fraction)))
    held = set(np.random.default_rng(seed).permutation(len(sentences))[:n_held].tolist())
    return ([s for i, s in enumerate(sentences) if i not in held], [s for i, s in enumerate(sentences) if i in held])


def sorted_labels(tags) -> list[str]:
    """Label names sorted, `O` first: index 0 is then the outside tag in every matrix and report."""
    return sorted(set(tags), key=lambda t: (t != "O", t))


def _resolve_scheme(cfg: DataConfig, splits: dict[str, list[Sentence]], sources: dict[str, str],
                    notes: dict) -> str:
    """Detect or check the tag scheme; count (never fix) violations per split."""
    every = [s for name in ("train", "val", "test") for s in splits[name]]
    scheme = detect_scheme([s.tags for s in every]) if cfg.tag_scheme == "auto" else cfg.tag_scheme  # type: ignore[misc]
    if scheme in _ALLOWED_PREFIXES:
        allowed = _ALLOWED_PREFIXES[scheme]
        for s in every:
            for j, tag in enumerate(s.tags):  # type: ignore[union-attr]
                p, _ = parse_tag(tag)
                if p != "O" and p not in allowed:
                    raise DataError(f"{s.where} (word {j + 1}, {s.words[j]!r}): tag {tag!r} does not fit "
                                    f"data.tag_scheme={scheme} (allowed: O, {', '.join(sorted(allowed))}-<type>); "
                                    "set tag_scheme to the file's scheme, or plain")
    elif cfg.tag_scheme == "auto":
        odd = sorted({t for s in every for t in s.tags if t != "O"})[:5]  # type: ignore[union-attr]
        log.info("tags carry no B-/I-/E-/S- prefix (e.g. %s): scheme plain; entity_* metrics read runs of one tag "
                 "as one entity (IO)", odd)
    notes["scheme"] = scheme
    notes["scheme_declared"] = cfg.tag_scheme
    notes["scheme_violations"] = {}
    for name in ("train", "val", "test"):
        found = [(s, v) for s in splits[name] for v in scheme_violations(s.tags, scheme)]  # type: ignore[arg-type]
        notes["scheme_violations"][name] = len(found)
        if found:
            s, v = found[0]
            what = (f"an entity left open at the end of the sentence" if v == len(s.words) else
                    f"{s.tags[v]!r} after {(s.tags[v - 1] if v else 'sentence start')!r} at word {v + 1} "  # type: ignore[index]
                    f"({s.words[v]!r})")
            example = f"{s.where}: {what}"
            notes.setdefault("scheme_violation_examples", {})[name] = example
            log.warning("%s (%s): %d tag(s) break %s, e.g. %s; kept as given (entity metrics read them the "
                        "conlleval way)", sources.get(name, name), name, len(found), scheme.upper(), example)
    return scheme


def load_token_data(cfg: DataConfig) -> TokenTaskData:
    """Train/val/test splits of tagged sentences with one label list built from the training split.

    Order of operations (each step reported in `notes`): read → drop sentences without tokens/tags
    (`bad_rows`) → remove exact duplicates per source → carve test, then val, by fraction when not given →
    remove val/test sentences also in train (separate files) → label names from train (unseen val/test tags are
    an error) → `train_size` subsample (seeded by `split_seed`) → scheme detect/check on the final splits."""
    notes: dict = {"dropped": {}, "duplicates_removed": {}}
    raw = _raw_sentences(cfg)
    splits = {name: _drop_bad(s, cfg, src, notes) for name, (s, src) in raw.items()}
    sources = {name: src for name, (_, src) in raw.items()}
    if cfg.dedupe:
        splits = {name: _dedupe(s, sources[name], notes) for name, s in splits.items()}
    if "all" in splits:
        splits["train"], sources["train"] = splits.pop("all"), sources.pop("all")
    if "train" not in splits:
        raise DataError(f"{cfg.path}: no `train` split found (splits: {sorted(splits)})")
    test_carved = "test" not in splits
    if test_carved:
        splits["train"], splits["test"] = _split_off(splits["train"], cfg.split.test, cfg.split_seed)
        sources["test"] = f"{sources['train']} (test fraction {cfg.split.test})"
    if "val" not in splits:
        share = cfg.split.val / (1 - cfg.split.test) if test_carved else cfg.split.val
        splits["train"], splits["val"] = _split_off(splits["train"], share, cfg.split_seed + 1)
        sources["val"] = f"{sources['train']} (val fraction {cfg.split.val})"
    if cfg.dedupe:
        seen = {tuple(s.words) for s in splits["train"]}
        for name in ("val", "test"):
            kept = [s for s in splits[name] if tuple(s.words) not in seen]
            if len(kept) < len(splits[name]):
                log.warning("%s: removed %d sentence(s) that also occur in train", name, len(splits[name]) - len(kept))
                notes.setdefault("leaks_removed", {})[name] = len(splits[name]) - len(kept)
            splits[name] = kept
            seen |= {tuple(s.words) for s in kept}
    for name in ("train", "val"):
        if not splits[name]:
            raise DataError(f"{sources.get(name, name)}: the {name} split is empty" + (
                "; give data.val or a data.split.val fraction above 0" if name == "val" else ""))
    names = sorted_labels(t for s in splits["train"] for t in s.tags)  # type: ignore[union-attr]
    if len(names) < 2:
        raise DataError(f"{sources['train']}: only one tag ({names[0]!r}) in the training split")
    index = {n: i for i, n in enumerate(names)}
    for name in ("val", "test"):
        for s in splits[name]:
            unseen = [t for t in s.tags if t not in index]  # type: ignore[union-attr]
            if unseen:
                raise DataError(f"{sources[name]}: tag {unseen[0]!r} (first at {s.where}) never occurs in the "
                                f"training split {sources['train']}; a model cannot predict it — merge or drop the "
                                "rare tag, or give train/val/test files")
    if cfg.train_size is not None:  # after the label list: a tag the subsample misses keeps its output
        if cfg.train_size > len(splits["train"]):
            raise DataError(f"data.train_size={cfg.train_size} exceeds the {len(splits['train'])} training "
                            "sentences available")
        pick = set(np.random.default_rng(cfg.split_seed).permutation(len(splits["train"]))[:cfg.train_size].tolist())
        splits["train"] = [s for i, s in enumerate(splits["train"]) if i in pick]
    _resolve_scheme(cfg, splits, sources, notes)
    unknown = sorted(set(cfg.ignore_labels) - set(names))
    if unknown:
        raise DataError(f"data.ignore_labels: {unknown[0]!r} is not a tag of {sources['train']} (tags: {names})")
    if len(set(cfg.ignore_labels)) >= len(names):
        raise DataError(f"data.ignore_labels={cfg.ignore_labels} ignores every tag; *_ignoring metrics need one left")
    if not cfg.ignore_labels and "O" in names:
        log.warning("data.ignore_labels is empty, so *_ignoring metrics count the `O` tag; set "
                    "data.ignore_labels: [O] to measure entities only")
    result = {name: _to_split(splits[name], index) for name in ("train", "val", "test")}
    counts = Counter(t for tags in result["train"].tags for t in tags)
    fallback = "O" if "O" in index else names[max(counts, key=lambda i: (counts[i], -i))]
    notes.update(
        sentences={k: len(v) for k, v in result.items()},
        words={k: sum(len(w) for w in v.words) for k, v in result.items()},
        sizes={k: len(v) for k, v in result.items()},
        fallback_tag=fallback,
        train_tag_counts={names[i]: int(c) for i, c in sorted(counts.items())},
    )
    return TokenTaskData(result["train"], result["val"], result["test"], names, notes)


def _to_split(sentences: list[Sentence], index: dict[str, int]) -> TokenSplit:
    return TokenSplit([s.id for s in sentences], [list(s.words) for s in sentences],
                      [[index[t] for t in s.tags] for s in sentences])  # type: ignore[union-attr]


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


# ---------------------------------------------------------------------------------------------------------
# Metrics, predictions, prediction files, baseline


def fbeta_of(config) -> float:
    """β for `fbeta_*`: `data.fbeta` where the config has it, else `train.fbeta`, else 1."""
    for section in (getattr(config, "data", None), getattr(config, "train", None)):
        value = getattr(section, "fbeta", None)
        if value is not None:
            return float(value)
    return 1.0


def token_task_metrics(run, split: str, logits: list[np.ndarray], loss: float) -> dict:
    """Metrics of one split (see `token_metrics.tag_metrics`) from per-window logits in encoded order."""
    enc = run.encoded[split]
    pred = words_from_logits(enc, logits)
    fallback_words = sum(int((p[:, 0] < 0).sum()) for p in enc.owners)
    return tag_metrics(getattr(run.data, split).tags, pred, run.label_names, run.config.data.ignore_labels,
                       run.data.notes.get("scheme", "iob2"), fbeta_of(run.config), loss, fallback_words)


def write_token_predictions(path: str | Path, run, split: str, logits: list[np.ndarray]) -> None:
    """JSONL, one line per sentence: {"id", "words", "tags" (gold), "pred"} — tag names, one per word."""
    write_tag_predictions(path, getattr(run.data, split), run.label_names, words_from_logits(run.encoded[split], logits))


def write_tag_predictions(path: str | Path, source: TokenSplit, label_names: Sequence[str], preds) -> None:
    """The predictions JSONL for any per-word predictions (a run's, or the baseline's), written atomically."""
    names = list(label_names)
    lines = [json.dumps({"id": i, "words": w, "tags": [names[t] for t in g], "pred": [names[int(t)] for t in p]},
                        ensure_ascii=False) for i, w, g, p in zip(source.ids, source.words, source.tags, preds)]
    write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def predict_token_file(model, tokenizer, meta: dict, input_path: str | Path, output_path: str | Path,
                       batch_size: int = 64):
    """Tag every word of a CoNLL file (tokens in column 0; a tag column, if any, is ignored) or a JSONL file
    (`tokens` list per line). Writes `word<TAB>pred` lines with a blank line between sentences, or — when the
    output ends in .jsonl/.json — {"id", "words", "pred"} per sentence. Long sentences are windowed exactly as
    at training time (the saved `max_length` and `stride`), never truncated, so every input word gets a tag.
    Returns a frame with one row per sentence (id, words, pred)."""
    import pandas as pd
    import torch

    from .encode import Collator, LengthGroupedBatchSampler

    input_path = Path(input_path)
    fmt = token_format(input_path)
    if fmt == "disk":
        raise DataError(f"{input_path}: give a CoNLL or JSONL file to tag")
    sentences = (read_token_jsonl(input_path, meta.get("tokens_column", "tokens"), None, "id", require_tags=False)
                 if fmt == "jsonl" else read_conll(input_path, -1, require_tags=False))
    sentences = [s for s in sentences if s.words]
    if not sentences:
        raise DataError(f"{input_path}: no sentences to tag")
    labels = list(meta["labels"])
    fallback = meta.get("fallback_tag") or ("O" if "O" in labels else labels[0])
    enc = build_windows(word_pieces(tokenizer, [s.words for s in sentences]), None, special_template(tokenizer),
                        int(meta["max_length"]), int(meta.get("stride", 32)), False, False, labels.index(fallback))
    device = next(model.parameters()).device
    collate = Collator(enc, tokenizer.pad_token_id or 0, token_task=True)
    logits: list = [None] * len(enc)
    model.eval()
    with torch.inference_mode():
        for indices in LengthGroupedBatchSampler(enc.lengths, batch_size, shuffle=False):
            batch = collate(indices)
            out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            for row, i in zip(out.float().cpu().numpy(), indices):
                logits[i] = row[:enc.lengths[i]]
    preds = [[labels[t] for t in p] for p in words_from_logits(enc, logits)]
    out_path = Path(output_path)
    if out_path.suffix.lower() in (".jsonl", ".json"):
        text = "".join(json.dumps({"id": s.id, "words": s.words, "pred": p}, ensure_ascii=False) + "\n"
                       for s, p in zip(sentences, preds))
    else:
        text = "\n".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, p)) for s, p in zip(sentences, preds))
    write_text(out_path, text)
    return pd.DataFrame({"id": [s.id for s in sentences], "words": [s.words for s in sentences], "pred": preds})


def most_frequent_tag_baseline(train_words: Sequence[Sequence[str]], train_tags: Sequence[Sequence[int]],
                               eval_words: Sequence[Sequence[str]]) -> list[list[int]]:
    """Per word, the tag it most often had in training (exact form, then lower-cased), else the most frequent
    tag overall. The floor a fine-tuned model must beat: on NER it already finds every memorised entity, so an
    entity F1 near it means the encoder added little. Ties go to the lower tag index (deterministic)."""
    exact: dict[str, Counter] = {}
    lower: dict[str, Counter] = {}
    overall: Counter = Counter()
    for words, tags in zip(train_words, train_tags):
        for w, t in zip(words, tags):
            exact.setdefault(w, Counter())[int(t)] += 1
            lower.setdefault(w.lower(), Counter())[int(t)] += 1
            overall[int(t)] += 1

    def top(counter: Counter) -> int:
        return max(counter, key=lambda t: (counter[t], -t))

    default = top(overall) if overall else 0
    return [[top(exact[w]) if w in exact else top(lower[w.lower()]) if w.lower() in lower else default
             for w in words] for words in eval_words]


def most_frequent_tag_results(config, data: TokenTaskData) -> tuple[dict, dict[str, list[list[int]]]]:
    """The study's baseline row for a token task: ({"method", "val", "test", "train_seconds"}, {split: preds}).

    Metrics are exactly the runs' (`tag_metrics` with the same ignore labels, scheme and β), so the baseline
    row compares like with like; write the test predictions with `write_tag_predictions`."""
    import time

    started = time.perf_counter()
    preds = {s: most_frequent_tag_baseline(data.train.words, data.train.tags, getattr(data, s).words)
             for s in ("val", "test")}
    seconds = time.perf_counter() - started
    scheme = data.notes.get("scheme", "iob2")
    result = {"method": "most_frequent_tag",
              **{s: tag_metrics(getattr(data, s).tags, preds[s], data.label_names, config.data.ignore_labels, scheme,
                                fbeta_of(config)) for s in ("val", "test")},
              "train_seconds": round(seconds, 3)}
    return result, preds
