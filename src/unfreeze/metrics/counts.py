"""Metrics as functions of summed per-example counts, so a bootstrap resample costs one matrix product.

Why: the report's paired bootstrap recomputes the selection metric on 1000 resamples × seeds × arms. Through
scikit-learn / seqeval that is milliseconds of input validation per call — minutes for a small study. Every metric
we select on is a function of counts that add up over examples (a confusion matrix; entity true positives,
predicted and gold entities), so each example becomes a row of counts, a resample becomes a vector of example
weights (how often each example was drawn), and the metric of every resample is `weights @ rows` → formula.
Equality with scikit-learn and seqeval on the full set is tested.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class CountMetric:
    name: str
    counts: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (y_true, y_pred) -> (n_examples, d)
    from_totals: Callable[[np.ndarray], np.ndarray]  # (..., d) summed counts -> (...) metric values

    def __call__(self, y_true, y_pred) -> float:
        return float(self.from_totals(self.counts(y_true, y_pred).sum(0)[None])[0])


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's and seqeval's `zero_division=0`)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _confusion_rows(codes_true: np.ndarray, codes_pred: np.ndarray, k: int) -> np.ndarray:
    rows = np.zeros((len(codes_true), k * k))
    rows[np.arange(len(codes_true)), codes_true * k + codes_pred] = 1.0
    return rows


def _from_confusion(metric: str, k: int, kept: list[int], positive: int | None, present_only: bool = False):
    """Metric of (..., k*k) confusion counts (rows true, columns predicted), over the label indices `kept`.
    `present_only`: macro averages over the kept labels present in the (resampled) gold or predictions — the token
    metrics' reading (`metrics.tagging.tag_metrics`)."""

    def value(totals: np.ndarray) -> np.ndarray:
        cm = totals.reshape(*totals.shape[:-1], k, k)
        tp = np.diagonal(cm, axis1=-2, axis2=-1)
        predicted, true = cm.sum(-2), cm.sum(-1)
        if metric == "accuracy":
            return _div(tp.sum(-1), cm.sum((-2, -1)))
        kind, _, average = metric.partition("_")
        if average == "micro":
            tp_, pred_, true_ = tp[..., kept].sum(-1), predicted[..., kept].sum(-1), true[..., kept].sum(-1)
            return {"f1": _div(2 * tp_, pred_ + true_), "precision": _div(tp_, pred_), "recall": _div(tp_, true_)}[kind]
        per_class = {"f1": _div(2 * tp, predicted + true), "precision": _div(tp, predicted),
                     "recall": _div(tp, true)}[kind]
        if metric == "f1":
            return per_class[..., positive]
        if average == "weighted":
            return _div((per_class[..., kept] * true[..., kept]).sum(-1), true[..., kept].sum(-1))
        if present_only:
            mask = (predicted + true)[..., kept] > 0
            return _div((per_class[..., kept] * mask).sum(-1), mask.sum(-1))
        return per_class[..., kept].mean(-1)

    return value


SUPPORTED = {"accuracy", "f1", *(f"{m}_{a}" for m in ("f1", "precision", "recall")
                                 for a in ("macro", "micro", "weighted"))}


def classification_metric(metric: str, labels: list[str], positive: str | None = None) -> CountMetric | None:
    """`metric` (names of metrics.json) over string labels, or None when it is not a count metric."""
    if metric not in SUPPORTED or (metric == "f1" and positive not in labels):
        return None
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)

    def counts(y_true, y_pred) -> np.ndarray:
        return _confusion_rows(np.array([index[v] for v in y_true]), np.array([index[v] for v in y_pred]), k)

    pos = index.get(positive) if positive is not None else None
    return CountMetric(metric, counts, _from_confusion(metric, k, list(range(k)), pos))


def token_metric(metric: str, labels: list[str], ignore: list[str], scheme: str = "iob2") -> CountMetric | None:
    """Token-task selection metrics with a sentence as the resampled unit (its words stay together). Entity
    spans are read exactly as `token_metrics` reads them for metrics.json (ignored labels → O, plain → IO)."""
    if metric == "entity_f1_micro":
        from unfreeze.metrics.tagging import has_entities, sentence_spans

        if not has_entities(scheme):
            return None  # plain tags define no entities (metrics.json has no entity_* either)

        def counts(y_true, y_pred) -> np.ndarray:
            ignored = set(ignore)
            return _entity_counts(sentence_spans([list(t) for t in y_true], scheme, ignored),
                                  sentence_spans([list(p) for p in y_pred], scheme, ignored))

        return CountMetric(metric, counts, lambda t: _div(2 * t[..., 0], t[..., 1] + t[..., 2]))
    if metric == "f1_macro_ignoring":
        index = {label: i for i, label in enumerate(labels)}
        k = len(labels) + 1  # last index: any tag outside `labels` (counts against precision/recall, never averaged)
        kept = [index[n] for n in labels if n not in ignore]

        def code(tags) -> np.ndarray:
            return np.array([index.get(t, k - 1) for t in tags], dtype=int)

        def counts(y_true, y_pred) -> np.ndarray:
            rows = np.zeros((len(y_true), k * k))
            for i, (tags, preds) in enumerate(zip(y_true, y_pred)):
                rows[i] = np.bincount(code(tags) * k + code(preds), minlength=k * k)
            return rows

        return CountMetric(metric, counts, _from_confusion("f1_macro", k, kept, None, present_only=True))
    return None


def _entity_counts(gold_spans: list[set], pred_spans: list[set]) -> np.ndarray:
    """Per sentence: (entities found exactly, entities predicted, gold entities), from the strict spans
    `metrics.tagging.sentence_spans` reads — the same reading as seqeval's strict mode in metrics.json."""
    rows = np.zeros((len(gold_spans), 3))
    for i, (gold, found) in enumerate(zip(gold_spans, pred_spans)):
        rows[i] = (len(gold & found), len(found), len(gold))
    return rows
