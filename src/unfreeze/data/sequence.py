"""Read labelled text data, clean it, split it, subsample it, map labels — for sequence classification.

What a caller can rely on: `load_sequence_data` returns train/val/test `Split`s whose labels index into one label
list built from the training split; exact duplicate texts are removed before splitting (so the same text cannot
sit in train and test); splits and subsamples depend on `data.split_seed` only, so every seed and every arm of a
study sees the same test set and paired comparisons are valid. Every problem is a `DataError` naming the file,
column or value.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from unfreeze.assets import load_builtin_frame
from unfreeze.config.schema import DataConfig
from unfreeze.data import near_duplicates as nd
from unfreeze.data.hub import dataset_to_frame
from unfreeze.data.split_sizes import check_split_rows
from unfreeze.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One split of a sequence task: parallel lists, labels as indices into `TaskData.label_names`."""

    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "Split":
        index = np.asarray(index, dtype=int)
        return Split(
            ids=[self.ids[i] for i in index],
            texts=[self.texts[i] for i in index],
            labels=self.labels[index],
            pairs=None if self.pairs is None else [self.pairs[i] for i in index],
        )


@dataclass
class TaskData:
    train: Split
    val: Split
    test: Split
    label_names: list[str]
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Reading files


def detect_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    if path.is_dir():
        return "disk"
    suffixes = "".join(path.suffixes).lower()
    for ext, fmt in ((".tsv", "tsv"), (".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"),
                     (".parquet", "parquet"), (".conll", "conll"), (".txt", "conll")):
        if ext in suffixes:
            return fmt
    raise DataError(f"{path}: cannot tell the format from the name; set data.format (csv, tsv, jsonl, parquet, disk)")


def read_table(path: str | Path, fmt: str = "auto",
               label_column: str | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """A file as a frame; a `datasets` DatasetDict folder as {split: frame}. With `label_column`, that column is
    read as written, never coerced by its other values (see `_read_jsonl`): a CSV's `1` and `1.0` are two labels
    whatever else the column holds (pandas would read both as 1.0 next to a `2`, but not next to an `abc`)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    fmt = detect_format(path, fmt)
    try:
        if fmt in ("csv", "tsv"):
            # TSV with the csv default quoting, i.e. as `frame.to_csv(sep="\t")` writes it: a field holding a tab,
            # a newline or a quote is quoted, and reading it back keeps every row (quoting=3 split such rows)
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",",
                                dtype={label_column: str} if label_column else None)
            if frame.empty:
                raise DataError(f"{path}: no data rows (only a header with columns {list(frame.columns)}); "
                                "add rows or point to another file")
            return frame
        if fmt == "jsonl":
            return _read_jsonl(path) if label_column else pd.read_json(path, lines=True)
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            if label_column in frame:  # the column's own values (a nullable int column stays int, not 1.0)
                import pyarrow.parquet as pq

                frame[label_column] = pd.Series(pq.read_table(path, columns=[label_column]).column(0).to_pylist(),
                                                index=frame.index, dtype=object)
            return frame
        if fmt == "disk":
            return _read_datasets_folder(path)
    except DataError:
        raise
    except Exception as exc:  # parser errors from pandas/pyarrow: name the file
        raise DataError(f"{path}: could not read as {fmt}: {str(exc).splitlines()[0]}") from None
    raise DataError(f"{path}: format {fmt!r} is for token tasks (`task: token`)")


def _read_jsonl(path: Path) -> pd.DataFrame:
    """JSON lines with each value as its own Python object (no column-wide dtype: pandas would turn `1` into `1.0`
    next to a `2.5`); a JSON number keeps its written form (`Decimal`), so `1` and `1.0` read as `file_label`
    says, the same as in a CSV."""
    import json
    from decimal import Decimal

    with path.open(encoding="utf-8") as handle:
        records = [json.loads(line, parse_float=Decimal) for line in handle if line.strip()]
    return pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()


def file_label(value) -> str:
    """A label from a data file as text, by its own value only: strings as written, integers `1` → "1", JSON
    numbers as written (`1.0` → "1.0"), floats of a typed column (Parquet) by Python's `str` (1.0 → "1.0")."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _read_datasets_folder(path: Path) -> pd.DataFrame | dict[str, pd.DataFrame]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        return {name: dataset_to_frame(split) for name, split in loaded.items()}
    return dataset_to_frame(loaded)


# ---------------------------------------------------------------------------------------------------------
# Cleaning


def require_columns(frame: pd.DataFrame, columns: list[str | None], source: str) -> None:
    for column in columns:
        if column is not None and column not in frame.columns:
            raise DataError(
                f"{source}: no column {column!r}; columns are {list(frame.columns)} "
                f"(set data.text_column / data.label_column)"
            )


def clean_frame(frame: pd.DataFrame, cfg: DataConfig, source: str, notes: dict) -> pd.DataFrame:
    """Standardise to columns id/text/pair/label; drop or refuse empty and non-string texts and missing labels."""
    require_columns(frame, [cfg.text_column, cfg.text_pair_column, cfg.label_column, cfg.id_column], source)
    out = pd.DataFrame({
        "id": frame[cfg.id_column].astype(str).values if cfg.id_column else [str(i) for i in range(len(frame))],
        "text": frame[cfg.text_column].values,
        "label": frame[cfg.label_column].values,
    })
    if cfg.text_pair_column:
        out["pair"] = frame[cfg.text_pair_column].values
    text_cols = ["text"] + (["pair"] if cfg.text_pair_column else [])
    bad = np.zeros(len(out), dtype=bool)
    for col in text_cols:
        bad |= ~out[col].map(lambda v: isinstance(v, str) and v.strip() != "").values
    bad |= out["label"].isna().values
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        what = f"{int(bad.sum())} row(s) with an empty/non-string text or a missing label"
        if cfg.bad_rows == "error":
            raise DataError(
                f"{source}: {what}, first at row {first} (value {frame.iloc[first][cfg.text_column]!r} in column "
                f"{cfg.text_column!r}); fix the data or set data.bad_rows: drop"
            )
        log.warning("%s: dropped %s", source, what)
        notes.setdefault("dropped_bad_rows", {})[source] = int(bad.sum())
        out = out[~bad]
    out["label"] = out["label"].map(file_label)
    return out.reset_index(drop=True)


def drop_duplicates(frame: pd.DataFrame, source: str, notes: dict) -> pd.DataFrame:
    keys = ["text", "pair"] if "pair" in frame.columns else ["text"]
    before = len(frame)
    frame = frame.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)
    removed = before - len(frame)
    if removed:
        log.info("%s: removed %d exact duplicate text(s) before splitting", source, removed)
    notes.setdefault("duplicates_removed", {})[source] = removed
    return frame


# ---------------------------------------------------------------------------------------------------------
# Splitting and subsampling


def stratified_take(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified random subset of size n (plain random where a class is too small to stratify)."""
    index = np.arange(len(labels))
    if n >= len(labels):
        return index
    try:
        taken, _ = train_test_split(index, train_size=n, stratify=labels, random_state=seed)
    except ValueError:
        taken, _ = train_test_split(index, train_size=n, random_state=seed)
    return np.sort(taken)


def assemble_splits(parts: dict, sources: dict, cfg: DataConfig, split_off) -> None:
    """In place: an `all` part becomes train; test, then val, are carved from train (by `split_off(part, fraction,
    seed)`, seeded by `split_seed`) where the data has none. Shared by sentence and token data."""
    if "all" in parts:
        parts["train"], sources["train"] = parts.pop("all"), sources.pop("all")
    if "train" not in parts:
        raise DataError(f"{cfg.path or (cfg.hub and cfg.hub.path)}: no `train` split found (splits: {sorted(parts)})")
    test_carved = "test" not in parts
    if test_carved:
        parts["train"], parts["test"] = split_off(parts["train"], cfg.split.test, cfg.split_seed)
        sources["test"] = f"{sources['train']} (test fraction {cfg.split.test})"
    if "val" not in parts:
        # fractions are of the whole pool, so the val share of what is left after carving test is larger
        val_share = cfg.split.val / (1 - cfg.split.test) if test_carved else cfg.split.val
        parts["train"], parts["val"] = split_off(parts["train"], val_share, cfg.split_seed + 1)
        sources["val"] = f"{sources['train']} (val fraction {cfg.split.val})"


def split_frame(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, held_out) with `fraction` of rows held out, stratified on the label."""
    if fraction <= 0:
        return frame, frame.iloc[:0]
    n_held = max(1, int(round(len(frame) * fraction)))
    held = stratified_take(frame["label"].values, n_held, seed)
    mask = np.zeros(len(frame), dtype=bool)
    mask[held] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def label_names_from(train: pd.DataFrame) -> list[str]:
    names = sorted(set(train["label"]))
    if all(n.lstrip("-").isdigit() for n in names):
        names = sorted(names, key=int)
    return names


def to_split(frame: pd.DataFrame, label_index: dict[str, int], source: str) -> Split:
    unseen = sorted(set(frame["label"]) - set(label_index))
    if unseen:
        raise DataError(
            f"{source}: label {unseen[0]!r} never occurs in the training split "
            f"(training labels: {sorted(label_index)}); a model cannot predict it"
        )
    return Split(
        ids=list(frame["id"]),
        texts=list(frame["text"]),
        labels=np.array([label_index[v] for v in frame["label"]], dtype=np.int64),
        pairs=list(frame["pair"]) if "pair" in frame.columns else None,
    )


def read_frames(cfg: DataConfig) -> dict[str, tuple[pd.DataFrame, str]]:
    """{split: (frame, source name)} as read, missing splits absent; a caller that looks at them first (the one-line
    planner) passes them on to `load_sequence_data(cfg, raw)`, so each file is read once."""
    if cfg.dataset is not None:
        frame = load_builtin_frame(cfg.dataset)
        return {"all": (frame, f"dataset {cfg.dataset}")}
    if cfg.hub is not None:
        from unfreeze.data.hub import hub_frames

        return hub_frames(cfg.hub)
    if cfg.path is not None:
        table = read_table(cfg.path, cfg.format, cfg.label_column)
        if isinstance(table, dict):
            return {_canonical_split(k): (v, f"{cfg.path}[{k}]") for k, v in table.items()}
        return {"all": (table, cfg.path)}
    frames = {}
    for name in ("train", "val", "test"):
        file = getattr(cfg, name)
        if file is not None:
            table = read_table(file, cfg.format, cfg.label_column)
            if isinstance(table, dict):
                raise DataError(f"{file}: a DatasetDict folder; give it as data.path instead of data.{name}")
            frames[name] = (table, file)
    return frames


def _canonical_split(name: str) -> str:
    return {"validation": "val", "dev": "val", "valid": "val"}.get(name, name)


def load_sequence_data(cfg: DataConfig, raw: dict[str, tuple[pd.DataFrame, str]] | None = None) -> TaskData:
    notes: dict = {}
    raw = read_frames(cfg) if raw is None else raw
    if cfg.dataset is not None:
        cleaning = next(iter(raw.values()))[0].attrs.get("builtin_cleaning")
        if cleaning:
            notes["builtin_cleaning"] = cleaning
        # built-in frames already have columns text/label
        cfg = cfg.model_copy(update={"text_column": "text", "label_column": "label", "text_pair_column": None,
                                     "id_column": None})
    frames = {name: clean_frame(frame, cfg, source, notes) for name, (frame, source) in raw.items()}
    sources = {name: source for name, (_, source) in raw.items()}
    if cfg.dedupe:
        frames = {name: drop_duplicates(f, sources[name], notes) for name, f in frames.items()}
    check_split_rows({name: len(f) for name, f in frames.items()}, sources, cfg)
    assemble_splits(frames, sources, cfg, split_frame)
    if cfg.dedupe:
        frames = _drop_cross_split_leaks(frames, notes)
    frames = nd.check_frames(frames, cfg.near_duplicates, notes)
    names = label_names_from(frames["train"])
    if len(names) < 2:
        raise DataError(f"{sources['train']}: only one class ({', '.join(map(repr, names)) or 'none'}) in column "
                        f"{cfg.label_column!r} of the training split; a classifier needs at least two")
    names = _keep_unseen_labels(names, frames, sources, notes)
    index = {n: i for i, n in enumerate(names)}
    splits = {k: to_split(frames[k], index, sources.get(k, k)) for k in ("train", "val", "test")}
    if len(splits["val"]) == 0:
        raise DataError("the validation split is empty: give data.val or a data.split.val fraction above 0")
    if cfg.train_size is not None:
        if cfg.train_size > len(splits["train"]):
            raise DataError(
                f"data.train_size={cfg.train_size} exceeds the {len(splits['train'])} training rows available"
            )
        splits["train"] = splits["train"].subset(stratified_take(splits["train"].labels, cfg.train_size, cfg.split_seed))
    notes["sizes"] = {k: len(v) for k, v in splits.items()}
    return TaskData(splits["train"], splits["val"], splits["test"], names, notes)


def _keep_unseen_labels(names: list[str], frames: dict[str, pd.DataFrame], sources: dict, notes: dict) -> list[str]:
    """Labels of val/test that never occur in train are kept, not refused: the model never learns them, so each
    such example counts as an error (what a deployed model would do). Appended after the training labels, listed in
    ONE warning and in `notes["unseen_labels"]` ({label: {split: examples}}), which metrics.json["data"] carries."""
    import warnings

    known = set(names)
    unseen: dict[str, dict[str, int]] = {}
    for split in ("val", "test"):
        for label, n in frames[split]["label"].value_counts().items():
            if label not in known:
                unseen.setdefault(str(label), {})[split] = int(n)
    if not unseen:
        return names
    listing = "; ".join(f"{label!r} ({', '.join(f'{n} in {sp}' for sp, n in where.items())})"
                        for label, where in sorted(unseen.items()))
    message = (f"{len(unseen)} label(s) of val/test never occur in the training split {sources['train']}: {listing}. "
               "They are kept and every such example counts as an error (a model cannot predict a label it never "
               "saw); merge or drop them if that is not the question")
    warnings.warn(message, stacklevel=3)
    log.warning(message)
    notes["unseen_labels"] = unseen
    return names + sorted(unseen)


def _drop_cross_split_leaks(frames: dict[str, pd.DataFrame], notes: dict) -> dict[str, pd.DataFrame]:
    """Drop val/test rows whose text (and second text, for pairs) also occurs in train (possible when splits come
    from separate files). Pairs are compared whole: the same premise with another hypothesis is not a leak."""

    def keys(frame: pd.DataFrame) -> pd.Series:
        return frame["text"] + "\x00" + frame["pair"] if "pair" in frame.columns else frame["text"]

    seen = set(keys(frames["train"]))
    for name in ("val", "test"):
        leaked = keys(frames[name]).isin(seen)
        if leaked.any():
            log.warning("%s: removed %d text(s) that also occur in train", name, int(leaked.sum()))
            notes.setdefault("leaks_removed", {})[name] = int(leaked.sum())
            frames[name] = frames[name][~leaked].reset_index(drop=True)
        seen |= set(keys(frames[name]))
    return frames
