"""Tag schemes and metrics for token classification, computed once over a whole split from one tag per word.

Why a separate family from `metrics.py`: in NER-style data 80–95 % of words are `O`. Any average that counts
`O` (token accuracy, micro-F1 over all labels, macro-F1 with `O` as a class) looks excellent for a model that
finds no entity at all. So every figure exists twice — over all labels (for completeness and comparison with
papers that report it) and `*_ignoring` over the labels left after removing `data.ignore_labels` — and, where
the tags follow a scheme, entity-level figures (an entity counts only if its whole span and type match), which
is what NER papers report and what `train.metric: auto` selects on.

Entity spans are read *strictly* in the data's scheme (IOB1, IOB2, IOE1, IOE2, IOBES, BILOU, BMES: see
`unfreeze.data.tag_schemes`), by seqeval's strict mode: a fragment that breaks the scheme (an IOB2 `I-X` after
`O`, an IOBES entity never closed) is not an entity. Reading BMES or IOB1 with the wrong rule would cut or drop
entities, so the reading always follows the scheme; gold violations are counted by the data loader, not
repaired. `plain` tags (no prefixes) define no entities, so they get no `entity_*` metrics (and
`train.metric: auto` selects on `f1_macro_ignoring` there).

Units: everything here is over *words* of the original data (one gold tag, one predicted tag each), never over
subwords or windows — words the tokenizer dropped or truncation cut off count with their fallback prediction.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, fbeta_score, precision_recall_fscore_support

from unfreeze.data.tag_schemes import canonical_scheme, entity_spans
from unfreeze.metrics.seqeval_bridge import seqeval_inputs

#: Scalar metrics a token task reports (entity_* only where the tags follow a scheme, i.e. not `plain`).
TOKEN_METRICS = (
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_micro", "recall_micro", "f1_micro",
    "f1_weighted", "precision_macro_ignoring", "recall_macro_ignoring", "f1_macro_ignoring",
    "precision_micro_ignoring", "recall_micro_ignoring", "f1_micro_ignoring", "fbeta_macro_ignoring",
    "fbeta_micro_ignoring", "entity_precision_micro", "entity_recall_micro", "entity_f1_micro",
    "entity_precision_macro", "entity_recall_macro", "entity_f1_macro",
)


def tag_metrics(
    gold: Sequence[Sequence[int]],
    pred: Sequence[Sequence[int]],
    label_names: Sequence[str],
    ignore_labels: Sequence[str] = (),
    scheme: str = "iob2",
    beta: float = 1.0,
    loss: float | None = None,
    fallback_words: int = 0,
) -> dict:
    """All token-task metrics from per-sentence gold/predicted tag indices (one per word).

    `ignore_labels` are names; labels not in `label_names` are ignored here. Macro averages run over the labels
    *present* in this split — in the gold tags or the predictions (scikit-learn's `labels=` given exactly that
    set) — as users read them: a training tag absent from the test set, and never predicted, is not a 0 that drags
    the average down. A label predicted but absent from gold still counts (F1 0: false positives), and a gold tag
    the model never saw in training (`data.tokens` keeps them) counts with recall 0. `per_class` lists every label.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predictions")
    names = list(label_names)
    y_true = np.concatenate([np.asarray(g, dtype=np.int64) for g in gold]) if gold else np.zeros(0, np.int64)
    y_pred = np.concatenate([np.asarray(p, dtype=np.int64) for p in pred]) if pred else np.zeros(0, np.int64)
    everything = list(range(len(names)))
    ignored = set(ignore_labels)
    kept = [i for i, n in enumerate(names) if n not in ignored]
    present = set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist())
    averaged = {"all": [i for i in everything if i in present] or everything,
                "ignoring": [i for i in kept if i in present] or kept}

    out: dict = {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=averaged["all"], average=average,
                                                     zero_division=0)
        if average == "weighted":
            out["f1_weighted"] = float(f)
            continue
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    for average in ("macro", "micro"):
        labels = averaged["ignoring"] if average == "macro" else kept
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        out[f"precision_{average}_ignoring"] = float(p)
        out[f"recall_{average}_ignoring"] = float(r)
        out[f"f1_{average}_ignoring"] = float(f)
        out[f"fbeta_{average}_ignoring"] = float(fbeta_score(y_true, y_pred, beta=beta, labels=labels,
                                                             average=average, zero_division=0))
    entity = entity_metrics(_names(gold, names), _names(pred, names), scheme, ignored)
    out.update(entity.pop("scalars"))
    if loss is not None:
        out["loss"] = float(loss)

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=everything, zero_division=0)
    out["per_class"] = {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                        for i, n in enumerate(names)}
    if entity["per_type"] is not None:
        out["per_entity_type"] = entity["per_type"]
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=everything).tolist()
    out["confusion_matrix_ignoring"] = confusion_matrix(y_true, y_pred, labels=kept).tolist()
    out["labels"] = names
    out["labels_ignoring"] = [names[i] for i in kept]
    out["counts"] = {"sentences": len(gold), "words": int(len(y_true)), "fallback_words": int(fallback_words)}
    if entity["per_type"] is not None:
        out["counts"].update(gold_entities=entity["gold_entities"], pred_entities=entity["pred_entities"])
    out["settings"] = {"scheme": scheme, "entity_spans": "none" if scheme == "plain" else "strict",
                       "ignore_labels": sorted(ignored & set(names)), "fbeta_beta": float(beta),
                       "macro_over": "labels present in gold or predictions of this split"}
    return out


def _names(tags: Sequence[Sequence[int]], names: list[str]) -> list[list[str]]:
    return [[names[int(t)] for t in sentence] for sentence in tags]


def has_entities(scheme: str) -> bool:
    """Whether tags of `scheme` define entity spans (every scheme but `plain`)."""
    return canonical_scheme(scheme) != "plain"


def entity_tags(sentences: list[list[str]], ignored: set[str]) -> list[list[str]]:
    """Tags with the ignored labels turned into `O` (an ignored entity type is not scored as an entity)."""
    if not ignored - {"O"}:
        return sentences
    return [["O" if t in ignored else t for t in s] for s in sentences]


def sentence_spans(sentences: list[list[str]], scheme: str, ignored: set[str]) -> list[set]:
    """Per sentence, the strict entity spans {(type, start, end)} after ignoring labels — the one reading
    metrics.json (through seqeval) and the report's bootstrap (`metrics.counts`) share."""
    return [entity_spans(s, scheme) for s in entity_tags(sentences, ignored)]


def entity_metrics(gold: list[list[str]], pred: list[list[str]], scheme: str, ignored: set[str]) -> dict:
    """Entity-level P/R/F1 (micro and macro over entity types) and a per-type report, by seqeval in strict
    mode on tags it reads exactly as `entity_spans` (converted to IOBES where seqeval has no class for the
    scheme or reads it wrongly). For `plain` tags: no scalars, `per_type` None."""
    if not has_entities(scheme):
        return {"scalars": {}, "per_type": None, "gold_entities": 0, "pred_entities": 0}
    from seqeval.metrics import classification_report

    g, p = entity_tags(gold, ignored), entity_tags(pred, ignored)
    both, kwargs = seqeval_inputs(g + p, scheme)  # one call: gold and predictions read with the same class
    g, p = both[:len(g)], both[len(g):]
    n_gold = sum(len(x) for x in sentence_spans(gold, scheme, ignored))
    n_pred = sum(len(x) for x in sentence_spans(pred, scheme, ignored))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no predicted samples" is expected early in training; zero_division=0
        report = (classification_report(g, p, output_dict=True, zero_division=0, **kwargs)
                  if (n_gold or n_pred) else {})
    micro = report.get("micro avg", {})
    macro = report.get("macro avg", {})
    scalars = {
        "entity_precision_micro": float(micro.get("precision", 0.0)),
        "entity_recall_micro": float(micro.get("recall", 0.0)),
        "entity_f1_micro": float(micro.get("f1-score", 0.0)),
        "entity_precision_macro": float(macro.get("precision", 0.0)),
        "entity_recall_macro": float(macro.get("recall", 0.0)),
        "entity_f1_macro": float(macro.get("f1-score", 0.0)),
    }
    per_type = {name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                       "f1": float(v["f1-score"]), "support": int(v["support"])}
                for name, v in report.items() if not name.endswith(" avg")}
    return {"scalars": scalars, "per_type": per_type, "gold_entities": n_gold, "pred_entities": n_pred}
