"""Tagging with a token model, windowing long sentences exactly as at training time (the saved `max_length` and
`stride`), so every input word gets a tag: `predict_token_file` (`unfreeze predict` on a CoNLL or JSONL file),
`tag_words` / `word_probabilities` (lists of words: `UnfreezeModel.predict` / `predict_proba`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from unfreeze.model.inference import inference_batches, run_inference
from unfreeze.errors import DataError
from unfreeze.io import write_text
from unfreeze.data.token_files import read_conll, read_token_jsonl, token_format
from unfreeze.data.windows import build_windows, special_template, word_pieces, words_from_logits

log = logging.getLogger(__name__)


def predict_token_file(model, tokenizer, meta: dict, input_path: str | Path, output_path: str | Path,
                       batch_size: int = 64):
    """Tag every word of a CoNLL file (tokens in column 0; a tag column, if any, is ignored) or a JSONL file
    (`tokens` list per line). Writes `word<TAB>pred` lines with a blank line between sentences, or — when the
    output ends in .jsonl/.json — {"id", "words", "pred"} per sentence. Long sentences are windowed exactly as
    at training time (the saved `max_length` and `stride`), never truncated, so every input word gets a tag.
    Returns a frame with one row per sentence (id, words, pred)."""
    import pandas as pd

    input_path = Path(input_path)
    fmt = token_format(input_path)
    if fmt == "disk":
        raise DataError(f"{input_path}: give a CoNLL or JSONL file to tag")
    sentences = (read_token_jsonl(input_path, meta.get("tokens_column", "tokens"), None, "id", require_tags=False)
                 if fmt == "jsonl" else read_conll(input_path, -1, require_tags=False))
    sentences = [s for s in sentences if s.words]
    if not sentences:
        raise DataError(f"{input_path}: no sentences to tag")
    preds = tag_words(model, tokenizer, meta, [s.words for s in sentences], batch_size)
    out_path = Path(output_path)
    if out_path.suffix.lower() in (".jsonl", ".json"):
        text = "".join(json.dumps({"id": s.id, "words": s.words, "pred": p}, ensure_ascii=False) + "\n"
                       for s, p in zip(sentences, preds))
    else:
        text = "\n".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, p)) for s, p in zip(sentences, preds))
    write_text(out_path, text)
    return pd.DataFrame({"id": [s.id for s in sentences], "words": [s.words for s in sentences], "pred": preds})


def window_logits(model, tokenizer, meta: dict, words: list[list[str]], batch_size: int = 64):
    """(windows, logits per window): every sentence windowed exactly as at training time (the saved
    `max_length` and `stride`), each window's subword logits trimmed to its length."""
    labels = list(meta["labels"])
    fallback = meta.get("fallback_tag") or ("O" if "O" in labels else labels[0])
    enc = build_windows(word_pieces(tokenizer, words), None, special_template(tokenizer),
                        int(meta["max_length"]), int(meta.get("stride", 32)), False, False, labels.index(fallback))
    device = next(model.parameters()).device
    logits: list = [None] * len(enc)

    def keep(item, out) -> None:
        for row, i in zip(out.float().cpu().numpy(), item[0]):
            logits[i] = row[:enc.lengths[i]]

    run_inference(model, inference_batches(enc, batch_size, tokenizer.pad_token_id or 0, token_task=True),
                  lambda item: model(input_ids=item[1]["input_ids"].to(device),
                                     attention_mask=item[1]["attention_mask"].to(device)), keep)
    return enc, logits


def tag_words(model, tokenizer, meta: dict, words: list[list[str]], batch_size: int = 64) -> list[list[str]]:
    """One tag per word of every sentence (the word's first subword in its owner window; the fallback tag
    where a word has no position)."""
    enc, logits = window_logits(model, tokenizer, meta, words, batch_size)
    labels = list(meta["labels"])
    return [[labels[t] for t in p] for p in words_from_logits(enc, logits)]


def word_probabilities(model, tokenizer, meta: dict, words: list[list[str]],
                       batch_size: int = 64) -> list[np.ndarray]:
    """Per sentence a (words, labels) array of probabilities, read where `tag_words` reads the tag (so its
    argmax is the tag); a word with no position gets probability 1 for the fallback tag."""
    enc, logits = window_logits(model, tokenizer, meta, words, batch_size)
    out = []
    for positions in enc.owners:
        probs = np.zeros((len(positions), len(meta["labels"])), dtype=np.float64)
        probs[:, enc.fallback] = 1.0
        for w in np.flatnonzero(positions[:, 0] >= 0):
            row = np.asarray(logits[positions[w, 0]][positions[w, 1]], dtype=np.float64)
            e = np.exp(row - row.max())
            probs[w] = e / e.sum()
        out.append(probs)
    return out
