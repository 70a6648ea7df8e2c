"""Enough rows for train / val / test: checked before any split is carved, so too little data is one line
(`DataError`, exit code 2) naming the file, the text column and the minimum, never an `IndexError` deep inside
splitting or training.

`check_enough_rows` is the one check: `load_sequence_data` calls it on the usable rows (non-empty text, a label)
of the file it carves splits from, and the one-line planner can call it on the same count before it plans.
The arithmetic mirrors `sequence.split_frame`: each carved split takes `max(1, round(n × fraction))` rows, test
first, then val from what is left.
"""
from __future__ import annotations

from unfreeze.config.schema import DataConfig
from unfreeze.errors import DataError

#: The fewest rows each split may have: two in train (a classifier needs two classes), one in val and in test.
MIN_ROWS = {"train": 2, "val": 1, "test": 1}


def carved_sizes(rows: int, cfg: DataConfig, carve_test: bool = True, carve_val: bool = True) -> dict[str, int]:
    """Rows per split when `rows` usable rows are split by `cfg.split` (only the splits that are carved)."""
    sizes: dict[str, int] = {}
    rest = rows
    if carve_test and cfg.split.test > 0:
        sizes["test"] = min(rest, max(1, int(round(rest * cfg.split.test))))
        rest -= sizes["test"]
    if carve_val and cfg.split.val > 0:
        share = cfg.split.val / (1 - cfg.split.test) if carve_test else cfg.split.val
        sizes["val"] = min(rest, max(1, int(round(rest * share))))
        rest -= sizes["val"]
    sizes["train"] = rest
    return sizes


def min_rows(cfg: DataConfig, carve_test: bool = True, carve_val: bool = True) -> int:
    """The fewest usable rows that give every carved split its `MIN_ROWS`."""
    rows = 1
    while any(carved_sizes(rows, cfg, carve_test, carve_val).get(k, v) < v for k, v in MIN_ROWS.items()):
        rows += 1
    return rows


def check_enough_rows(rows: int, cfg: DataConfig, source: str, column: str | None = None,
                      carve_test: bool = True, carve_val: bool = True) -> None:
    """Raise `DataError` when `rows` usable rows (non-empty text in `column`, a label) of `source` cannot give
    train, val and test their minimum rows (`MIN_ROWS`) at the configured split fractions."""
    needed = min_rows(cfg, carve_test, carve_val)
    if rows >= needed:
        return
    column = column or cfg.text_column
    carved = [k for k, yes in (("val", carve_val), ("test", carve_test)) if yes]
    fractions = ", ".join(f"{k} {getattr(cfg.split, k)}" for k in carved)
    raise DataError(
        f"{source}: {rows} usable row(s) (a non-empty text in column {column!r} and a label"
        + (", duplicate texts removed" if cfg.dedupe else "") + f"); at least {needed} are "
        f"needed to carve {' and '.join(carved) or 'the splits'}" + (f" (data.split: {fractions})" if carved else "")
        + f" with at least {MIN_ROWS['train']} training rows and {MIN_ROWS['val']} in each of val and test; "
        "add rows, fix the text column, or give data.val / data.test files")


def check_given_split(rows: int, split: str, source: str, column: str) -> None:
    """A split read from its own file (data.val / data.test, or a DatasetDict split) with no usable row."""
    if rows < MIN_ROWS.get(split, 1):
        raise DataError(f"{source}: {rows} usable row(s) for the {split} split (a non-empty text in column "
                        f"{column!r} and a label); at least {MIN_ROWS.get(split, 1)} needed; fix the file or the "
                        "text column")


def check_split_rows(rows: dict[str, int], sources: dict[str, str], cfg: DataConfig) -> None:
    """Enough usable rows for every split before any is carved. `rows`: {part: usable rows} as read (`all` or
    `train`, and the `val` / `test` given as their own files); `sources`: {part: file name}."""
    pool = "all" if "all" in rows else "train"
    if pool in rows:
        check_enough_rows(rows[pool], cfg, sources[pool], cfg.text_column,
                          carve_test="test" not in rows, carve_val="val" not in rows)
    for split in ("val", "test"):
        if split in rows:
            check_given_split(rows[split], split, sources[split], cfg.text_column)
