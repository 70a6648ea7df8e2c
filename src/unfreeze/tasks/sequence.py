"""Sequence (text) classification: one label per text (or text pair), a pooled head, TF-IDF as the baseline.

Data: `data/sequence.py` (tables, built-in and hub data sets); metrics: `metrics/classification.py`; predictions:
`predictions_<split>.csv` with `id, text, [text_pair,] label, pred, prob_<label>…`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from unfreeze.io import write_dataframe_csv
from unfreeze.tasks.base import Task, register

log = logging.getLogger("unfreeze.training.prepare")  # the run's log: `max_length` warnings read as before

PROB_PREFIX = "prob_"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def prediction_frame(ids, logits: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """`id, pred, prob_<label>…` from (examples, labels) logits (float64 softmax)."""
    probs = softmax(logits.astype(np.float64))
    frame = pd.DataFrame({"id": list(ids), "pred": [label_names[i] for i in probs.argmax(-1)]})
    for j, name in enumerate(label_names):
        frame[f"{PROB_PREFIX}{name}"] = probs[:, j]
    return frame


@register
class SequenceTask(Task):
    name = "sequence"
    pipeline = "text-classification"
    example_input = '["a text to classify"]'
    logits_doc = "per text (batch, labels); softmax gives predict's prob_<label> columns"
    predictions_suffix = "csv"
    baseline_kind = "tfidf"
    baseline_name = "TF-IDF"

    def read_data(self, data_cfg):
        from unfreeze.data.sequence import load_sequence_data

        return load_sequence_data(data_cfg)

    def encode(self, tokenizer, data, data_cfg, max_positions: int, token_types: bool):
        from unfreeze.data.encode import choose_max_length, encode_texts, token_lengths

        train = data.train
        max_length, stats = choose_max_length(token_lengths(tokenizer, train.texts, train.pairs), data_cfg,
                                              max_positions)
        encoded = {name: encode_texts(tokenizer, split.texts, split.pairs, split.labels, max_length, token_types)
                   for name, split in (("train", data.train), ("val", data.val), ("test", data.test))}
        if stats["truncated_share"] > 0.05:
            log.warning("max_length=%d truncates %.0f%% of training texts", max_length,
                        100 * stats["truncated_share"])
        return encoded, max_length, stats

    def gold_labels(self, split, label_names: Sequence[str]) -> list:
        return [label_names[int(i)] for i in split.labels]

    def inspect(self, data_cfg, model_name: str | None = None, load_model: Callable | None = None) -> dict:
        from unfreeze.data.inspect import inspect_sequence

        return inspect_sequence(data_cfg, model_name, load_model)

    def split_metrics(self, run, data_cfg, split: str, logits: list[np.ndarray], loss: float) -> dict:
        from unfreeze.metrics.classification import classification_metrics

        preds = np.stack(logits).argmax(-1)
        return classification_metrics(run.encoded[split].labels, preds, run.label_names,
                                      data_cfg.positive_label, loss)

    def _headline_extra(self, columns) -> list[str]:
        return ["accuracy", "f1" if "test_f1" in columns else "f1_micro"]

    def count_metric(self, metric: str, scored: dict, run_config: Callable[[], dict]):
        from unfreeze.metrics.counts import classification_metric

        return classification_metric(metric, scored["labels"], scored.get("positive_label"))

    def write_predictions(self, out: Path, run, split: str, logits: list[np.ndarray]) -> None:
        source = getattr(run.data, split)
        frame = prediction_frame(source.ids, np.stack(logits), run.label_names)
        frame.insert(1, "text", source.texts)
        if source.pairs is not None:
            frame.insert(2, "text_pair", source.pairs)
        frame.insert(frame.columns.get_loc("pred"), "label", [run.label_names[i] for i in source.labels])
        write_dataframe_csv(Path(out) / self.predictions_file(split), frame)

    def read_predictions(self, run_dir: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        frame = pd.read_csv(Path(run_dir) / self.predictions_file(split), dtype={"label": str, "pred": str})
        return frame["label"].to_numpy(), frame["pred"].to_numpy()

    def auto_class(self, pooling: str) -> str | None:
        return "AutoModelForSequenceClassification" if pooling == "pooler" else None
