"""A non-transformer floor for every study: TF-IDF + logistic regression (sequence tasks) or the most frequent
tag per word (token tasks), trained on exactly the same splits, in seconds.

A 0.80 F1 means little until you know TF-IDF gets 0.78. Regularisation is chosen on validation, never on test.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from unfreeze.data.script import tfidf_options
from unfreeze.io import write_dataframe_csv, write_json
from unfreeze.metrics.classification import classification_metrics
from collections import Counter
from typing import Sequence
from unfreeze.data.tokens import TokenTaskData
from unfreeze.metrics.tagging import tag_metrics
from unfreeze.tasks import get_task
from unfreeze.tasks.token import fbeta_of, write_tag_predictions

TFIDF_C_GRID = (0.1, 1.0, 10.0)
LARGE_BASELINE = 20_000  # texts (train + val + test) from which the TF-IDF baseline shows a bar on a terminal


class _TfidfFeatures:
    """TF-IDF of one text column, or of both texts of a pair (one vectorizer each, features side by side: which
    text a word came from matters for entailment, paraphrase, question/answer pairs)."""

    def __init__(self, options: dict):
        self.options = options
        self.vectorizers: list[TfidfVectorizer] = []

    def fit_transform(self, columns: list[list[str]]):
        self.vectorizers = [TfidfVectorizer(sublinear_tf=True, min_df=1, max_features=200_000, **self.options)
                            for _ in columns]
        return hstack([v.fit_transform(c) for v, c in zip(self.vectorizers, columns)]).tocsr()

    def transform(self, columns: list[list[str]]):
        return hstack([v.transform(c) for v, c in zip(self.vectorizers, columns)]).tocsr()


def tfidf_logreg(train_texts, train_labels, val_texts, val_labels, test_texts, test_labels, label_names,
                 positive_label=None, seed: int = 0, metric: str = "f1_macro", pairs=None,
                 analyzer: str = "auto") -> dict:
    """1–2-gram TF-IDF (sublinear tf) + logistic regression, C picked on val by `metric`.

    `analyzer` (`data.tfidf_analyzer`): words, characters (`char`), or `auto` — characters when the training
    texts are CJK script (`unfreeze.data.script`): a word TF-IDF on Chinese sees each clause as one word.
    `pairs`: (train, val, test) second texts of a text-pair task, or None; each text gets its own TF-IDF."""
    started = time.perf_counter()
    columns = {"train": [list(train_texts)], "val": [list(val_texts)], "test": [list(test_texts)]}
    if pairs is not None:
        for name, second in zip(("train", "val", "test"), pairs):
            columns[name].append([str(t) for t in second])
    options = tfidf_options([t for c in columns["train"] for t in c], analyzer)
    features = _TfidfFeatures(options)
    n = sum(len(columns[s][0]) for s in columns)
    bar = tqdm(total=1 + len(TFIDF_C_GRID), desc=f"baseline: TF-IDF on {n:,} texts", unit="step", leave=False,
               dynamic_ncols=True, disable=not (n >= LARGE_BASELINE and sys.stderr.isatty()))
    x = {"train": features.fit_transform(columns["train"])}
    x["val"], x["test"] = features.transform(columns["val"]), features.transform(columns["test"])
    bar.update()
    best = None
    for c in TFIDF_C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(x["train"], np.asarray(train_labels))
        val_pred = model.predict(x["val"])
        val = classification_metrics(val_labels, val_pred, label_names, positive_label)
        if best is None or val[metric] > best[1][metric]:
            best = (c, val, model, val_pred)
        bar.update()
    bar.close()
    c, val, model, val_pred = best
    test_pred = model.predict(x["test"])
    unit = "character" if options["analyzer"] != "word" else "word"
    both = " of both texts" if pairs is not None else ""
    return {
        "method": f"TF-IDF ({unit} 1–2-grams{both}) + logistic regression (C={c:g}, chosen on val)",
        "tfidf": {"analyzer": options["analyzer"], "ngram_range": list(options["ngram_range"]),
                  "texts": len(columns["train"])},
        "val": val,
        "test": classification_metrics(test_labels, test_pred, label_names, positive_label),
        "train_seconds": round(time.perf_counter() - started, 3),
        "val_pred": val_pred,
        "test_pred": test_pred,
    }


def split_pairs(data) -> tuple | None:
    """(train, val, test) second texts of a text-pair data set, or None."""
    if data.train.pairs is None:
        return None
    return tuple(getattr(data, s).pairs for s in ("train", "val", "test"))


def run_study_baseline(study_dir: Path, config, data, data_key: str | None = None, out: Path | None = None,
                       run_ids: Sequence[str] = ()) -> dict:
    """Write `metrics.json` and test predictions of the baseline for one data config into `out` (default
    `STUDY/baseline`). `run_ids`: the study's runs trained on exactly this data (the report pairs them with it);
    `test_fingerprint` says which test set it was scored on (`training.run_dir.split_fingerprint`)."""
    from unfreeze.training.run_dir import data_fingerprint, split_fingerprint

    out = Path(out) if out is not None else Path(study_dir) / "baseline"
    task = get_task(config.task)
    result = BASELINES[task.baseline_kind](config, data, out / task.predictions_file("test"))
    result["train_size"] = len(data.train)
    result["data_key"] = data_key
    result["config_train_size"] = config.data.train_size
    result["run_ids"] = list(run_ids)
    result["test_fingerprint"] = split_fingerprint(data, config.task)
    result["data_fingerprint"] = data_fingerprint(data)  # a resumed study compares it (`study.data_check`)
    write_json(out / "metrics.json", result)
    return result


def _tag_baseline(config, data, predictions: Path) -> dict:
    """The most frequent tag per word; writes its predictions JSONL."""
    result, preds = most_frequent_tag_results(config, data)
    result["method"] = "most frequent tag per word (lower-case fallback, else the most frequent tag)"
    write_tag_predictions(predictions, data.test, data.label_names, preds["test"])
    return result


def _tfidf_baseline(config, data, predictions: Path) -> dict:
    """TF-IDF + logistic regression (C chosen on val); writes `id, label, pred` for test."""
    result = tfidf_logreg(data.train.texts, data.train.labels, data.val.texts, data.val.labels,
                          data.test.texts, data.test.labels, data.label_names, config.data.positive_label,
                          metric=config.selection_metric if config.selection_metric != "loss" else "f1_macro",
                          pairs=split_pairs(data), analyzer=config.data.tfidf_analyzer)
    frame = pd.DataFrame({"id": data.test.ids,
                          "label": [data.label_names[i] for i in data.test.labels],
                          "pred": [data.label_names[i] for i in result.pop("test_pred")]})
    result.pop("val_pred")
    write_dataframe_csv(predictions, frame)
    return result


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


#: a task's `baseline_kind` → the code that trains it, scores val/test and writes its test predictions
BASELINES = {"tfidf": _tfidf_baseline, "most_frequent_tag": _tag_baseline}
