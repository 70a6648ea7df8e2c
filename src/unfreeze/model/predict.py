"""Predict with a saved model (a run's `best/`, a run folder, or every fold model of a study arm).

The same tokenisation (`max_length` saved with the model), eval mode and `inference_mode` as at test time, so
predicting a run's test texts reproduces its `predictions_test.csv`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.model.inference import encoder_inputs, inference_batches, run_inference
from unfreeze.data.sequence import read_table
from unfreeze.data.encode import encode_texts, uses_token_types
from unfreeze.errors import DataError, UnfreezeError
from unfreeze.io import read_json, write_dataframe_csv
from unfreeze.io.paths import overrides_hash
from unfreeze.model.checkpoint import load_model


def resolve_model_dirs(target: str | Path, arm: str | None = None) -> list[Path]:
    """`best/` folders behind a path: itself, RUN/best, or the fold/seed runs of one study arm."""
    target = _readable(Path(target))
    if (target / "unfreeze.json").is_file():
        return [target]
    if (target / "best" / "unfreeze.json").is_file():
        return [target / "best"]
    if (target / "metrics.json").is_file() and not (target / "best").exists():
        raise UnfreezeError(f"{target}: this run saved no model (train.save_model: false); train it again with "
                            f"a model, e.g. `unfreeze train {target / 'config.yaml'} --set train.save_model=true "
                            "--out NEW_FOLDER`")
    if (target / "study.json").is_file():
        recover_all_quietly(target / "runs")
        if arm is None:
            raise UnfreezeError(f"{target} is a study folder: pass --arm NAME (arms: {_arms(target)})")
        dirs = _arm_model_dirs(target, arm)
        if not dirs:
            raise UnfreezeError(f"{target}: no saved models for arm {arm!r} (arms: {_arms(target)}); "
                                "runs save models unless train.save_model is false")
        return sorted(dirs)
    raise UnfreezeError(f"{target}: not a saved model, a run folder or a study folder")


def _readable(target: Path) -> Path:
    """Finish (or read around) a run-folder swap a killed process left half done (`io.swap.readable`)."""
    from unfreeze.io.swap import readable

    if target.name == "best":
        return readable(target.parent) / "best"
    return readable(target)


def recover_all_quietly(runs: Path) -> None:
    from unfreeze.io.swap import recover_all

    try:
        recover_all(runs)
    except (OSError, UnfreezeError):
        pass  # a read-only study: the runs left mid-swap are skipped, the others are read


def _arm_model_dirs(study_dir: Path, arm: str) -> list[Path]:
    """The saved models of one arm's runs. An arm name that covers runs of different configs (a study written before
    arm names were unique) is refused, naming the `NAME #<hash>` names that pick one config (as the report shows)."""
    configs: dict[str, list[Path]] = {}
    for path in (study_dir / "runs").glob("*/run.json"):
        info = read_json(path)
        key = overrides_hash(info.get("overrides", {}))
        if arm in (info["arm"], f"{info['arm']} #{key}") and (path.parent / "best" / "unfreeze.json").is_file():
            configs.setdefault(f"{info['arm']} #{key}", []).append(path.parent / "best")
    if len(configs) > 1:
        raise UnfreezeError(f"{study_dir}: arm {arm!r} covers {len(configs)} different configs; pass one of "
                            f"--arm {' / '.join(repr(name) for name in sorted(configs))}")
    return [d for dirs in configs.values() for d in dirs]


def _arms(study_dir: Path) -> list[str]:
    return sorted({read_json(p)["arm"] for p in (study_dir / "runs").glob("*/run.json")})


def predict_logits(model, tokenizer, meta: dict, texts: list[str], pairs: list[str] | None,
                   batch_size: int = 64) -> np.ndarray:
    enc = encode_texts(tokenizer, texts, pairs, np.zeros(len(texts), dtype=int), meta["max_length"],
                       uses_token_types(model.backbone))
    out = np.zeros((len(texts), len(meta["labels"])), dtype=np.float32)
    device = next(model.parameters()).device

    def keep(item, logits) -> None:
        out[item[0]] = logits.float().cpu().numpy()

    run_inference(model, inference_batches(enc, batch_size, tokenizer.pad_token_id or 0),
                  lambda item: model(**encoder_inputs(item[1], device)), keep)
    return out


def predict_file(target: str | Path, input_path: str | Path, output_path: str | Path, arm: str | None = None,
                 text_column: str | None = None, submission: bool = False) -> pd.DataFrame:
    """Write `id, pred, prob_<class>…` (or `id, label` with `submission`) for every row of `input_path`."""
    dirs = resolve_model_dirs(target, arm)
    first_model, first_tokenizer, first_meta = load_model(dirs[0])
    if first_meta["task"] == "token":
        from unfreeze.model.predict_tokens import predict_token_file

        if len(dirs) > 1:
            raise UnfreezeError(f"{target}: arm {arm!r} has {len(dirs)} token models; predict with one of them "
                                f"(e.g. {dirs[0]}) — tags are not averaged across models")
        return predict_token_file(first_model, first_tokenizer, first_meta, input_path, output_path)
    frame = read_table(input_path)
    if isinstance(frame, dict):
        raise DataError(f"{input_path}: a DatasetDict folder; point at one split's file")
    logits, labels = [], None
    for model_dir in dirs:
        model, tokenizer, meta = (first_model, first_tokenizer, first_meta) if model_dir == dirs[0] else \
            load_model(model_dir)
        texts, pairs = _texts(frame, meta, text_column, input_path)
        logits.append(predict_logits(model, tokenizer, meta, texts, pairs))
        labels = meta["labels"]
        id_column = meta.get("id_column")
    ids = frame[id_column].astype(str).tolist() if id_column and id_column in frame else (
        frame["id"].astype(str).tolist() if "id" in frame else [str(i) for i in range(len(frame))])
    if len(logits) == 1:  # the run's own softmax of the same logits: reproduces predictions_test.csv
        out = prediction_frame(ids, logits[0], labels)
    else:  # an arm's fold/seed models: average probabilities (not logits), as the CV ensemble does
        mean = np.mean([softmax(x.astype(np.float64)) for x in logits], axis=0)
        out = prediction_frame(ids, np.log(np.clip(mean, 1e-300, None)), labels)
    if submission:
        out = out[["id", "pred"]].rename(columns={"pred": "label"})
    write_dataframe_csv(output_path, out)
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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)



def prediction_frame(ids, logits: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    probs = softmax(logits.astype(np.float64))
    frame = pd.DataFrame({"id": list(ids), "pred": [label_names[i] for i in probs.argmax(-1)]})
    for j, name in enumerate(label_names):
        frame[f"prob_{name}"] = probs[:, j]
    return frame
