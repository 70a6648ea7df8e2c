"""Metrics computed once over a whole split from the collected predictions.

Notebooks average F1 over batches; that is not the F1 of the set (a batch with no positive example has F1 0 or
undefined). Every function here takes the full arrays of a split. Names are the contract of `metrics.json`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

#: Scalar metrics a run reports for a sequence task; `f1`/`precision`/`recall` only for binary tasks.
SEQUENCE_METRICS = (
    "accuracy", "f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_macro",
    "precision_micro", "recall_micro",
)
#: Metrics where lower is better; every other metric is maximised.
LOWER_IS_BETTER = frozenset({"loss"})


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    label_names: Sequence[str],
    positive_label: str | None = None,
    loss: float | None = None,
) -> dict:
    """Accuracy, P/R/F1 (macro, micro, weighted; binary for 2 classes), per-class report, confusion matrix.

    `y_true`/`y_pred` are class indices into `label_names`. All classes are always included (`labels=`), so a
    class absent from a split still counts in macro averages with F1 0 instead of silently vanishing.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(range(len(label_names)))
    out: dict = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    if len(label_names) == 2:
        pos = positive_index(label_names, positive_label)
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, pos_label=pos, average="binary", labels=labels, zero_division=0
        )
        out.update(precision=float(p), recall=float(r), f1=float(f), positive_label=label_names[pos])
    if loss is not None:
        out["loss"] = float(loss)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(label_names)
    }
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["labels"] = list(label_names)
    return out


def positive_index(label_names: Sequence[str], positive_label: str | None) -> int:
    """Index of the positive class: the configured one, else a conventional name, else the second class."""
    names = [str(n) for n in label_names]
    if positive_label is not None:
        if str(positive_label) not in names:
            from unfreeze.errors import ConfigError

            raise ConfigError(
                f"data.positive_label={positive_label!r} is not one of the labels {names}"
            )
        return names.index(str(positive_label))
    for conventional in ("1", "pos", "positive", "true", "yes", "spam", "fresh"):
        for i, n in enumerate(names):
            if n.lower() == conventional:
                return i
    return 1


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The flat float metrics of a metrics dict (drops per-class tables, matrices, label names)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def is_better(metric: str, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best
