"""A data set nobody here tuned on, built from the Python standard library itself: which package a docstring comes
from (17 classes on CPython 3.11, the smallest about 1 % of the texts, median 18 words).

    python benchmarks/docstring_set.py DIR [--min-per-class 30] [--seed 0]

Every function and class (and each class's methods) defined in the submodules of the packages below that has a
docstring of 6+ words gives one text (whitespace collapsed; exact duplicates dropped), labelled with its top-level
package; packages with fewer than `--min-per-class` texts are left out. Train and test are split by group — one
module's top-level function or class with its methods — 65 / 35 at random (`--seed`), so no class has methods on both
sides. Writes DIR/train.csv and DIR/test.csv (`text,label`) and prints sizes and label shares. The texts depend on
the Python version that runs this script (the BENCHMARKS figures: CPython 3.11.7).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import pkgutil
import random
import re
import warnings
from pathlib import Path

import pandas as pd

PACKAGES = ["asyncio", "email", "xml", "http", "urllib", "unittest", "logging", "multiprocessing", "concurrent",
            "json", "importlib", "collections", "ctypes", "sqlite3", "distutils", "encodings", "curses", "wsgiref",
            "xmlrpc", "html", "lib2to3", "idlelib", "tkinter", "dbm", "zoneinfo", "tomllib", "venv", "ensurepip"]


def _quiet_import(name: str):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(name)


def _modules(pkg: str) -> list[str]:
    top = _quiet_import(pkg)
    subs = pkgutil.walk_packages(top.__path__, pkg + ".", onerror=lambda n: None) if hasattr(top, "__path__") else []
    return [pkg] + [m.name for m in subs if ".test" not in m.name and "idle_test" not in m.name]


def _docstrings(name: str, pkg: str) -> list[dict]:
    try:
        module = _quiet_import(name)
    except BaseException:  # a module that needs a display, a platform or an optional library
        return []
    rows, seen = [], set()

    def visit(obj, qual: str, depth: int) -> None:
        for attr, value in list(vars(obj).items()):
            defined_here = getattr(value, "__module__", None) == name
            if not (inspect.isfunction(value) or inspect.isclass(value)) or not defined_here or id(value) in seen:
                continue
            seen.add(id(value))
            text = re.sub(r"\s+", " ", inspect.getdoc(value) or "").strip()
            if len(text.split()) >= 6:
                rows.append({"text": text, "label": pkg, "group": f"{name}:{(qual + '.' + attr).split('.')[1]}"})
            if inspect.isclass(value) and depth == 0:
                visit(value, f"{qual}.{attr}", 1)

    visit(module, name, 0)
    return rows


def build(out: Path, min_per_class: int = 30, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    warnings.filterwarnings("ignore")
    rows = []
    for pkg in PACKAGES:
        try:
            names = _modules(pkg)
        except BaseException:
            continue
        for name in names:
            rows += _docstrings(name, pkg)
    df = pd.DataFrame(rows).drop_duplicates("text")
    counts = df.label.value_counts()
    df = df[df.label.isin(counts[counts >= min_per_class].index)].reset_index(drop=True)
    groups = sorted(df.group.unique())
    random.Random(seed).shuffle(groups)
    in_test = df.group.isin(set(groups[: int(0.35 * len(groups))]))
    out.mkdir(parents=True, exist_ok=True)
    train, test = (part[["text", "label"]].sample(frac=1, random_state=seed) for part in (df[~in_test], df[in_test]))
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--min-per-class", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, test = build(args.out, args.min_per_class, args.seed)
    print(f"{len(train):,} training, {len(test):,} test texts, {train.label.nunique()} classes, median "
          f"{int(train.text.str.split().str.len().median())} words")
    print("training label shares:", train.label.value_counts(normalize=True).round(3).to_dict())


if __name__ == "__main__":
    main()
