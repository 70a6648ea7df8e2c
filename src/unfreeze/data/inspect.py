"""`unfreeze inspect`: look at a data set before spending compute on it.

Label balance (is accuracy meaningful?), duplicates (will test leak?), empty texts, and the token-length
distribution under the chosen tokenizer with a suggested `max_length` (padding to 512 by habit is the largest
waste in the notebooks we replace).
"""
from __future__ import annotations

import numpy as np

from unfreeze.config.schema import DataConfig
from unfreeze.data.sequence import clean_frame, read_table
from unfreeze.data.encode import choose_max_length, token_lengths


def inspect_data(cfg: DataConfig, model_name: str | None = None) -> dict:
    notes: dict = {}
    if cfg.dataset is not None:
        from unfreeze.assets import load_builtin_frame

        frame = load_builtin_frame(cfg.dataset)
        cfg = cfg.model_copy(update={"text_column": "text", "label_column": "label"})
        source = f"dataset {cfg.dataset}"
    else:
        source = cfg.path or cfg.train
        frame = read_table(source, cfg.format)
        if isinstance(frame, dict):
            frame = frame.get("train", next(iter(frame.values())))
    rows = len(frame)
    clean = clean_frame(frame, cfg.model_copy(update={"bad_rows": "drop"}), str(source), notes)
    counts = clean["label"].value_counts()
    report = {
        "source": str(source),
        "rows": rows,
        "dropped_bad_rows": rows - len(clean),
        "duplicate_texts": int(clean.duplicated(subset=["text"]).sum()),
        "labels": {str(k): int(v) for k, v in counts.items()},
        "majority_share": float(counts.iloc[0] / counts.sum()),
        "chars": _percentiles(clean["text"].str.len().to_numpy()),
    }
    if model_name:
        from unfreeze.model.backbone import load_backbone
        from unfreeze.config.schema import ModelConfig
        from unfreeze.data.encode import model_max_positions

        backbone, tokenizer = load_backbone(ModelConfig(name=model_name))
        lengths = token_lengths(tokenizer, clean["text"].tolist(),
                                clean["pair"].tolist() if "pair" in clean else None)
        suggested, stats = choose_max_length(lengths, cfg.model_copy(update={"max_length": "auto"}),
                                             model_max_positions(tokenizer, backbone))
        report["tokens"] = stats
        report["suggested_max_length"] = suggested
        report["padding_waste_at_512"] = float(1 - lengths.clip(max=512).mean() / 512)
    return report


def _percentiles(values: np.ndarray) -> dict:
    return {f"p{q}": int(np.percentile(values, q)) for q in (5, 50, 95, 99)} | {"max": int(values.max())}
