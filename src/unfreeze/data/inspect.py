"""`unfreeze inspect`: look at a data set before spending compute on it.

Label balance (is accuracy meaningful?), duplicates (will test leak?), empty texts, and the token-length
distribution under the chosen tokenizer with a suggested `max_length` (padding to 512 by habit is the largest
waste in the notebooks we replace).

Lengths in characters are Unicode code points after NFC normalisation (a decomposed accent is one character, a
Han character one, an astral CJK extension character one — never UTF-8 bytes or UTF-16 units). For CJK text the
report says so (`script`) and adds the length a BERT-Chinese-style tokenizer will see: it splits every Han
character into its own token, so a Chinese text costs about one token per character (+2 for [CLS]/[SEP]) — far
more than the same content in English, which is what `max_length` must be sized for.
"""
from __future__ import annotations

import unicodedata

import numpy as np

from unfreeze.config.schema import DataConfig
from unfreeze.data import near_duplicates
from unfreeze.data.sequence import clean_frame, read_table
from unfreeze.data.encode import token_lengths
from unfreeze.data.inspect_tokens import (imbalance_hint, length_report, model_loader,
                                         unseen_labels)
from unfreeze.data.script import bert_pretokens, cjk_share, CJK_THRESHOLD


def inspect_config(data: str | None, dataset: str | None, text: str, label: str, percentile: float) -> DataConfig:
    """`unfreeze inspect`'s options as a DataConfig; a bad one (`--percentile 150`, `nan`) is one line (rc 2)."""
    from unfreeze.config.load import _validated
    from unfreeze.errors import UnfreezeError

    if not 0 < percentile <= 100:  # NaN too
        raise UnfreezeError(f"--percentile {percentile}: give a number in (0, 100], e.g. --percentile 95")
    return _validated(DataConfig, {"dataset": dataset, "path": data, "text_column": text, "label_column": label,
                                   "max_length_percentile": percentile}, "inspect")


def inspect_sequence(cfg: DataConfig, model_name: str | None = None, load_model=None) -> dict:
    """The inspect report of a table of texts (`tasks.inspect_data` picks the task's report). With `model_name`,
    token lengths under its tokenizer: `load_model(model_name)` → (backbone, tokenizer), e.g.
    `model.backbone.load_backbone_named` (passed in: data/ sits below model/)."""
    notes: dict = {}
    splits: dict = {}
    if cfg.dataset is not None:
        from unfreeze.assets import load_builtin_frame

        frame = load_builtin_frame(cfg.dataset)
        cfg = cfg.model_copy(update={"text_column": "text", "label_column": "label"})
        source = f"dataset {cfg.dataset}"
    elif cfg.hub is not None:
        from unfreeze.data.hub import hub_frames

        frames = hub_frames(cfg.hub)
        frame, source = frames["train"]
        splits = {name: f for name, (f, _) in frames.items()}
    else:
        source = cfg.path or cfg.train
        frame = read_table(source, cfg.format, cfg.label_column)
        if isinstance(frame, dict):
            splits, frame = frame, frame.get("train", next(iter(frame.values())))
    rows = len(frame)
    clean = clean_frame(frame, cfg.model_copy(update={"bad_rows": "drop"}), str(source), notes)
    counts = clean["label"].value_counts()
    report = {
        "task": "sequence",
        "source": str(source),
        "rows": rows,
        "dropped_bad_rows": rows - len(clean),
        "duplicate_texts": int(clean.duplicated(subset=["text"]).sum()),
        "near_duplicate_texts": near_duplicates.within(clean["text"].tolist()),
        "labels": {str(k): int(v) for k, v in counts.items()},
        "majority_share": float(counts.iloc[0] / counts.sum()),
        "chars": _percentiles(char_lengths(clean["text"])),
    }
    hint = imbalance_hint(report["labels"])
    if hint:
        report["imbalance_hint"] = hint
    if len(splits) > 1:
        quiet = cfg.model_copy(update={"bad_rows": "drop"})
        unseen = unseen_labels({_split_name(name): clean_frame(part, quiet, f"{source}[{name}]", {})["label"].tolist()
                                for name, part in splits.items()})
        if unseen:
            report["unseen_labels"] = unseen
    texts = clean["text"].tolist() + (clean["pair"].tolist() if "pair" in clean else [])
    share = cjk_share(texts)
    report["script"] = {"cjk_share": round(share, 4), "cjk": share >= CJK_THRESHOLD}
    if "pair" in clean:
        report["chars_pair"] = _percentiles(char_lengths(clean["pair"]))
    if share >= CJK_THRESHOLD:
        report["bert_chinese_tokens"] = _percentiles(np.array(
            [len(bert_pretokens(t)) + 2 for t in clean["text"]]))
    if model_name:
        from unfreeze.data.encode import model_max_positions

        backbone, tokenizer = model_loader(load_model)(model_name)
        lengths = token_lengths(tokenizer, clean["text"].tolist(),
                                clean["pair"].tolist() if "pair" in clean else None)
        report.update(length_report(lengths, cfg, model_max_positions(tokenizer, backbone)))
    return report


def _split_name(name: str) -> str:
    return {"validation": "val", "dev": "val", "valid": "val"}.get(name, name)


def char_lengths(texts) -> np.ndarray:
    """Characters per text: code points after NFC (what a reader counts; one per Han character)."""
    return np.array([len(unicodedata.normalize("NFC", str(t))) for t in texts], dtype=np.int64)


def _percentiles(values: np.ndarray) -> dict:
    return {f"p{q}": int(np.percentile(values, q)) for q in (5, 50, 95, 99)} | {"max": int(values.max())}
