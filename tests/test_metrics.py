"""Metrics are computed once over the whole split and equal scikit-learn's on the same predictions."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from unfreeze.errors import ConfigError
from unfreeze.metrics.classification import classification_metrics, is_better, positive_index


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_metrics_equal_sklearn(classes):
    rng = np.random.default_rng(classes)
    y_true = rng.integers(0, classes, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, classes, 500))
    names = [f"c{i}" for i in range(classes)]
    m = classification_metrics(y_true, y_pred, names)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for avg in ("macro", "micro", "weighted"):
        assert m[f"f1_{avg}"] == pytest.approx(f1_score(y_true, y_pred, average=avg))
        assert m[f"precision_{avg}"] == pytest.approx(precision_score(y_true, y_pred, average=avg))
        assert m[f"recall_{avg}"] == pytest.approx(recall_score(y_true, y_pred, average=avg))
    assert np.array(m["confusion_matrix"]).sum() == 500
    if classes == 2:
        assert m["f1"] == pytest.approx(f1_score(y_true, y_pred, pos_label=1))


def test_global_f1_differs_from_batch_average():
    """The notebook bug: averaging per-batch F1 is not the F1 of the set. Our function takes the whole set."""
    y_true = np.array([1, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    batches = [slice(0, 4), slice(4, 8)]
    batch_mean = np.mean([f1_score(y_true[b], y_pred[b], zero_division=0) for b in batches])
    ours = classification_metrics(y_true, y_pred, ["neg", "pos"], positive_label="pos")["f1"]
    assert ours == pytest.approx(f1_score(y_true, y_pred))
    assert ours != pytest.approx(batch_mean)


def test_absent_class_still_counts_in_macro():
    m = classification_metrics([0, 0, 1], [0, 0, 1], ["a", "b", "c"])
    assert m["f1_macro"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["support"] == 0


def test_positive_label():
    assert positive_index(["ham", "spam"], None) == 1
    assert positive_index(["fresh", "rotten"], None) == 0
    assert positive_index(["a", "b"], "a") == 0
    with pytest.raises(ConfigError, match="positive_label"):
        positive_index(["a", "b"], "c")


def test_is_better_direction():
    assert is_better("f1_macro", 0.5, 0.4) and not is_better("f1_macro", 0.3, 0.4)
    assert is_better("loss", 0.3, 0.4) and is_better("loss", 1.0, None)
