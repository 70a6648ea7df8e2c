"""Token classification (NER-style): tagged sentences in, one tag per word out; a per-token head, the
most-frequent tag per word as the baseline.

Data: `data/tokens.py` + `data/token_files.py` (reading, scheme checks), `data/windows.py` (subword alignment,
long sentences as windows); metrics: `metrics/tagging.py` (+ seqeval); predictions: `predictions_<split>.jsonl`,
one line per sentence `{"id", "words", "tags" (gold), "pred"}`. Tagging files with a saved model is
`model/predict_tokens.py` (above this layer).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from unfreeze.data.tokens import TokenSplit
from unfreeze.data.windows import words_from_logits
from unfreeze.io import write_text
from unfreeze.metrics.tagging import tag_metrics
from unfreeze.tasks.base import Task, register

MACRO_NOTE = ("Token macro averages run over the labels present in the test set (gold or predicted), not every "
              "training tag; tags of val/test never seen in training are kept and count as errors (listed in "
              "metrics.json → data → unseen_labels).")


def fbeta_of(config) -> float:
    """β for `fbeta_*`: `data.fbeta` where the config has it, else `train.fbeta`, else 1."""
    for section in (getattr(config, "data", None), getattr(config, "train", None)):
        value = getattr(section, "fbeta", None)
        if value is not None:
            return float(value)
    return 1.0


def token_task_metrics(run, data_cfg, split: str, logits: list[np.ndarray], loss: float) -> dict:
    """Metrics of one split (see `metrics.tagging.tag_metrics`) from per-window logits in encoded order."""
    enc = run.encoded[split]
    pred = words_from_logits(enc, logits)
    fallback_words = sum(int((p[:, 0] < 0).sum()) for p in enc.owners)
    return tag_metrics(getattr(run.data, split).tags, pred, run.label_names, data_cfg.ignore_labels,
                       run.data.notes.get("scheme", "iob2"), float(data_cfg.fbeta), loss, fallback_words)


def write_token_predictions(path: str | Path, run, split: str, logits: list[np.ndarray]) -> None:
    """JSONL, one line per sentence: {"id", "words", "tags" (gold), "pred"} — tag names, one per word."""
    write_tag_predictions(path, getattr(run.data, split), run.label_names,
                          words_from_logits(run.encoded[split], logits))


def write_tag_predictions(path: str | Path, source: TokenSplit, label_names: Sequence[str], preds) -> None:
    """The predictions JSONL for any per-word predictions (a run's, or the baseline's), written atomically."""
    names = list(label_names)
    lines = [json.dumps({"id": i, "words": w, "tags": [names[t] for t in g], "pred": [names[int(t)] for t in p]},
                        ensure_ascii=False) for i, w, g, p in zip(source.ids, source.words, source.tags, preds)]
    write_text(path, "\n".join(lines) + ("\n" if lines else ""))


@register
class TokenTask(Task):
    name = "token"
    per_token = True
    windows_long_inputs = True
    rows_word = "sentences"
    labels_word = "tags"
    pipeline = "token-classification"
    example_input = '["alice lives in paris"]'
    logits_doc = "per subword token (batch, sequence, labels)"
    logits_axes = {0: "batch", 1: "sequence"}
    predictions_suffix = "jsonl"
    baseline_kind = "most_frequent_tag"
    baseline_name = "most-frequent tag"
    baseline_reads_texts = False
    probe_unit = "words"
    averages_members = False
    report_notes = (MACRO_NOTE,)

    def read_data(self, data_cfg):
        from unfreeze.data.tokens import load_token_data

        return load_token_data(data_cfg)

    def gold_labels(self, split, label_names: Sequence[str]) -> list:
        return [list(t) for t in split.tags]

    def inspect(self, data_cfg, model_name: str | None = None, load_model: Callable | None = None) -> dict:
        from unfreeze.data.inspect_tokens import inspect_tokens

        return inspect_tokens(data_cfg, model_name, load_model)

    def encode(self, tokenizer, data, data_cfg, max_positions: int, token_types: bool):
        from unfreeze.data.windows import encode_token_splits

        return encode_token_splits(tokenizer, data, data_cfg, max_positions)

    def split_metrics(self, run, data_cfg, split: str, logits: list[np.ndarray], loss: float) -> dict:
        return token_task_metrics(run, data_cfg, split, logits, loss)

    def _headline_extra(self, columns) -> list[str]:
        return ["f1_macro_ignoring", "entity_f1_micro", "accuracy"]

    def count_metric(self, metric: str, scored: dict, run_config: Callable[[], dict]):
        from unfreeze.metrics.counts import token_metric

        return token_metric(metric, scored["labels"], run_config()["data"]["ignore_labels"],
                            scored.get("settings", {}).get("scheme", "iob2"))

    def write_predictions(self, out: Path, run, split: str, logits: list[np.ndarray]) -> None:
        write_token_predictions(Path(out) / self.predictions_file(split), run, split, logits)

    def read_predictions(self, run_dir: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        text = (Path(run_dir) / self.predictions_file(split)).read_text()
        rows = [json.loads(line) for line in text.splitlines()]
        y, p = np.empty(len(rows), dtype=object), np.empty(len(rows), dtype=object)
        y[:], p[:] = [r["tags"] for r in rows], [r["pred"] for r in rows]
        return y, p

    def head_words(self, model_meta: dict) -> str:
        return "token head"

    def auto_class(self, pooling: str) -> str | None:
        return "AutoModelForTokenClassification"
