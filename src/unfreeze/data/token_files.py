"""Reading tagged sentences: CoNLL (word … tag columns, blank line between sentences), JSONL (a tokens list and a tags list per line) and on-disk datasets folders. Cleaning, splitting and scheme checks live in `tokens.py`."""
from __future__ import annotations

import json

import logging


from dataclasses import dataclass

from pathlib import Path


from unfreeze.config.schema import DataConfig


from unfreeze.errors import DataError


log = logging.getLogger(__name__)



_SPLIT_NAMES = {"validation": "val", "dev": "val", "valid": "val"}



@dataclass
class Sentence:
    """A sentence as read, before labels become indices; `where` is `file:line` (or `folder[split] row i`)."""

    id: str
    words: list[str]
    tags: list[str] | None
    where: str



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
    return {_SPLIT_NAMES.get(name, name): dataset_sentences(ds, f"{path}[{name}]", cfg) for name, ds in parts.items()}


def dataset_sentences(ds, source: str, cfg: DataConfig) -> list[Sentence]:
    """One `datasets.Dataset` of token rows → sentences (Sequence-of-ClassLabel tags become their names)."""
    import datasets

    for column in (cfg.tokens_column, cfg.tags_column):
        if column not in ds.features:
            raise DataError(f"{source}: no column {column!r}; columns are {list(ds.features)} "
                            "(set data.tokens_column / data.tags_column)")
    inner = getattr(ds.features[cfg.tags_column], "feature", None)
    names = inner.names if isinstance(inner, datasets.ClassLabel) else None
    ids = ds[cfg.id_column] if cfg.id_column and cfg.id_column in ds.features else range(len(ds))
    sentences = []
    for i, (ident, words, tags) in enumerate(zip(ids, ds[cfg.tokens_column], ds[cfg.tags_column])):
        where = f"{source} row {i}"
        words = list(words or [])
        tags = [names[int(t)] if names else str(t) for t in (tags or [])]
        if tags and len(tags) != len(words):
            raise DataError(f"{where}: {len(words)} tokens but {len(tags)} tags")
        if not all(isinstance(w, str) for w in words):
            raise DataError(f"{where}: tokens must be strings, got {words[:5]}")
        sentences.append(Sentence(str(ident), words, tags or None, where))
    return sentences



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
