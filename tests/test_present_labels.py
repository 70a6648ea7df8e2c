"""Token macro averages over the labels present in the split (gold ∪ predicted), as scikit-learn's default
reads them, and the report's count metric agreeing with metrics.json."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from unfreeze.metrics.counts import token_metric
from unfreeze.metrics.tagging import tag_metrics

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-NEW"]  # B-NEW: unseen in train


def sentences(seed):
    rng = np.random.default_rng(seed)
    gold = [list(rng.choice([0, 1, 2, 3, 4, 7], size=int(rng.integers(2, 7)))) for _ in range(40)]  # no ORG
    pred = [[int(t) if rng.random() < 0.7 else int(rng.choice([0, 1, 3])) for t in g] for g in gold]
    pred = [[1 if t == 7 else t for t in p] for p in pred]  # never predicts the unseen tag
    return gold, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_is_over_present_labels_and_matches_sklearn(seed):
    gold, pred = sentences(seed)
    m = tag_metrics(gold, pred, NAMES, ["O"], "iob2")
    yt, yp = np.concatenate(gold), np.concatenate(pred)
    present = sorted(set(yt) | set(yp))
    assert 5 not in present and 6 not in present and 7 in present
    assert m["f1_macro"] == pytest.approx(f1_score(yt, yp, labels=present, average="macro", zero_division=0))
    assert m["f1_macro"] == pytest.approx(f1_score(yt, yp, average="macro", zero_division=0))  # sklearn default
    kept = [i for i in present if i != 0]
    assert m["f1_macro_ignoring"] == pytest.approx(f1_score(yt, yp, labels=kept, average="macro", zero_division=0))
    assert m["precision_macro_ignoring"] == pytest.approx(precision_score(yt, yp, labels=kept, average="macro",
                                                                          zero_division=0))
    assert m["recall_macro_ignoring"] == pytest.approx(recall_score(yt, yp, labels=kept, average="macro",
                                                                    zero_division=0))
    assert m["per_class"]["B-NEW"]["recall"] == 0 and m["per_class"]["B-NEW"]["support"] > 0  # unseen: errors
    assert "B-ORG" in m["per_class"] and m["settings"]["macro_over"].startswith("labels present")
    counted = token_metric("f1_macro_ignoring", NAMES, ["O"])
    as_names = lambda s: np.array([[NAMES[t] for t in x] for x in s] + [[]], dtype=object)[:-1]  # noqa: E731
    assert counted(as_names(gold), as_names(pred)) == pytest.approx(m["f1_macro_ignoring"])


def test_entity_f1_counts_the_unseen_type_as_missed():
    from seqeval.metrics import f1_score as seq_f1

    gold, pred = [[1, 2, 0, 7]], [[1, 2, 0, 0]]
    m = tag_metrics(gold, pred, NAMES, ["O"], "iob2")
    names = lambda s: [[NAMES[t] for t in x] for x in s]  # noqa: E731
    assert m["entity_f1_micro"] == pytest.approx(seq_f1(names(gold), names(pred)))
    assert m["entity_recall_micro"] == pytest.approx(0.5)
