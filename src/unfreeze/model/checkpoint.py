"""The saved model (`best/`): backbone weights (safetensors), tokenizer, `head.safetensors` and `unfreeze.json`
(labels, head config, tokenisation settings) — written by a run, loaded by `predict` with nothing downloaded.
"""
from __future__ import annotations

import json


import shutil


from pathlib import Path


import torch


from unfreeze.errors import UnfreezeError

from unfreeze.io import replace_dir


MODEL_META = "unfreeze.json"


HEAD_FILE = "head.safetensors"


def save_model(target: Path, run, model) -> None:
    """Save backbone (safetensors), tokenizer, head and metadata. Where the head is one transformers expresses
    (see `_save_as_standard_classifier`) the folder is also a plain `AutoModelForSequenceClassification` /
    `AutoModelForTokenClassification` checkpoint; `config.json` always carries the run's id2label / label2id. A LoRA run also keeps its unmerged adapter in `adapter/`,
    loadable by `unfreeze predict` on top of the pretrained backbone."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    backbone = model.backbone
    meta = model_meta(run)
    if hasattr(backbone, "merge_and_unload"):  # peft LoRA: keep the small unmerged adapter, save a merged model
        backbone.save_pretrained(tmp / "adapter", safe_serialization=True)  # adapter_config.json + adapter_model.safetensors (MBs, not GBs)
        _save_head_and_meta(tmp / "adapter", run, model, {**meta, "adapter_of": run.config.model.name})
        backbone = backbone.merge_and_unload()
    if not _save_as_standard_classifier(tmp, run, model, backbone):
        backbone.save_pretrained(tmp, safe_serialization=True)
    _write_label_maps(tmp, run.label_names)
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
        "stop_at": getattr(run.model, "stop_at", None),  # freeze `layer: k`: the head reads layer k's input
    }


def _save_as_standard_classifier(tmp: Path, run, model, backbone) -> bool:
    """Write `best/` as a plain transformers checkpoint when our head computes exactly what the transformers
    class does: a sequence task with `pooling: pooler` (the pooler, dropout, one linear layer =
    `AutoModelForSequenceClassification` of BERT-like families), or a token task (dropout + one linear layer
    per token state = `AutoModelForTokenClassification`), both without `hidden` layers. Families whose
    transformers classifier is not a single linear layer (RoBERTa/ELECTRA sequence heads: dense + tanh + linear)
    keep the backbone-only folder."""
    cfg = run.config.model
    if cfg.hidden or not standard_class_name(run.config.task, cfg.pooling):
        return False
    if getattr(model, "stop_at", None) is not None:  # a stock classifier would run every layer
        return False
    import transformers

    cls = getattr(transformers, standard_class_name(run.config.task, cfg.pooling))
    config = backbone.config.__class__.from_dict(backbone.config.to_dict())
    config.num_labels = len(run.label_names)
    config.id2label = dict(enumerate(run.label_names))
    config.label2id = {n: i for i, n in enumerate(run.label_names)}
    try:
        clf = cls.from_config(config)
    except ValueError:
        return False
    if not isinstance(getattr(clf, "classifier", None), torch.nn.Linear):
        return False
    base = getattr(clf, clf.base_model_prefix)
    state = backbone.state_dict()
    unused = set(state) - set(base.state_dict())
    if any(not key.startswith("pooler.") for key in unused):
        return False  # the class drops more than the pooler a token head never reads: keep the backbone folder
    base.load_state_dict({k: v for k, v in state.items() if k not in unused})
    linear = model.head.net[-1]
    with torch.no_grad():
        clf.classifier.weight.copy_(linear.weight)
        clf.classifier.bias.copy_(linear.bias)
    clf.save_pretrained(tmp, safe_serialization=True)
    return True


def standard_class_name(task: str, pooling: str) -> str | None:
    """The transformers Auto class that can express our head without hidden layers, if any."""
    if task == "token":
        return "AutoModelForTokenClassification"
    return "AutoModelForSequenceClassification" if pooling == "pooler" else None


def _write_label_maps(folder: Path, labels: list[str]) -> None:
    """Put id2label / label2id into `config.json` whatever was saved, so any reader of the folder (transformers,
    ONNX tooling, a model card) sees the run's label names rather than LABEL_0…"""
    path = folder / "config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_model(best_dir: str | Path):
    """(EncoderClassifier in eval mode, tokenizer, metadata) from a `best/` folder; nothing downloaded."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from unfreeze.model.backbone import discover_layout
    from unfreeze.model.bilstm import is_bilstm_folder, load_bilstm
    from unfreeze.config.schema import ModelConfig
    from unfreeze.model.heads import EncoderClassifier

    best = Path(best_dir)
    if not (best / MODEL_META).is_file():
        raise UnfreezeError(f"{best}: not a saved unfreeze model (no {MODEL_META}); pass a run's best/ folder")
    try:
        meta = json.loads((best / MODEL_META).read_text(encoding="utf-8"))
        for key in ("labels", "model", "task"):
            meta[key]  # noqa: B018 — a KeyError names the missing key
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UnfreezeError(f"{best / MODEL_META}: malformed ({type(exc).__name__}: {exc}); it is written by a run — "
                            "re-run it or restore the file") from None
    weights = [best / "model.safetensors", best / "adapter_model.safetensors"]
    if not meta.get("adapter_of") and not any(w.is_file() for w in weights) and not list(best.glob("*.safetensors")):
        raise UnfreezeError(f"{best}: no model.safetensors (the weights); the folder is incomplete — re-run the run "
                            "or point at another best/ folder")
    if meta.get("adapter_of"):
        backbone = _load_adapter(best, meta)
    elif is_bilstm_folder(best):  # AutoModel does not know the bilstm model type
        backbone = load_bilstm(best)
    else:
        backbone = AutoModel.from_pretrained(best, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(best, local_files_only=True)
    model = EncoderClassifier(backbone, discover_layout(backbone), len(meta["labels"]),
                              ModelConfig(**meta["model"]), meta["task"])
    model.stop_at = meta.get("stop_at")  # freeze `layer: k`: stop where the run stopped
    model.head.load_state_dict(load_file(str(best / HEAD_FILE)))
    model.eval()
    return model, tokenizer, meta


def _load_adapter(adapter_dir: Path, meta: dict):
    """A LoRA adapter folder (`best/adapter`): the pretrained backbone it was trained on (loaded as the run
    loaded it: alias, folder or hub id, offline rules included) + the adapter, merged into plain weights."""
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        pickled = " (it has only adapter_model.bin, a pickle that can run code when loaded)" if (
            adapter_dir / "adapter_model.bin").is_file() else ""
        raise UnfreezeError(f"{adapter_dir}: no adapter_model.safetensors{pickled}; unfreeze loads safetensors only: "
                            "convert it with safetensors or retrain the run")
    from peft import PeftModel

    from unfreeze.model.backbone import load_backbone
    from unfreeze.config.schema import ModelConfig

    base, _ = load_backbone(ModelConfig(**meta["model"]))
    return PeftModel.from_pretrained(base, adapter_dir, use_safetensors=True).merge_and_unload()
