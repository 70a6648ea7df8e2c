"""What the report's significance marks rest on: which runs share a test set, their test predictions, and the
seed-aware comparison of every arm with the best one (`metrics.stats.compare_with_best`).

Why the grouping: a comparison (and a ranking) only means something between runs scored on the *same* test
examples. A grid over `data.split_seed` (or anything that changes the test split) gives arms with different test
sets, so the report builds one table per test set and never marks across them. Runs record `test_fingerprint`
(sha1 of the test example ids and labels, `training.run_dir.test_fingerprint`); runs from before that field fall
back to a fingerprint of the label vector in their `predictions_test` file.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.io import read_json
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.metrics.counts import classification_metric, token_metric
from unfreeze.metrics.stats import best_arm, compare_with_best

N_BOOT = 10_000  # resamples behind every bootstrap the report prints (p-values never claim more than 1 / N_BOOT)


def read_test_predictions(run_dir: Path, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of a run's test split, as object arrays (token tasks: one tag list per sentence)."""
    if task == "token":
        rows = [json.loads(line) for line in (run_dir / "predictions_test.jsonl").read_text().splitlines()]
        y, p = np.empty(len(rows), dtype=object), np.empty(len(rows), dtype=object)
        y[:], p[:] = [r["tags"] for r in rows], [r["pred"] for r in rows]
        return y, p
    frame = pd.read_csv(run_dir / "predictions_test.csv", dtype={"label": str, "pred": str})
    return frame["label"].to_numpy(), frame["pred"].to_numpy()


def test_groups(results: pd.DataFrame, task: str) -> list[pd.DataFrame]:
    """`results` split into groups of runs that share a test set, largest first (one group in most studies)."""
    if results.empty:
        return [results]
    keys = []
    for row in results.itertuples():
        fingerprint = getattr(row, "test_fingerprint", None)
        if isinstance(fingerprint, str) and fingerprint:
            keys.append(fingerprint)
            continue
        try:  # an older run: the label vector is what the test set was
            labels, _ = read_test_predictions(Path(row.path), task)
            keys.append("labels:" + hashlib.sha1(json.dumps([_plain(v) for v in labels]).encode()).hexdigest())
        except FileNotFoundError:
            keys.append("unknown")
    keyed = results.assign(_test_set=keys)
    groups = [part.drop(columns="_test_set") for _, part in keyed.groupby("_test_set", sort=False)]
    return sorted(groups, key=len, reverse=True)


def _plain(value):
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else str(value)


def significance(results: pd.DataFrame, meta: dict, metric: str, n_boot: int = N_BOOT) -> tuple[str | None, dict]:
    """(best arm by mean val metric, {arm: comparison}) within one test-set group — empty comparisons where the
    metric cannot be recomputed from counts."""
    if f"val_{metric}" not in results or results.empty:
        return None, {}
    val_means = results.groupby("arm")[f"val_{metric}"].mean().to_dict()
    best = best_arm(val_means, lower_is_better=metric in LOWER_IS_BETTER)
    if metric in LOWER_IS_BETTER:
        return best, {}
    preds, y_true, fn = {}, None, None
    ordered = results.sort_values(["seed", "fold"])
    for arm, part in ordered.groupby("arm", sort=False):
        preds[arm] = {}
        for run_dir, seed, fold in zip(part["path"], part["seed"], part["fold"]):
            run_dir = Path(run_dir)
            y, p = read_test_predictions(run_dir, meta.get("task", "sequence"))
            if fn is None:
                fn = count_metric_of(run_dir, meta, metric)
            y_true = y if y_true is None else y_true
            preds[arm][(int(seed), int(fold))] = p
    if fn is None:
        return best, {}
    return best, compare_with_best(best, preds, y_true, fn, n_boot=n_boot)


def count_metric_of(run_dir: Path, meta: dict, metric: str):
    """The count metric (`metrics.counts`) that recomputes a run's test `metric` from its predictions."""
    test = read_json(Path(run_dir) / "metrics.json")["test"]
    if meta.get("task") == "token":
        return token_metric(metric, test["labels"], _run_config(Path(run_dir))["data"]["ignore_labels"],
                            test.get("settings", {}).get("scheme", "iob2"))
    return classification_metric(metric, test["labels"], test.get("positive_label"))


def runner_up(results: pd.DataFrame, metric: str, best: str | None) -> str | None:
    """The arm second by mean validation metric (the one the best arm most needs to be told apart from)."""
    if best is None:
        return None
    means = results.groupby("arm")[f"val_{metric}"].mean().drop(best, errors="ignore")
    if means.empty:
        return None
    return means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax()


def _run_config(run_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())
