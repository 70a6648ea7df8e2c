"""Token-classification data: reading tagged sentences, cleaning, splitting, and checking tag schemes.

* **Reading** (`load_token_data`): CoNLL-style column files, JSONL with a tokens list and a tags list, `datasets`
  folders saved to disk, and the built-in `wnut16`. Exact duplicate sentences are removed before splitting (so
  one sentence cannot sit in train and test); fraction splits and `train_size` subsamples depend on
  `data.split_seed` only (every seed and arm of a study sees the same test set). Every problem is one
  `DataError` naming file, line and value.
* **Tag schemes** are detected (or declared) and *checked, never repaired*: an `I-X` after `O` in IOB2 is counted,
  logged and stored in `notes["scheme_violations"]`, because silently rewriting gold tags changes the test set
  that every published number refers to.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from unfreeze.config.schema import DataConfig
from unfreeze.data.sequence import assemble_splits
from unfreeze.errors import DataError
from unfreeze.data.tag_schemes import ALPHABET, canonical_scheme, detect_scheme, parse_tag, validate, \
    violation_counts
from unfreeze.data.token_files import Sentence, read_conll, read_token_file

log = logging.getLogger(__name__)


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




# ---------------------------------------------------------------------------------------------------------
# Reading












def _raw_sentences(cfg: DataConfig) -> dict[str, tuple[list[Sentence], str]]:
    """{split: (sentences, source name)} for whatever the config points at; missing splits are absent."""
    if cfg.dataset is not None:
        from unfreeze.assets import DATASETS, TOKEN_DATASETS

        if cfg.dataset not in TOKEN_DATASETS:
            known = ", ".join(sorted(TOKEN_DATASETS))
            raise DataError(f"data.dataset={cfg.dataset!r} is not a token-classification data set (built-in token "
                            f"data sets: {known}); use it with `task: sequence`" if cfg.dataset in DATASETS else
                            f"unknown built-in token data set {cfg.dataset!r}; built-ins: {known}")
        location = DATASETS[cfg.dataset].locate()
        return {"all": (read_conll(location, -1), f"dataset {cfg.dataset} ({location})")}
    if cfg.hub is not None:
        from unfreeze.data.hub import load_hub_splits
        from unfreeze.data.token_files import dataset_sentences

        return {split: (dataset_sentences(ds, source, cfg), source)
                for split, (ds, source) in load_hub_splits(cfg.hub).items()}
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
    """Detect or check the tag scheme (`unfreeze.data.tag_schemes`); count (never fix) violations per split.

    A declared scheme refuses tags with a prefix it does not have (an S- tag in IOB2 data means the
    declaration is wrong, not the data). Detection picks the scheme the data breaks least."""
    every = [s for name in ("train", "val", "test") for s in splits[name]]
    tags = [s.tags for s in every]
    if cfg.tag_scheme == "auto":
        scheme = detect_scheme(tags)  # type: ignore[arg-type]
        if scheme != "plain":
            log.info("tag scheme detected: %s (violations if read as each scheme: %s)", scheme,
                     violation_counts(tags))  # type: ignore[arg-type]
    else:
        scheme = canonical_scheme(cfg.tag_scheme)
    if scheme != "plain" and cfg.tag_scheme != "auto":
        allowed = ALPHABET[scheme]
        for s in every:
            for j, tag in enumerate(s.tags):  # type: ignore[union-attr]
                p, _ = parse_tag(tag)
                if p != "O" and p not in allowed:
                    raise DataError(f"{s.where} (word {j + 1}, {s.words[j]!r}): tag {tag!r} does not fit "
                                    f"data.tag_scheme={cfg.tag_scheme} (allowed: O, "
                                    f"{', '.join(sorted(allowed))}-<type>); set tag_scheme to the file's "
                                    "scheme, auto, or plain")
    elif scheme == "plain" and cfg.tag_scheme == "auto":
        odd = sorted({t for s in every for t in s.tags if t != "O"})[:5]  # type: ignore[union-attr]
        log.info("tags carry no B-/I-/E-/S-/M-/L-/U- prefix (e.g. %s): scheme plain; no entity_* metrics "
                 "(plain tags define no entity spans)", odd)
    notes["scheme"] = scheme
    notes["scheme_declared"] = cfg.tag_scheme
    notes["scheme_violations"] = {}
    for name in ("train", "val", "test"):
        report = validate([s.tags for s in splits[name]], scheme, examples=1)  # type: ignore[misc]
        notes["scheme_violations"][name] = report["total"]
        if report["total"]:
            notes.setdefault("scheme_violation_kinds", {})[name] = report["counts"]
            kind, [first] = next(iter(report["examples"].items()))
            s, v = splits[name][first["sentence"]], first["position"]
            what = ("an entity left open at the end of the sentence" if v == len(s.words) else
                    f"{s.tags[v]!r} after {(s.tags[v - 1] if v else 'sentence start')!r} at word {v + 1} "  # type: ignore[index]
                    f"({s.words[v]!r})")
            example = f"{s.where}: {what} ({kind})"
            notes.setdefault("scheme_violation_examples", {})[name] = example
            log.warning("%s (%s): %d tag(s) break %s, e.g. %s; kept as given (strict entity reading: a "
                        "fragment that breaks the scheme is no entity)", sources.get(name, name), name,
                        report["total"], scheme.upper(), example)
    return scheme


def load_token_data(cfg: DataConfig) -> TokenTaskData:
    """Train/val/test splits of tagged sentences with one label list built from the training split.

    Order of operations (each step reported in `notes`): read → drop sentences without tokens/tags
    (`bad_rows`) → remove exact duplicates per source → carve test, then val, by fraction when not given →
    remove val/test sentences also in train (separate files) → label names from train (val/test tags unseen in
    training are kept, counted as errors and listed in one warning) → `train_size` subsample (seeded by
    `split_seed`) → scheme detect/check on the final splits."""
    notes: dict = {"dropped": {}, "duplicates_removed": {}}
    raw = _raw_sentences(cfg)
    splits = {name: _drop_bad(s, cfg, src, notes) for name, (s, src) in raw.items()}
    sources = {name: src for name, (_, src) in raw.items()}
    if cfg.dedupe:
        splits = {name: _dedupe(s, sources[name], notes) for name, s in splits.items()}
    assemble_splits(splits, sources, cfg, _split_off)
    if cfg.dedupe:
        seen = {tuple(s.words) for s in splits["train"]}
        for name in ("val", "test"):
            kept = [s for s in splits[name] if tuple(s.words) not in seen]
            if len(kept) < len(splits[name]):
                log.warning("%s: removed %d sentence(s) that also occur in train", name, len(splits[name]) - len(kept))
                notes.setdefault("leaks_removed", {})[name] = len(splits[name]) - len(kept)
            splits[name] = kept
            seen |= {tuple(s.words) for s in kept}
    _near_duplicates(splits, cfg.near_duplicates, notes)
    for name in ("train", "val"):
        if not splits[name]:
            raise DataError(f"{sources.get(name, name)}: the {name} split is empty" + (
                "; give data.val or a data.split.val fraction above 0" if name == "val" else ""))
    names = sorted_labels(t for s in splits["train"] for t in s.tags)  # type: ignore[union-attr]
    if len(names) < 2:
        raise DataError(f"{sources['train']}: only one tag ({names[0]!r}) in the training split")
    names, index = _keep_unseen(names, splits, sources, notes)
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


def _near_duplicates(splits: dict, policy: str, notes: dict) -> None:
    """Val/test sentences equal to a training sentence once case, punctuation, whitespace and NFKC are ignored
    (`data.near_duplicates`, `data.near_duplicates` module): counted in `notes["near_duplicates"]`, dropped with
    policy "drop"."""
    from unfreeze.data import near_duplicates as nd

    train = nd.keys([" ".join(s.words) for s in splits["train"]])
    counts: dict = {"policy": policy}
    for name in ("val", "test"):
        hit = nd.matches(train, nd.keys([" ".join(s.words) for s in splits[name]]))
        counts[name] = int(sum(hit))
        if any(hit):
            log.warning("%s: %d sentence(s) equal a training sentence after normalisation%s", name, sum(hit),
                        "; dropped" if policy == "drop" else "; kept (data.near_duplicates: keep)")
            if policy == "drop":
                splits[name] = [s for s, h in zip(splits[name], hit) if not h]
    notes["near_duplicates"] = counts


def _keep_unseen(names: list[str], splits: dict, sources: dict, notes: dict) -> tuple[list[str], dict[str, int]]:
    """Tags of val/test that never occur in train are kept, not refused: the model never learns them, so every
    word carrying one counts as an error — exactly what a user deploying the model would see. They are appended
    after the training tags (indices ≥ the training tags' count), listed in ONE warning and in
    `notes["unseen_labels"]` ({tag: {split: words}}), which metrics.json["data"] carries."""
    import warnings

    known = set(names)
    unseen: dict[str, dict[str, int]] = {}
    for name in ("val", "test"):
        for s in splits[name]:
            for t in s.tags:  # type: ignore[union-attr]
                if t not in known:
                    unseen.setdefault(t, {}).setdefault(name, 0)
                    unseen[t][name] += 1
    if unseen:
        listing = "; ".join(f"{t!r} ({', '.join(f'{n} words in {sp}' for sp, n in where.items())})"
                            for t, where in sorted(unseen.items()))
        message = (f"{len(unseen)} tag(s) of val/test never occur in the training split {sources['train']}: "
                   f"{listing}. They are kept and every such word counts as an error (a model cannot predict a "
                   "tag it never saw); merge or drop them if that is not the question")
        warnings.warn(message, stacklevel=3)
        log.warning(message)
        notes["unseen_labels"] = unseen
        names = names + sorted(unseen)
    return names, {n: i for i, n in enumerate(names)}


def _to_split(sentences: list[Sentence], index: dict[str, int]) -> TokenSplit:
    return TokenSplit([s.id for s in sentences], [list(s.words) for s in sentences],
                      [[index[t] for t in s.tags] for s in sentences])  # type: ignore[union-attr]
