"""`unfreeze predict` on a token model: tag every word of a CoNLL or JSONL file, windowing long sentences exactly
as at training time (the saved `max_length` and `stride`), so every input word gets a tag.
"""
from __future__ import annotations

import json

import logging


from pathlib import Path



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
    labels = list(meta["labels"])
    fallback = meta.get("fallback_tag") or ("O" if "O" in labels else labels[0])
    enc = build_windows(word_pieces(tokenizer, [s.words for s in sentences]), None, special_template(tokenizer),
                        int(meta["max_length"]), int(meta.get("stride", 32)), False, False, labels.index(fallback))
    device = next(model.parameters()).device
    logits: list = [None] * len(enc)

    def keep(item, out) -> None:
        for row, i in zip(out.float().cpu().numpy(), item[0]):
            logits[i] = row[:enc.lengths[i]]

    run_inference(model, inference_batches(enc, batch_size, tokenizer.pad_token_id or 0, token_task=True),
                  lambda item: model(input_ids=item[1]["input_ids"].to(device),
                                     attention_mask=item[1]["attention_mask"].to(device)), keep)
    preds = [[labels[t] for t in p] for p in words_from_logits(enc, logits)]
    out_path = Path(output_path)
    if out_path.suffix.lower() in (".jsonl", ".json"):
        text = "".join(json.dumps({"id": s.id, "words": s.words, "pred": p}, ensure_ascii=False) + "\n"
                       for s, p in zip(sentences, preds))
    else:
        text = "\n".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, p)) for s, p in zip(sentences, preds))
    write_text(out_path, text)
    return pd.DataFrame({"id": [s.id for s in sentences], "words": [s.words for s in sentences], "pred": preds})
