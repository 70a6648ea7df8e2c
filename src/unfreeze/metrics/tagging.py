"""Tag schemes and metrics for token classification, computed once over a whole split from one tag per word.

Why a separate family from `metrics.py`: in NER-style data 80–95 % of words are `O`. Any average that counts
`O` (token accuracy, micro-F1 over all labels, macro-F1 with `O` as a class) looks excellent for a model that
finds no entity at all. So every figure exists twice — over all labels (for completeness and comparison with
papers that report it) and `*_ignoring` over the labels left after removing `data.ignore_labels` — and, where
the tags follow a scheme, entity-level figures (an entity counts only if its whole span and type match), which
is what NER papers report and what `train.metric: auto` selects on.

Entity spans are read the conlleval way (seqeval's default mode): an `I-X` after `O` starts an entity instead
of being dropped, so scheme violations in predictions or gold are counted, not silently repaired. For `plain`
tags (no B-/I- prefixes) an entity is a maximal run of one non-ignored tag (the IO scheme), so `entity_*`
always exists and `train.metric: auto` never names a metric that is missing.

Units: everything here is over *words* of the original data (one gold tag, one predicted tag each), never over
subwords or windows — words the tokenizer dropped or truncation cut off count with their fallback prediction.
"""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, fbeta_score, precision_recall_fscore_support

_PREFIXED = re.compile(r"^([BIES])-(.+)$")

#: Scalar metrics a token task reports (entity_* also for plain tags, read as IO spans).
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

    `ignore_labels` are names; labels not in `label_names` are ignored here (the data loader already refused
    unknown names). All labels are always passed to sklearn (`labels=`), so a label absent from a split still
    counts in macro averages with F1 0 instead of silently vanishing.
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

    out: dict = {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=everything, average=average,
                                                     zero_division=0)
        if average == "weighted":
            out["f1_weighted"] = float(f)
            continue
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=kept, average=average, zero_division=0)
        out[f"precision_{average}_ignoring"] = float(p)
        out[f"recall_{average}_ignoring"] = float(r)
        out[f"f1_{average}_ignoring"] = float(f)
        out[f"fbeta_{average}_ignoring"] = float(fbeta_score(y_true, y_pred, beta=beta, labels=kept,
                                                             average=average, zero_division=0))
    entity = entity_metrics(_names(gold, names), _names(pred, names), scheme, ignored)
    out.update(entity.pop("scalars"))
    if loss is not None:
        out["loss"] = float(loss)

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=everything, zero_division=0)
    out["per_class"] = {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                        for i, n in enumerate(names)}
    out["per_entity_type"] = entity["per_type"]
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=everything).tolist()
    out["confusion_matrix_ignoring"] = confusion_matrix(y_true, y_pred, labels=kept).tolist()
    out["labels"] = names
    out["labels_ignoring"] = [names[i] for i in kept]
    out["counts"] = {"sentences": len(gold), "words": int(len(y_true)), "gold_entities": entity["gold_entities"],
                     "pred_entities": entity["pred_entities"], "fallback_words": int(fallback_words)}
    out["settings"] = {"scheme": scheme, "entity_spans": "io-runs" if scheme == "plain" else "conlleval",
                       "ignore_labels": sorted(ignored & set(names)), "fbeta_beta": float(beta)}
    return out


def _names(tags: Sequence[Sequence[int]], names: list[str]) -> list[list[str]]:
    return [[names[int(t)] for t in sentence] for sentence in tags]


def entity_tags(sentences: list[list[str]], scheme: str, ignored: set[str]) -> list[list[str]]:
    """Tags as seqeval reads them: ignored labels become `O`; plain tags become `I-<tag>` (IO spans)."""
    if scheme == "plain":
        return [["O" if t in ignored or t == "O" else f"I-{t}" for t in s] for s in sentences]
    if not ignored - {"O"}:
        return sentences
    return [["O" if t in ignored else t for t in s] for s in sentences]


def entity_metrics(gold: list[list[str]], pred: list[list[str]], scheme: str, ignored: set[str]) -> dict:
    """Entity-level P/R/F1 (micro and macro over entity types) and a per-type report, via seqeval."""
    from seqeval.metrics import classification_report
    from seqeval.metrics.sequence_labeling import get_entities

    g, p = entity_tags(gold, scheme, ignored), entity_tags(pred, scheme, ignored)
    n_gold = sum(len(get_entities(s)) for s in g)
    n_pred = sum(len(get_entities(s)) for s in p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no predicted samples" is expected early in training; zero_division=0
        report = classification_report(g, p, output_dict=True, zero_division=0) if (n_gold or n_pred) else {}
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


# ---------------------------------------------------------------------------------------------------------
# Tag schemes: shared by the data check (token_data.py) and the reading of entity spans here


def parse_tag(tag: str) -> tuple[str | None, str]:
    """("B", "PER") for "B-PER"; ("O", "") for "O"; (None, tag) for a tag without a scheme prefix."""
    if tag == "O":
        return "O", ""
    m = _PREFIXED.match(tag)
    return (m.group(1), m.group(2)) if m else (None, tag)


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """plain when some non-`O` tag lacks a B-/I-/E-/S- prefix; bioes when E- or S- occur; otherwise whichever
    of IOB2 / IOB1 the data breaks less often (IOB1 starts entities with I- and uses B- only between two
    adjacent entities of one type; IOB2 starts every entity with B-). Ties go to IOB2, the common one."""
    tags = {t for seq in tag_sequences for t in seq}
    parsed = [parse_tag(t) for t in tags if t != "O"]
    if not parsed or any(p is None for p, _ in parsed):
        return "plain"
    if any(p in ("E", "S") for p, _ in parsed):
        return "bioes"
    v2 = sum(len(scheme_violations(s, "iob2")) for s in tag_sequences)
    v1 = sum(len(scheme_violations(s, "iob1")) for s in tag_sequences)
    return "iob1" if v1 < v2 else "iob2"


def scheme_violations(tags: Sequence[str], scheme: str) -> list[int]:
    """Positions where `tags` break `scheme` (position len(tags) = an entity left open at the end, BIOES).

    iob2: `I-X` not after `B-X`/`I-X`. iob1: `B-X` not after `B-X`/`I-X` (B- only separates same-type
    neighbours). bioes: `I-X`/`E-X` not after `B-X`/`I-X`, or an entity opened by `B-`/`I-` not closed by `E-`.
    """
    if scheme == "plain":
        return []
    bad = []
    prev_p, prev_t = "O", ""
    for i, tag in enumerate(tags):
        p, t = parse_tag(tag)
        inside = prev_p in ("B", "I") and prev_t == t
        if scheme == "iob2" and p == "I" and not inside:
            bad.append(i)
        elif scheme == "iob1" and p == "B" and not inside:
            bad.append(i)
        elif scheme == "bioes":
            if p in ("I", "E") and not inside:
                bad.append(i)
            elif p in ("B", "S", "O") and prev_p in ("B", "I"):
                bad.append(i)
        prev_p, prev_t = p, t
    if scheme == "bioes" and prev_p in ("B", "I"):
        bad.append(len(tags))
    return bad
