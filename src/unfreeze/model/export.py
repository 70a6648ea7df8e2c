"""`unfreeze export RUN --format onnx|transformers`: a saved model for use outside unfreeze.

Our head (cls / mean / pooler pooling, optional dense stack) is not always a transformers class. Two routes:
- `transformers`: only for heads a transformers Auto class computes exactly (token heads without hidden layers,
  sequence heads with `pooling: pooler` and no hidden layers; see `checkpoint._save_as_standard_classifier`).
  The run already saved `best/` in that form; export copies the loadable files.
- `onnx`: every transformer head. The whole EncoderClassifier (backbone + pooling + head) is traced into one
  graph `model.onnx` with inputs input_ids, attention_mask (+ token_type_ids where the model has token types)
  and output `logits`; the tokenizer files and `unfreeze_export.json` (labels, task, max_length, input names)
  travel with it, so onnxruntime + the tokenizer reproduce `predict` with no torch installed.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import torch

from unfreeze.errors import UnfreezeError
from unfreeze.io import replace_dir
from unfreeze.io.atomic import temp_name
from unfreeze.io.lock import stale_temp_cleanup
from unfreeze.tasks import get_task
from unfreeze.io.paths import (EXPORT_MARKER, check_out_folder, check_out_location, enclosing_written_folder,
                                refuse_inside_study)

EXPORT_META = EXPORT_MARKER  # "unfreeze_export.json": also how a later export recognises a folder it may replace
FORMATS = ("onnx", "transformers")


def export_model(target: str | Path, out_dir: str | Path, fmt: str = "onnx", opset: int = 17, *,
                 arm: str | None = None, overwrite: bool = False) -> Path:
    """Export the model behind `target` (a `best/` folder, a run folder, or a study folder with `arm`) to `out_dir`;
    returns `out_dir`.

    `out_dir` is checked before any work (`io.paths.check_out_folder`): never the current folder, a parent of it,
    the home folder, a file, a run or saved-model folder (or a folder inside one), nor the model's own folder; an
    existing non-empty `out_dir` only when it is an earlier export and `overwrite` is given. The export is staged in
    a hidden sibling `.NAME.<pid>.<hex>.tmp` (a name only this process uses) and swapped in whole."""
    from unfreeze.model.checkpoint import resolve_model_dirs

    if fmt not in FORMATS:
        raise UnfreezeError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    dirs = resolve_model_dirs(target, arm)
    if len(dirs) != 1:
        raise UnfreezeError(f"{target}: export one model (a run's best/ folder, e.g. {dirs[0]}), not the "
                            f"{len(dirs)} of arm {arm!r}")
    best = dirs[0]
    _check_finished(best)
    out = _check_export_target(out_dir, best, overwrite)
    new = not out.exists() or not any(out.iterdir())
    stale_temp_cleanup(out.parent, pattern=f".{glob.escape(out.name[:150])}.*.tmp")  # killed exports' staging
    tmp = out.parent / temp_name(out.name)
    tmp.mkdir(parents=True)
    try:
        (_export_transformers if fmt == "transformers" else _export_onnx)(best, tmp, opset)
        info = json.loads((tmp / EXPORT_META).read_text(encoding="utf-8"))  # where it came from, for the record
        info.update(exported_from=os.path.abspath(best), target=os.path.abspath(target), arm=arm)
        (tmp / EXPORT_META).write_text(json.dumps(info, indent=2), encoding="utf-8")
        replace_dir(tmp, out, "-o" if new else None)  # another export filled a new -o meanwhile: it is kept
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_finished(best: Path) -> None:
    """A run's `best/` is exported only from a finished run (its metrics.json): a run folder without one was cut
    short or damaged, and its weights are not the ones its results describe."""
    run = best.parent
    if best.name == "best" and (run / "config.yaml").is_file() and not (run / "metrics.json").is_file():
        raise UnfreezeError(f"{run}: unfinished run (no metrics.json); export a finished run, or rerun it with "
                            f"`unfreeze train {run / 'config.yaml'} --out {run} --overwrite`")


def _check_export_target(out_dir: str | Path, best: Path, overwrite: bool) -> Path:
    refuse_inside_study(out_dir, "-o")
    out = check_out_location(out_dir, "-o")
    source = best.parent if best.name == "best" else best
    for form in {out, Path(os.path.realpath(out))}:
        for src in {Path(os.path.abspath(source)), Path(os.path.realpath(source))}:
            if form == src or src in form.parents or form in src.parents:
                raise UnfreezeError(f"-o {out}: overlaps the model's own folder {source}; export to a folder "
                                    "outside it, e.g. -o exported/my-model")
        inside = enclosing_written_folder(form)
        if inside is not None:
            raise UnfreezeError(f"-o {out}: {inside[0]} is {inside[1]}, which export never writes into or "
                                "replaces; choose a folder outside it, e.g. -o exported/my-model")
    return check_out_folder(out, "-o", "export", overwrite)


def transformers_class(best: Path) -> str | None:
    """The transformers class a `best/` folder loads as (its config.json `architectures`), or None when the
    folder holds only the backbone (our head is not a transformers class)."""
    path = best / "config.json"
    if not path.is_file():
        return None
    arch = (json.loads(path.read_text(encoding="utf-8")).get("architectures") or [""])[0]
    return arch if arch.endswith(("ForSequenceClassification", "ForTokenClassification")) else None


def _export_transformers(best: Path, tmp: Path, opset: int) -> None:
    meta = json.loads((best / "unfreeze.json").read_text(encoding="utf-8"))
    if transformers_class(best) is None:
        model = meta.get("model", {})
        raise UnfreezeError(
            f"{best}: its head (task {meta.get('task')}, pooling {model.get('pooling')}, hidden "
            f"{model.get('hidden')}) is not a transformers class; --format transformers needs a token head or "
            "`pooling: pooler` with no hidden layers on a BERT-like model (retrain with those), or use --format onnx")
    for path in best.iterdir():
        if path.is_file() and path.name not in ("head.safetensors", "unfreeze.json"):
            shutil.copy2(path, tmp / path.name)
    info = {"format": "transformers", "class": transformers_class(best), "task": meta.get("task"),
            "labels": meta.get("labels"), "source_model": meta.get("source_model")}
    (tmp / EXPORT_META).write_text(json.dumps(info, indent=2), encoding="utf-8")


def _export_onnx(best: Path, tmp: Path, opset: int) -> None:
    from unfreeze.data.encode import uses_token_types
    from unfreeze.model.checkpoint import load_model

    try:
        import onnx  # noqa: F401  (torch's exporter writes through it)
    except ImportError:
        raise UnfreezeError("--format onnx needs the onnx package: pip install 'unfreeze[export]'") from None
    model, tokenizer, meta = load_model(best)
    if getattr(model.backbone.config, "model_type", "") == "bilstm":
        raise UnfreezeError(f"{best}: a BiLSTM model; ONNX export covers transformer encoders "
                            "(use `unfreeze predict`)")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types(model.backbone) else [])
    sample = tokenizer(["export sample text", "a second, longer sample text for export"], padding=True,
                       return_tensors="pt")
    args = tuple(sample[n] if n in sample else torch.zeros_like(sample["input_ids"]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    task = get_task(meta["task"])
    axes["logits"] = dict(task.logits_axes)
    with torch.no_grad():
        torch.onnx.export(_Logits(model, names).eval(), args, str(tmp / "model.onnx"), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    tokenizer.save_pretrained(tmp)
    info = {"task": meta["task"], "labels": meta["labels"], "max_length": meta["max_length"], "inputs": names,
            "text_pair": bool(meta.get("text_pair_column")), "stride": meta.get("stride"),
            "label_all_subwords": meta.get("label_all_subwords"), "source_model": meta.get("source_model"),
            "logits": task.logits_doc}
    (tmp / EXPORT_META).write_text(json.dumps(info, indent=2), encoding="utf-8")


class _Logits(torch.nn.Module):
    """Positional inputs (what the ONNX exporter traces) → EncoderClassifier's keyword forward → logits."""

    def __init__(self, model, names: list[str]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.names, inputs)))
