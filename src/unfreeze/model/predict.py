"""Prediction with saved models, the engine behind `UnfreezeModel` (model/unfreeze_model.py) and
`unfreeze predict`: a member is one loaded (network, tokenizer, meta) triple; a study arm is several.

The same tokenisation (`max_length` saved with the model), eval mode and `inference_mode` as at test time, so
predicting a run's test texts reproduces its `predictions_test.csv`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.data.encode import encode_texts, uses_token_types
from unfreeze.data.sequence import read_table
from unfreeze.errors import DataError, UnfreezeError
from unfreeze.io import write_dataframe_csv
from unfreeze.io.paths import check_out_file
from unfreeze.model.checkpoint import load_model, resolve_model_dirs
from unfreeze.model.inference import encoder_inputs, inference_batches, run_inference
from unfreeze.tasks import get_task
from unfreeze.tasks.sequence import prediction_frame, softmax

__all__ = ["load_members", "member_logits", "predict_file", "predict_logits", "predict_members",
           "prediction_frame", "resolve_model_dirs", "softmax"]


def load_members(target: str | Path, arm: str | None = None) -> tuple[list[Path], list[tuple]]:
    """The `best/` folders behind `target` and their loaded (network, tokenizer, meta) triples. Token models
    are not averaged: an arm of several token models is refused."""
    dirs = resolve_model_dirs(target, arm)
    first = load_model(dirs[0])
    if not get_task(first[2]["task"]).averages_members and len(dirs) > 1:
        raise UnfreezeError(f"{target}: arm {arm!r} has {len(dirs)} token models; predict with one of them "
                            f"(e.g. {dirs[0]}) — tags are not averaged across models")
    return dirs, [first, *(load_model(d) for d in dirs[1:])]


def predict_file(target: str | Path, input_path: str | Path, output_path: str | Path, arm: str | None = None,
                 text_column: str | None = None, submission: bool = False) -> pd.DataFrame:
    """`unfreeze predict`: the model(s) behind `target` (see `resolve_model_dirs`) on `input_path`; `output_path`
    checked first (`io.paths.check_out_file`: never the input, a folder, or a file inside a run or study)."""
    check_out_file(output_path, "-o", keep=(input_path,))  # before the models load
    return predict_members(load_members(target, arm)[1], input_path, output_path, text_column, submission)


def predict_members(members: list[tuple], input_path: str | Path, output_path: str | Path,
                    text_column: str | None = None, submission: bool = False) -> pd.DataFrame:
    """Write `id, pred, prob_<class>…` (or `id, label` with `submission`) for every row of `input_path`; a
    token model tags a CoNLL / JSONL file instead (model/predict_tokens.py). `output_path`: as `predict_file`."""
    output_path = check_out_file(output_path, "-o", keep=(input_path,))
    model, tokenizer, meta = members[0]
    if get_task(meta["task"]).per_token:
        from unfreeze.model.predict_tokens import predict_token_file

        return predict_token_file(model, tokenizer, meta, input_path, output_path)
    frame = read_table(input_path)
    if isinstance(frame, dict):
        raise DataError(f"{input_path}: a DatasetDict folder; point at one split's file")
    texts, pairs = _texts(frame, meta, text_column, input_path)
    id_column = meta.get("id_column")
    ids = frame[id_column].astype(str).tolist() if id_column and id_column in frame else (
        frame["id"].astype(str).tolist() if "id" in frame else [str(i) for i in range(len(frame))])
    out = prediction_frame(ids, member_logits(members, texts, pairs), meta["labels"])
    if submission:
        out = out[["id", "pred"]].rename(columns={"pred": "label"})
    write_dataframe_csv(output_path, out)
    return out


def member_logits(members: list[tuple], texts: list[str], pairs: list[str] | None = None,
                  batch_size: int = 64) -> np.ndarray:
    """(texts, labels) logits: one model's own (its softmax reproduces predictions_test.csv), or for an arm's
    fold/seed models the log of their mean probabilities (probabilities, not logits, are averaged, as the CV
    ensemble does)."""
    logits = [predict_logits(*member, texts, pairs, batch_size) for member in members]
    if len(logits) == 1:
        return logits[0]
    mean = np.mean([softmax(x.astype(np.float64)) for x in logits], axis=0)
    return np.log(np.clip(mean, 1e-300, None))


def predict_logits(model, tokenizer, meta: dict, texts: list[str], pairs: list[str] | None,
                   batch_size: int = 64) -> np.ndarray:
    """(texts, labels) logits of one network, tokenised as at training time (the saved max_length)."""
    enc = encode_texts(tokenizer, texts, pairs, np.zeros(len(texts), dtype=int), meta["max_length"],
                       uses_token_types(model.backbone))
    out = np.zeros((len(texts), len(meta["labels"])), dtype=np.float32)
    device = next(model.parameters()).device

    def keep(item, logits) -> None:
        out[item[0]] = logits.float().cpu().numpy()

    run_inference(model, inference_batches(enc, batch_size, tokenizer.pad_token_id or 0),
                  lambda item: model(**encoder_inputs(item[1], device)), keep)
    return out


def _texts(frame: pd.DataFrame, meta: dict, text_column: str | None, source) -> tuple[list[str], list[str] | None]:
    column = text_column or (meta["text_column"] if meta["text_column"] in frame else "text")
    if column not in frame:
        raise DataError(f"{source}: no text column {column!r}; columns are {list(frame.columns)} (use --text-column)")
    pair_col = meta.get("text_pair_column")
    if pair_col:
        found = pair_col if pair_col in frame else ("text_pair" if "text_pair" in frame else None)
        if found is None:
            raise DataError(f"{source}: the model was trained on text pairs but the file has no second-text column "
                            f"{pair_col!r} (or text_pair); columns are {list(frame.columns)}")
        pair_col = found
    texts = frame[column].fillna("").astype(str).tolist()
    pairs = frame[pair_col].fillna("").astype(str).tolist() if pair_col else None
    return texts, pairs


