"""The TF-IDF baseline: chosen on val, metrics equal sklearn on its own predictions."""
import numpy as np
import pytest
from sklearn.metrics import f1_score

from tiny import synthetic_frame
from unfreeze.study.baselines import tfidf_logreg


def test_tfidf_baseline_beats_chance_and_reports_sklearn_metrics():
    train, val, test = synthetic_frame(200, 0), synthetic_frame(60, 1), synthetic_frame(60, 2)
    names = ["neg", "pos"]
    enc = lambda f: np.array([names.index(x) for x in f["label"]])  # noqa: E731
    result = tfidf_logreg(train["text"], enc(train), val["text"], enc(val), test["text"], enc(test), names)
    assert result["test"]["accuracy"] > 0.8
    assert result["test"]["f1_macro"] == pytest.approx(f1_score(enc(test), result["test_pred"], average="macro"))
    assert "chosen on val" in result["method"]
