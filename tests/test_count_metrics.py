"""Count-based metrics (used by the report's bootstrap) equal scikit-learn / seqeval on the same predictions, and
the fast bootstrap gives the same answer as recomputing the metric on every resample."""
import numpy as np
import pytest
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from unfreeze.metrics.counts import SUPPORTED, classification_metric, token_metric
from unfreeze.metrics.stats import paired_bootstrap

LABELS = ["a", "b", "c", "d"]


def entity_f1(gold, pred):
    """seqeval strict IOB2: the reading metrics.json uses (a stray I- after O is not an entity)."""
    return seqeval_f1(gold, pred, mode="strict", scheme=IOB2)


def random_predictions(seed, n=300, absent="d"):
    rng = np.random.default_rng(seed)
    y = rng.choice(LABELS[:3], n)  # class `d` never occurs in the truth, sometimes predicted
    p = np.where(rng.random(n) < 0.6, y, rng.choice(LABELS, n))
    return y, p


def sklearn_value(metric, y, p, positive="b"):
    if metric == "accuracy":
        return accuracy_score(y, p)
    if metric == "f1":
        # sklearn's average="binary" is only for two classes; the positive class's own F1 is the same number
        return f1_score(y, p, labels=LABELS, average=None, zero_division=0)[LABELS.index(positive)]
    kind, average = metric.split("_")
    fn = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[kind]
    return fn(y, p, labels=LABELS, average=average, zero_division=0)


@pytest.mark.parametrize("metric", sorted(SUPPORTED))
@pytest.mark.parametrize("seed", [0, 1])
def test_classification_count_metrics_equal_sklearn(metric, seed):
    y, p = random_predictions(seed)
    counted = classification_metric(metric, LABELS, positive="b")
    assert counted(y, p) == pytest.approx(sklearn_value(metric, y, p), abs=1e-12)


def token_sequences(seed, n=60):
    rng = np.random.default_rng(seed)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold, pred = [], []
    for _ in range(n):
        length = int(rng.integers(1, 9))
        g = list(rng.choice(tags, length, p=[0.6, 0.1, 0.1, 0.1, 0.1]))
        gold.append(g)
        pred.append([t if rng.random() < 0.7 else str(rng.choice(tags)) for t in g])
    return tags, gold, pred


def test_token_count_metrics_equal_seqeval_and_sklearn():
    tags, gold, pred = token_sequences(0)
    assert token_metric("entity_f1_micro", tags, ["O"])(gold, pred) == pytest.approx(entity_f1(gold, pred))
    flat_g, flat_p = np.concatenate(gold), np.concatenate(pred)
    expected = f1_score(flat_g, flat_p, labels=tags[1:], average="macro", zero_division=0)
    assert token_metric("f1_macro_ignoring", tags, ["O"])(gold, pred) == pytest.approx(expected)
    assert token_metric("loss", tags, ["O"]) is None


def test_fast_bootstrap_equals_recomputing_on_every_resample():
    y, a0 = random_predictions(2)
    _, a1 = random_predictions(3)
    _, b0 = random_predictions(4)
    _, b1 = random_predictions(5)
    counted = classification_metric("f1_macro", LABELS)
    fast = paired_bootstrap(y, [a0, a1], [b0, b1], counted, n_boot=200, seed=7)
    slow = paired_bootstrap(y, [a0, a1], [b0, b1], lambda t, p: sklearn_value("f1_macro", t, p), n_boot=200, seed=7)
    for key in ("delta", "p_value", "ci_low", "ci_high"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-12)


def test_token_bootstrap_resamples_sentences():
    tags, gold, pred = token_sequences(1)
    _, _, other = token_sequences(2)
    y = np.empty(len(gold), dtype=object)
    a, b = np.empty(len(gold), dtype=object), np.empty(len(gold), dtype=object)
    y[:], a[:], b[:] = gold, pred, [o[:len(g)] + ["O"] * (len(g) - len(o)) for o, g in zip(other, gold)]
    counted = token_metric("entity_f1_micro", tags, ["O"])
    fast = paired_bootstrap(y, [a], [b], counted, n_boot=100, seed=1)
    slow = paired_bootstrap(y, [a], [b], lambda t, p: entity_f1(list(t), list(p)), n_boot=100, seed=1)
    assert fast["delta"] == pytest.approx(slow["delta"]) and fast["ci_low"] == pytest.approx(slow["ci_low"])


@pytest.mark.parametrize("scheme, ignore", [("iob2", ["O"]), ("iob2", ["O", "B-LOC", "I-LOC"]),
                                           ("iobes", ["O"])])
def test_token_entity_count_metric_equals_metrics_json(scheme, ignore):
    """The report's significance test must score entities exactly as metrics.json does: strict spans in the
    data's scheme, ignored labels as O."""
    from unfreeze.metrics.tagging import tag_metrics

    tags, gold, pred = token_sequences(3)
    if scheme == "iobes":  # same random letters, read as IOBES (I- is inside, entities must close with E-)
        swap = lambda s: [t.replace("I-", "E-").replace("B-", "S-") if k % 2 == 0 else t  # noqa: E731
                          for k, t in enumerate(s)]
        gold, pred = [swap(s) for s in gold], [swap(s) for s in pred]
        tags = tags + ["E-PER", "E-LOC", "S-PER", "S-LOC"]
    index = {t: i for i, t in enumerate(tags)}
    as_ids = lambda seqs: [[index[t] for t in s] for s in seqs]  # noqa: E731
    expected = tag_metrics(as_ids(gold), as_ids(pred), tags, ignore, scheme=scheme)["entity_f1_micro"]
    counted = token_metric("entity_f1_micro", tags, ignore, scheme)
    assert counted(gold, pred) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1


def test_plain_tags_have_no_entity_metrics():
    from unfreeze.metrics.tagging import tag_metrics

    tags = ["O", "PER", "LOC"]
    gold, pred = [[0, 1, 1, 2]], [[0, 1, 0, 2]]
    metrics = tag_metrics(gold, pred, tags, ["O"], scheme="plain")
    assert not [k for k in metrics if k.startswith("entity_")] and "per_entity_type" not in metrics
    assert metrics["settings"]["entity_spans"] == "none"
    assert token_metric("entity_f1_micro", tags, ["O"], "plain") is None
