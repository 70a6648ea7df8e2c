"""The saved model folder (`best/`): what is written, how it is read back, and how a path leads to it.

```
best/
  README.md              model card: task, labels, base model, data, metrics, how to load (model/card.py)
  unfreeze.json          labels, head config, tokenisation settings: what `predict` needs besides weights
  head.safetensors       our head (ClassificationHead)
  tokenizer files
  config.json + model.safetensors   a head transformers computes exactly (token heads, `pooling: pooler`;
                         see `_save_as_standard_classifier`): a plain AutoModelFor…Classification checkpoint
  — or, for every other head (mean / cls pooling, hidden layers, `layer: k`, BiLSTM) —
  encoder/               the encoder alone (config.json + model.safetensors): `AutoModel.from_pretrained(best,
                         subfolder="encoder")`
  config.json            no transformers class: its `model_type` names the head and says to load with unfreeze,
                         so `AutoModelFor…Classification.from_pretrained(best)` raises instead of loading a
                         randomly initialised classifier that predicts at chance
  adapter/               LoRA runs only: the unmerged adapter + head + unfreeze.json, loadable on the pretrained base
```
Folders written before the `encoder/` sub-folder (the backbone's config.json + model.safetensors at the top) still
load (`load_model` looks for `encoder/` first).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from unfreeze.errors import UnfreezeError
from unfreeze.io import read_json, replace_dir
from unfreeze.model.card import write_card
from unfreeze.tasks import get_task

MODEL_META = "unfreeze.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"


def save_model(target: Path, config, run_data, model, tokenizer, results: dict | None = None) -> None:
    """Save a run's model (see the module docstring for the layout): `config` (the RunConfig), `run_data` (the
    run's data part: `label_names`, `max_length`, `data.notes`); `results` (the run's metrics) go into the card."""
    meta = model_meta(config, run_data, model)
    if results is not None:
        meta["card"] = card_facts(config, results)
    save_folder(target, model, tokenizer, meta)


def save_folder(target: Path, model, tokenizer, meta: dict) -> None:
    """Write `model` (an EncoderClassifier), its tokenizer and `meta` to `target`, atomically (a temp folder
    renamed into place). A LoRA backbone also keeps its unmerged adapter in `adapter/`, loadable by
    `unfreeze predict` on top of the pretrained backbone."""
    import os
    import secrets

    # staged in a name this process owns (a user's `<target>.tmp` is never touched)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir(parents=True)
    backbone = model.backbone
    if hasattr(backbone, "merge_and_unload"):  # peft LoRA: keep the small unmerged adapter, save a merged model
        backbone.save_pretrained(tmp / "adapter", safe_serialization=True)  # adapter_config.json + adapter_model.safetensors (MBs, not GBs)
        _save_head_and_meta(tmp / "adapter", model, tokenizer, {**meta, "adapter_of": meta["model"]["name"]})
        backbone = backbone.merge_and_unload()
    standard = _save_as_standard_classifier(tmp, model, meta, backbone)
    if standard:
        _write_label_maps(tmp, meta["labels"])
    else:
        backbone.save_pretrained(tmp / ENCODER_DIR, safe_serialization=True)
        _write_refusing_config(tmp, model, meta)
    _save_head_and_meta(tmp, model, tokenizer, meta)
    write_card(tmp / "README.md", meta, head_description(meta, getattr(model, "stop_at", None)), standard)
    replace_dir(tmp, target)


def _save_head_and_meta(folder: Path, model, tokenizer, meta: dict) -> None:
    from safetensors.torch import save_file

    tokenizer.save_pretrained(folder)
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(folder / HEAD_FILE))
    (folder / MODEL_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def model_meta(config, run_data, model) -> dict:
    """What `predict` needs besides the weights: labels, head config, tokenisation settings."""
    return {
        "task": config.task,
        "labels": run_data.label_names,
        "model": config.model.model_dump(mode="json"),
        "max_length": run_data.max_length,
        "text_column": config.data.text_column,
        "text_pair_column": config.data.text_pair_column,
        "id_column": config.data.id_column,
        "label_all_subwords": config.data.label_all_subwords,
        "stride": config.data.stride,
        "positive_label": config.data.positive_label,
        "source_model": config.model.name,
        "fallback_tag": run_data.data.notes.get("fallback_tag"),
        "tokens_column": config.data.tokens_column,
        "tag_scheme": run_data.data.notes.get("scheme"),
        "stop_at": getattr(model, "stop_at", None),  # freeze `layer: k`: the head reads layer k's input
    }


def card_facts(config, results: dict) -> dict:
    """What the model card says about the data and the scores (kept in unfreeze.json, so a re-saved model keeps
    its card): the data source, split sizes, the selection metric and the test set's scalar metrics."""
    data = config.data
    test = {k: v for k, v in results.get("test", {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"data": data.dataset or data.path, "sizes": results.get("data", {}).get("sizes"),
            "selection_metric": results.get("selection_metric"), "best_epoch": results.get("best_epoch"),
            "freeze": config.freeze.model_dump(mode="json", exclude_defaults=True) or {"strategy": "all"},
            "test": test}


def head_description(meta: dict, stop_at: int | None) -> str:
    """Our head in words: `mean pooling`, `cls pooling, hidden [16]`, `token head, stops at layer 1`."""
    model = meta.get("model", {})
    words = [get_task(meta.get("task")).head_words(model)]
    if model.get("hidden"):
        words.append(f"hidden {model['hidden']}")
    if stop_at is not None:
        words.append(f"stops at layer {stop_at}")
    return ", ".join(words)


def _save_as_standard_classifier(tmp: Path, model, meta: dict, backbone) -> bool:
    """Write `best/` as a plain transformers checkpoint when our head computes exactly what the transformers
    class does: a sequence task with `pooling: pooler` (the pooler, dropout, one linear layer =
    `AutoModelForSequenceClassification` of BERT-like families), or a token task (dropout + one linear layer
    per token state = `AutoModelForTokenClassification`), both without `hidden` layers. Families whose
    transformers classifier is not a single linear layer (RoBERTa/ELECTRA sequence heads: dense + tanh + linear)
    keep the encoder-only layout."""
    name = standard_class_name(meta["task"], meta["model"].get("pooling", "mean"))
    if meta["model"].get("hidden") or not name:
        return False
    if getattr(model, "stop_at", None) is not None:  # a stock classifier would run every layer
        return False
    import transformers

    labels = meta["labels"]
    config = backbone.config.__class__.from_dict(backbone.config.to_dict())
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {n: i for i, n in enumerate(labels)}
    try:
        clf = getattr(transformers, name).from_config(config)
    except ValueError:
        return False
    if not isinstance(getattr(clf, "classifier", None), torch.nn.Linear):
        return False
    base = getattr(clf, clf.base_model_prefix)
    state = backbone.state_dict()
    unused = set(state) - set(base.state_dict())
    if any(not key.startswith("pooler.") for key in unused):
        return False  # the class drops more than the pooler a token head never reads: keep the encoder layout
    base.load_state_dict({k: v for k, v in state.items() if k not in unused})
    linear = model.head.net[-1]
    with torch.no_grad():
        clf.classifier.weight.copy_(linear.weight)
        clf.classifier.bias.copy_(linear.bias)
    clf.save_pretrained(tmp, safe_serialization=True)
    return True


def standard_class_name(task: str, pooling: str) -> str | None:
    """The transformers Auto class that can express our head without hidden layers, if any."""
    return get_task(task).auto_class(pooling)


def refusing_model_type(description: str) -> str:
    """A `model_type` no transformers Auto class knows, worded so that transformers' own refusal ("has model
    type `…` but Transformers does not recognize this architecture") says what the folder is and how to load it."""
    return (f"unfreeze ({description}: not a transformers class; load the folder with unfreeze.load(path), "
            f"or the encoder alone with AutoModel.from_pretrained(path, subfolder='{ENCODER_DIR}'))")


def _write_refusing_config(folder: Path, model, meta: dict) -> None:
    """The top-level config.json of the encoder layout: label maps for readers of the folder (the hub, a model
    card), and a model_type that makes every transformers Auto class and `pipeline()` refuse the folder."""
    labels = meta["labels"]
    config = {"model_type": refusing_model_type(head_description(meta, getattr(model, "stop_at", None))),
              "id2label": {str(i): name for i, name in enumerate(labels)},
              "label2id": {name: i for i, name in enumerate(labels)},
              "unfreeze": {"encoder": ENCODER_DIR, "head": HEAD_FILE, "meta": MODEL_META}}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_label_maps(folder: Path, labels: list[str]) -> None:
    """Put id2label / label2id into `config.json`, so any reader of the folder (transformers, ONNX tooling, a
    model card) sees the run's label names rather than LABEL_0…"""
    path = folder / "config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_meta(best: Path) -> dict:
    """`unfreeze.json` of a saved model folder, checked for the keys every reader needs."""
    if not (best / MODEL_META).is_file():
        raise UnfreezeError(f"{best}: not a saved unfreeze model (no {MODEL_META}); pass a run's best/ folder")
    try:
        meta = json.loads((best / MODEL_META).read_text(encoding="utf-8"))
        for key in ("labels", "model", "task"):
            meta[key]  # noqa: B018 — a KeyError names the missing key
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UnfreezeError(f"{best / MODEL_META}: malformed ({type(exc).__name__}: {exc}); it is written by a run — "
                            "re-run it or restore the file") from None
    return meta


def load_model(best_dir: str | Path):
    """(EncoderClassifier in eval mode, tokenizer, metadata) from a `best/` folder (either layout); nothing
    downloaded. `UnfreezeModel.from_pretrained` wraps this."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from unfreeze.config.schema import ModelConfig
    from unfreeze.model.backbone import discover_layout
    from unfreeze.model.bilstm import is_bilstm_folder, load_bilstm
    from unfreeze.model.heads import EncoderClassifier

    best = Path(best_dir)
    meta = read_meta(best)
    encoder = best / ENCODER_DIR if (best / ENCODER_DIR).is_dir() else best  # older folders: the top level
    if not meta.get("adapter_of") and not [p for p in encoder.glob("*.safetensors") if p.name != HEAD_FILE]:
        raise UnfreezeError(f"{best}: no model.safetensors (the weights); the folder is incomplete — re-run the run "
                            "or point at another best/ folder")
    if meta.get("adapter_of"):
        backbone = _load_adapter(best, meta)
    elif is_bilstm_folder(encoder):  # AutoModel does not know the bilstm model type
        backbone = load_bilstm(encoder)
    else:
        backbone = AutoModel.from_pretrained(encoder, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(best, local_files_only=True)
    model = EncoderClassifier(backbone, discover_layout(backbone), len(meta["labels"]),
                              ModelConfig(**meta["model"]), meta["task"], stop_at=meta.get("stop_at"))
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

    from unfreeze.config.schema import ModelConfig
    from unfreeze.model.backbone import load_backbone

    base, _ = load_backbone(ModelConfig(**meta["model"]))
    return PeftModel.from_pretrained(base, adapter_dir, use_safetensors=True).merge_and_unload()


def resolve_model_dirs(target: str | Path, arm: str | None = None) -> list[Path]:
    """`best/` folders behind a path: itself, RUN/best, or the fold/seed runs of one study arm."""
    target = _readable(Path(target))
    if (target / MODEL_META).is_file():
        return [target]
    if (target / "best" / MODEL_META).is_file():
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
    from unfreeze.io.paths import overrides_hash

    configs: dict[str, list[Path]] = {}
    for path in (study_dir / "runs").glob("*/run.json"):
        info = read_json(path)
        key = overrides_hash(info.get("overrides", {}))
        if arm in (info["arm"], f"{info['arm']} #{key}") and (path.parent / "best" / MODEL_META).is_file():
            configs.setdefault(f"{info['arm']} #{key}", []).append(path.parent / "best")
    if len(configs) > 1:
        raise UnfreezeError(f"{study_dir}: arm {arm!r} covers {len(configs)} different configs; pass one of "
                            f"--arm {' / '.join(repr(name) for name in sorted(configs))}")
    return [d for dirs in configs.values() for d in dirs]


def _arms(study_dir: Path) -> list[str]:
    return sorted({read_json(p)["arm"] for p in (study_dir / "runs").glob("*/run.json")})
