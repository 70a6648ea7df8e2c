"""Token classification (NER-style): tagged sentences in, one predicted tag per input word out.

This module is the task's glue — metrics of a run, prediction files, `unfreeze predict` on a token model, the
most-frequent-tag baseline — and the one import point for the rest of the package. Reading and scheme checks
live in `token_data.py`, subword alignment and windows in `token_windows.py`, metric definitions in
`token_metrics.py`.
"""

from __future__ import annotations

import json

import logging


from pathlib import Path

from typing import Sequence

import numpy as np


from unfreeze.io import write_text

from unfreeze.data.tokens import TokenSplit

from unfreeze.metrics.tagging import tag_metrics

from unfreeze.data.windows import words_from_logits

log = logging.getLogger(__name__)



def fbeta_of(config) -> float:
    """β for `fbeta_*`: `data.fbeta` where the config has it, else `train.fbeta`, else 1."""
    for section in (getattr(config, "data", None), getattr(config, "train", None)):
        value = getattr(section, "fbeta", None)
        if value is not None:
            return float(value)
    return 1.0



def token_task_metrics(run, split: str, logits: list[np.ndarray], loss: float) -> dict:
    """Metrics of one split (see `token_metrics.tag_metrics`) from per-window logits in encoded order."""
    enc = run.encoded[split]
    pred = words_from_logits(enc, logits)
    fallback_words = sum(int((p[:, 0] < 0).sum()) for p in enc.owners)
    return tag_metrics(getattr(run.data, split).tags, pred, run.label_names, run.config.data.ignore_labels,
                       run.data.notes.get("scheme", "iob2"), fbeta_of(run.config), loss, fallback_words)



def write_token_predictions(path: str | Path, run, split: str, logits: list[np.ndarray]) -> None:
    """JSONL, one line per sentence: {"id", "words", "tags" (gold), "pred"} — tag names, one per word."""
    write_tag_predictions(path, getattr(run.data, split), run.label_names, words_from_logits(run.encoded[split], logits))



def write_tag_predictions(path: str | Path, source: TokenSplit, label_names: Sequence[str], preds) -> None:
    """The predictions JSONL for any per-word predictions (a run's, or the baseline's), written atomically."""
    names = list(label_names)
    lines = [json.dumps({"id": i, "words": w, "tags": [names[t] for t in g], "pred": [names[int(t)] for t in p]},
                        ensure_ascii=False) for i, w, g, p in zip(source.ids, source.words, source.tags, preds)]
    write_text(path, "\n".join(lines) + ("\n" if lines else ""))
