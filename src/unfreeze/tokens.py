"""Token classification (NER-style): tagged sentences in, one predicted tag per input word out.

This module is the task's glue — metrics of a run, prediction files, `unfreeze predict` on a token model, the
most-frequent-tag baseline — and the one import point for the rest of the package. Reading and scheme checks
live in `token_data.py`, subword alignment and windows in `token_windows.py`, metric definitions in
`token_metrics.py`.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError
from .files import write_text
from .token_data import TokenSplit, TokenTaskData, read_conll, read_token_jsonl, token_format
from .token_metrics import tag_metrics
from .token_windows import build_windows, special_template, word_pieces, words_from_logits

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Metrics, predictions, prediction files, baseline


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


def predict_token_file(model, tokenizer, meta: dict, input_path: str | Path, output_path: str | Path,
                       batch_size: int = 64):
    """Tag every word of a CoNLL file (tokens in column 0; a tag column, if any, is ignored) or a JSONL file
    (`tokens` list per line). Writes `word<TAB>pred` lines with a blank line between sentences, or — when the
    output ends in .jsonl/.json — {"id", "words", "pred"} per sentence. Long sentences are windowed exactly as
    at training time (the saved `max_length` and `stride`), never truncated, so every input word gets a tag.
    Returns a frame with one row per sentence (id, words, pred)."""
    import pandas as pd
    import torch

    from .encode import Collator, LengthGroupedBatchSampler

    input_path = Path(input_path)
    fmt = token_format(input_path)
    if fmt == "disk":
        raise DataError(f"{input_path}: give a CoNLL or JSONL file to tag")
    sentences = (read_token_jsonl(input_path, meta.get("tokens_column", "tokens"), None, "id", require_tags=False)
                 if fmt == "jsonl" else read_conll(input_path, -1, require_tags=False))
    sentences = [s for s in sentences if s.words]
    if not sentences:
        raise DataError(f"{input_path}: no sentences to tag")
    labels = list(meta["labels"])
    fallback = meta.get("fallback_tag") or ("O" if "O" in labels else labels[0])
    enc = build_windows(word_pieces(tokenizer, [s.words for s in sentences]), None, special_template(tokenizer),
                        int(meta["max_length"]), int(meta.get("stride", 32)), False, False, labels.index(fallback))
    device = next(model.parameters()).device
    collate = Collator(enc, tokenizer.pad_token_id or 0, token_task=True)
    logits: list = [None] * len(enc)
    model.eval()
    with torch.inference_mode():
        for indices in LengthGroupedBatchSampler(enc.lengths, batch_size, shuffle=False):
            batch = collate(indices)
            out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            for row, i in zip(out.float().cpu().numpy(), indices):
                logits[i] = row[:enc.lengths[i]]
    preds = [[labels[t] for t in p] for p in words_from_logits(enc, logits)]
    out_path = Path(output_path)
    if out_path.suffix.lower() in (".jsonl", ".json"):
        text = "".join(json.dumps({"id": s.id, "words": s.words, "pred": p}, ensure_ascii=False) + "\n"
                       for s, p in zip(sentences, preds))
    else:
        text = "\n".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, p)) for s, p in zip(sentences, preds))
    write_text(out_path, text)
    return pd.DataFrame({"id": [s.id for s in sentences], "words": [s.words for s in sentences], "pred": preds})


def most_frequent_tag_baseline(train_words: Sequence[Sequence[str]], train_tags: Sequence[Sequence[int]],
                               eval_words: Sequence[Sequence[str]]) -> list[list[int]]:
    """Per word, the tag it most often had in training (exact form, then lower-cased), else the most frequent
    tag overall. The floor a fine-tuned model must beat: on NER it already finds every memorised entity, so an
    entity F1 near it means the encoder added little. Ties go to the lower tag index (deterministic)."""
    exact: dict[str, Counter] = {}
    lower: dict[str, Counter] = {}
    overall: Counter = Counter()
    for words, tags in zip(train_words, train_tags):
        for w, t in zip(words, tags):
            exact.setdefault(w, Counter())[int(t)] += 1
            lower.setdefault(w.lower(), Counter())[int(t)] += 1
            overall[int(t)] += 1

    def top(counter: Counter) -> int:
        return max(counter, key=lambda t: (counter[t], -t))

    default = top(overall) if overall else 0
    return [[top(exact[w]) if w in exact else top(lower[w.lower()]) if w.lower() in lower else default
             for w in words] for words in eval_words]


def most_frequent_tag_results(config, data: TokenTaskData) -> tuple[dict, dict[str, list[list[int]]]]:
    """The study's baseline row for a token task: ({"method", "val", "test", "train_seconds"}, {split: preds}).

    Metrics are exactly the runs' (`tag_metrics` with the same ignore labels, scheme and β), so the baseline
    row compares like with like; write the test predictions with `write_tag_predictions`."""
    import time

    started = time.perf_counter()
    preds = {s: most_frequent_tag_baseline(data.train.words, data.train.tags, getattr(data, s).words)
             for s in ("val", "test")}
    seconds = time.perf_counter() - started
    scheme = data.notes.get("scheme", "iob2")
    result = {"method": "most_frequent_tag",
              **{s: tag_metrics(getattr(data, s).tags, preds[s], data.label_names, config.data.ignore_labels, scheme,
                                fbeta_of(config)) for s in ("val", "test")},
              "train_seconds": round(seconds, 3)}
    return result, preds
