"""The run folder: its layout is a contract that studies, reports and `predict` rely on.

```
RUN/
  config.yaml            fully resolved config (defaults filled in) + library / torch versions
  history.csv            one row per evaluation: epoch, step, train_loss, val_<metric>…, lr, seconds
  predictions_val.csv    id, text, label, pred, prob_<class>…   (token tasks: predictions_<split>.jsonl)
  predictions_test.csv
  best/                  best model: safetensors weights, tokenizer, head.safetensors, unfreeze.json
  metrics.json           written LAST: its presence means the run finished
```
Every file is written atomically (temp file + rename), and the whole folder too: a run writes into
`<parent>/.unfinished/<name>/` and renames it to `RUN` when complete, so `--overwrite` keeps the previous run until
the new one is whole, and a study never sees a half-written run folder.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__
from .config import run_config_dict
from .errors import UnfreezeError
from .files import replace_dir, write_dataframe_csv, write_json, write_yaml

DONE_FILE = "metrics.json"
MODEL_META = "unfreeze.json"
HEAD_FILE = "head.safetensors"


def check_run_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an existing non-empty run folder unless `overwrite`; deletes nothing (see `write_run`)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UnfreezeError(f"{out}: run folder exists and is not empty; pass --overwrite or choose another --out")
    return out


def staging_dir(out: Path) -> Path:
    """Where a run's files are written before they replace `out` in one rename. A hidden sibling folder, so the
    study's `runs/*/metrics.json` never matches a half-swapped run."""
    return out.parent / ".unfinished" / out.name


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / DONE_FILE).is_file()


def versions() -> dict:
    import transformers

    return {"unfreeze": __version__, "torch": str(torch.__version__), "transformers": str(transformers.__version__),
            "python": sys.version.split()[0], "platform": platform.platform()}


def reset_peak_memory() -> None:
    """Start a fresh peak-memory window for this run, so that runs of one study process (local executor) do not
    inherit the peak of the runs before them. Linux: writing 5 to clear_refs resets VmHWM; CUDA: reset stats."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # not Linux (or not allowed): peak_rss_mb falls back to the process lifetime peak
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_rss_mb() -> float:
    """Peak resident memory since `reset_peak_memory` (Linux VmHWM), else the process lifetime peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource

        scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 1)
    except ImportError:  # Windows
        return float("nan")


def peak_gpu_mb() -> float | None:
    """Peak GPU memory allocated by torch since `reset_peak_memory`; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)


def write_run(out: Path, run, model, results: dict, logits: dict[str, list[np.ndarray]],
              run_info: dict | None = None) -> None:
    """Write every file into a staging folder, then swap it in place of `out`. With `--overwrite`, the previous
    run stays whole until the new one is complete: bad input, a crash or a NaN loss never destroys it."""
    stage = staging_dir(out)
    if stage.exists():
        shutil.rmtree(stage)  # left by a run that died while writing
    stage.mkdir(parents=True)
    write_yaml(stage / "config.yaml", {**run_config_dict(run.config), "versions": versions()})
    if run_info is not None:
        write_json(stage / "run.json", run_info)
    write_dataframe_csv(stage / "history.csv", pd.DataFrame(results["history"]))
    for split, split_logits in logits.items():
        write_predictions(stage, run, split, split_logits)
    if run.config.train.save_model:
        save_model(stage / "best", run, model)
    write_json(stage / DONE_FILE, results)
    replace_dir(stage, out)
    try:
        stage.parent.rmdir()
    except OSError:
        pass  # another run is staging beside it


def write_predictions(out: Path, run, split: str, logits: list[np.ndarray]) -> None:
    if run.config.task == "token":
        from .tokens import write_token_predictions

        write_token_predictions(out / f"predictions_{split}.jsonl", run, split, logits)
        return
    source = getattr(run.data, split)
    frame = prediction_frame(source.ids, np.stack(logits), run.label_names)
    frame.insert(1, "text", source.texts)
    if source.pairs is not None:
        frame.insert(2, "text_pair", source.pairs)
    frame.insert(frame.columns.get_loc("pred"), "label", [run.label_names[i] for i in source.labels])
    write_dataframe_csv(out / f"predictions_{split}.csv", frame)


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


# ---------------------------------------------------------------------------------------------------------
# The saved model


def save_model(target: Path, run, model) -> None:
    """Save backbone (safetensors), tokenizer, head and metadata. Where the head is the standard one (pooler
    pooling, no dense stack) on an architecture whose classifier is one linear layer, the folder is also a plain
    `AutoModelForSequenceClassification` checkpoint. A LoRA run also keeps its unmerged adapter in `adapter/`,
    loadable by `unfreeze predict` on top of the pretrained backbone."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    backbone = model.backbone
    meta = model_meta(run)
    if hasattr(backbone, "merge_and_unload"):  # peft LoRA: keep the small unmerged adapter, save a merged model
        backbone.save_pretrained(tmp / "adapter")  # adapter_config.json + adapter_model.safetensors (MBs, not GBs)
        _save_head_and_meta(tmp / "adapter", run, model, {**meta, "adapter_of": run.config.model.name})
        backbone = backbone.merge_and_unload()
    if not _save_as_standard_classifier(tmp, run, model, backbone):
        backbone.save_pretrained(tmp, safe_serialization=True)
    _save_head_and_meta(tmp, run, model, meta)
    replace_dir(tmp, target)


def _save_head_and_meta(folder: Path, run, model, meta: dict) -> None:
    from safetensors.torch import save_file

    run.tokenizer.save_pretrained(folder)
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(folder / HEAD_FILE))
    (folder / MODEL_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def model_meta(run) -> dict:
    """What `predict` needs besides the weights: labels, head config, tokenisation settings."""
    return {
        "task": run.config.task,
        "labels": run.label_names,
        "model": run.config.model.model_dump(mode="json"),
        "max_length": run.max_length,
        "text_column": run.config.data.text_column,
        "text_pair_column": run.config.data.text_pair_column,
        "id_column": run.config.data.id_column,
        "label_all_subwords": run.config.data.label_all_subwords,
        "stride": run.config.data.stride,
        "positive_label": run.config.data.positive_label,
        "source_model": run.config.model.name,
        "fallback_tag": run.data.notes.get("fallback_tag"),
        "tokens_column": run.config.data.tokens_column,
        "tag_scheme": run.data.notes.get("scheme"),
    }


def _save_as_standard_classifier(tmp: Path, run, model, backbone) -> bool:
    cfg = run.config.model
    if run.config.task != "sequence" or cfg.pooling != "pooler" or cfg.hidden:
        return False
    from transformers import AutoModelForSequenceClassification

    config = backbone.config.__class__.from_dict(backbone.config.to_dict())
    config.num_labels = len(run.label_names)
    config.id2label = dict(enumerate(run.label_names))
    config.label2id = {n: i for i, n in enumerate(run.label_names)}
    try:
        clf = AutoModelForSequenceClassification.from_config(config)
    except ValueError:
        return False
    if not isinstance(getattr(clf, "classifier", None), torch.nn.Linear):
        return False
    getattr(clf, clf.base_model_prefix).load_state_dict(backbone.state_dict())
    linear = model.head.net[-1]
    with torch.no_grad():
        clf.classifier.weight.copy_(linear.weight)
        clf.classifier.bias.copy_(linear.bias)
    clf.save_pretrained(tmp, safe_serialization=True)
    return True


def load_model(best_dir: str | Path):
    """(EncoderClassifier in eval mode, tokenizer, metadata) from a `best/` folder; nothing downloaded."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from .backbone import discover_layout
    from .config import ModelConfig
    from .heads import EncoderClassifier

    best = Path(best_dir)
    if not (best / MODEL_META).is_file():
        raise UnfreezeError(f"{best}: not a saved unfreeze model (no {MODEL_META}); pass a run's best/ folder")
    meta = json.loads((best / MODEL_META).read_text(encoding="utf-8"))
    if meta.get("adapter_of"):
        backbone = _load_adapter(best, meta)
    else:
        backbone = AutoModel.from_pretrained(best, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(best, local_files_only=True)
    model = EncoderClassifier(backbone, discover_layout(backbone), len(meta["labels"]),
                              ModelConfig(**meta["model"]), meta["task"])
    model.head.load_state_dict(load_file(str(best / HEAD_FILE)))
    model.eval()
    return model, tokenizer, meta


def _load_adapter(adapter_dir: Path, meta: dict):
    """A LoRA adapter folder (`best/adapter`): the pretrained backbone it was trained on (loaded as the run
    loaded it: alias, folder or hub id, offline rules included) + the adapter, merged into plain weights."""
    from peft import PeftModel

    from .backbone import load_backbone
    from .config import ModelConfig

    base, _ = load_backbone(ModelConfig(**meta["model"]))
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
