"""What `unfreeze bench` runs, one job per fresh process: the seed notebooks' loop, HF Trainer, unfreeze (one run
or one study), and the dispatch to the limit micro-benchmarks (`bench_limit.py`).

A job is plain JSON (see `bench.make_job`); `run_job` returns plain data. Every method reads the same
materialised splits, uses the same head shape (dropout → linear on mean-pooled states), learning rate, linear
warm-up schedule, gradient clipping, epochs and batch sizes, so the numbers differ only by how the work is done.
Times start after the data is in memory and include loading the model and tokenising: `epoch_seconds[0]` is
set-up + epoch 1 + its validation, each later entry one epoch + its validation.
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path

import torch
from torch import nn

#: One learning rate per strategy, shared by all methods (a head alone needs a larger one to move in 3 epochs).
LEARNING_RATES = {"head": 1e-3, "top_k": 1e-4, "all": 5e-5}
WARMUP_RATIO = 0.06
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
DROPOUT = 0.1


def learning_rate(strategy: str) -> float:
    return LEARNING_RATES["top_k" if strategy.startswith("top_") else strategy]


def sync(device: str) -> None:
    """Timestamps on a GPU are only meaningful once its queued work is done."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def macro_f1(labels, preds, num_labels: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, preds, average="macro", labels=list(range(num_labels)), zero_division=0))


def load_split_data(job: dict):
    """The materialised train/val/test files, read exactly as unfreeze reads them (labels, dedupe)."""
    from unfreeze.config.schema import DataConfig
    from unfreeze.data.sequence import load_sequence_data

    files = job["dataset"]["files"]
    return load_sequence_data(DataConfig(train=files["train"], val=files["val"], test=files["test"],
                                         max_length=job["dataset"]["max_length"]))


# ---------------------------------------------------------------------------------------------------------
# Shared by the seed method and HF Trainer: AutoModel + unfreeze's default head shape


class PooledClassifier(nn.Module):
    """AutoModel → mean over real tokens → dropout → linear; returns {"loss", "logits"} like an HF model."""

    def __init__(self, backbone: nn.Module, num_labels: int):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(DROPOUT)
        self.classifier = nn.Linear(backbone.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        from unfreeze.model.heads import mean_pool

        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        logits = self.classifier(self.dropout(mean_pool(states, attention_mask)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.float(), labels)
        return out


def load_pooled_classifier(job: dict, num_labels: int):
    """(model, tokenizer) with `requires_grad` set for the strategy, as a careful notebook would."""
    from transformers import AutoModel, AutoTokenizer

    from unfreeze.assets import resolve_model_path

    path = resolve_model_path(job["model"])
    torch.manual_seed(job["seed"])
    model = PooledClassifier(AutoModel.from_pretrained(path, use_safetensors=True), num_labels)
    freeze_for_strategy(model, job["strategy"])
    return model, AutoTokenizer.from_pretrained(path, use_fast=True)


def freeze_for_strategy(model: PooledClassifier, strategy: str) -> None:
    """Same trainable set as unfreeze's plan: top k layers (+ modules after them) and the head; the pooler,
    unused by mean pooling, never trains."""
    from unfreeze.model.backbone import discover_layout

    layout = discover_layout(model.backbone)
    n = layout.num_layers
    k = strategy_layers(strategy, n)
    model.backbone.requires_grad_(strategy == "all")
    for layer in list(layout.layers)[n - k:]:
        layer.requires_grad_(True)
    if strategy != "all":
        for module in layout.after:
            module.requires_grad_(True)
    if layout.pooler is not None:
        layout.pooler.requires_grad_(False)


def strategy_layers(strategy: str, num_layers: int) -> int:
    """Trainable layers: head 0, top_k k, all every layer."""
    if strategy in ("head", "all"):
        return 0 if strategy == "head" else num_layers
    return int(strategy.split("_")[1])


# ---------------------------------------------------------------------------------------------------------
# 1. The seed method


def seed_method(job: dict, data, t0: float) -> dict:
    """The seed notebooks' loop with their attention-mask bug fixed: every text padded to max_length, the whole
    model in train mode (dropout on in frozen layers), frozen layers recomputed every epoch, AdamW."""
    from transformers import get_linear_schedule_with_warmup

    device, epochs = job["device"], job["epochs"]
    model, tokenizer = load_pooled_classifier(job, len(data.label_names))
    model.to(device)
    train = padded_tensors(tokenizer, data.train, job["dataset"]["max_length"])
    val = padded_tensors(tokenizer, data.val, job["dataset"]["max_length"])
    order = torch.Generator().manual_seed(job["seed"])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=job["batch_size"],
                                         shuffle=True, generator=order)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate(job["strategy"]), weight_decay=WEIGHT_DECAY)
    total = len(loader) * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP_RATIO * total), total)
    marks, f1s = [], []
    for _ in range(epochs):
        model.train()
        for batch in loader:
            ids, mask, types, labels = (t.to(device) for t in batch)
            loss = model(ids, mask, types, labels)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        f1s.append(padded_val_f1(model, val, job, len(data.label_names)))
        sync(device)
        marks.append(time.perf_counter())
    return timing_result(t0, marks, f1s, precision="fp32")


def padded_tensors(tokenizer, split, max_length: int) -> tuple[torch.Tensor, ...]:
    enc = tokenizer(list(split.texts), padding="max_length", truncation=True, max_length=max_length,
                    return_token_type_ids=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], torch.as_tensor(split.labels)


@torch.no_grad()
def padded_val_f1(model, val: tuple[torch.Tensor, ...], job: dict, num_labels: int) -> float:
    model.eval()
    preds = []
    size = job["eval_batch_size"]
    for start in range(0, len(val[0]), size):
        ids, mask, types = (t[start:start + size].to(job["device"]) for t in val[:3])
        preds.append(model(ids, mask, types)["logits"].argmax(-1).cpu())
    return macro_f1(val[3].numpy(), torch.cat(preds).numpy(), num_labels)


def timing_result(t0: float, marks: list[float], f1s: list[float], **extra) -> dict:
    """Per-epoch seconds from end-of-validation timestamps; epoch 1 counts from the method's start."""
    edges = [t0, *marks]
    epoch_seconds = [b - a for a, b in zip(edges, edges[1:])]
    return {"epoch_seconds": epoch_seconds, "total_seconds": marks[-1] - t0, "val_f1_by_epoch": f1s,
            "val_f1": max(f1s), **extra}


# ---------------------------------------------------------------------------------------------------------
# 2. HF Trainer


def trainer_method(job: dict, data, t0: float) -> dict:
    """transformers.Trainer as its docs suggest: dynamic padding, length grouping, eval each epoch, no saving."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback

    num_labels = len(data.label_names)
    model, tokenizer = load_pooled_classifier(job, num_labels)
    max_length = job["dataset"]["max_length"]

    def dataset(split):
        enc = tokenizer(list(split.texts), truncation=True, max_length=max_length)
        return datasets.Dataset.from_dict({**dict(enc), "labels": [int(x) for x in split.labels]})

    marks: list[float] = []
    f1s: list[float] = []

    class EpochClock(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            sync(job["device"])
            marks.append(time.perf_counter())
            f1s.append(float(metrics["eval_f1_macro"]))

    def compute_metrics(prediction):
        return {"f1_macro": macro_f1(prediction.label_ids, prediction.predictions.argmax(-1), num_labels)}

    args, precision = trainer_arguments(job)
    trainer = Trainer(model=model, args=args, train_dataset=dataset(data.train), eval_dataset=dataset(data.val),
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                      callbacks=[EpochClock()], **_tokenizer_kwarg(Trainer, tokenizer))
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every metrics dict to stdout
    trainer.train()
    shutil.rmtree(args.output_dir, ignore_errors=True)
    return timing_result(t0, marks, f1s, precision=precision)


def trainer_arguments(job: dict):
    """TrainingArguments across transformers 4.4x (group_by_length, warmup_ratio) and 5.x
    (train_sampling_strategy, fractional warmup_steps)."""
    import inspect

    from transformers import TrainingArguments

    accepted = inspect.signature(TrainingArguments.__init__).parameters
    cuda = job["device"].startswith("cuda")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    kwargs = dict(
        output_dir=str(Path(job["work"]) / "trainer"), num_train_epochs=job["epochs"],
        per_device_train_batch_size=job["batch_size"], per_device_eval_batch_size=job["eval_batch_size"],
        learning_rate=learning_rate(job["strategy"]), weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_GRAD_NORM,
        lr_scheduler_type="linear", eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], use_cpu=not cuda, dataloader_num_workers=0, dataloader_pin_memory=cuda,
        disable_tqdm=True, seed=job["seed"], bf16=bf16,
    )
    if "group_by_length" in accepted:
        kwargs.update(group_by_length=True, warmup_ratio=WARMUP_RATIO)
    else:
        kwargs.update(train_sampling_strategy="group_by_length", warmup_steps=WARMUP_RATIO)
    return TrainingArguments(**kwargs), "bf16" if bf16 else "fp32"


def _tokenizer_kwarg(trainer_cls, tokenizer) -> dict:
    import inspect

    name = "processing_class" if "processing_class" in inspect.signature(trainer_cls.__init__).parameters \
        else "tokenizer"
    return {name: tokenizer}


# ---------------------------------------------------------------------------------------------------------
# 3. unfreeze: one run, or one study over all strategies


def run_config(job: dict, strategy: str, attention_dropout):
    from unfreeze.config.schema import RunConfig

    files, d = job["dataset"]["files"], job["dataset"]
    return RunConfig.model_validate({
        "seed": job["seed"],
        "data": {"train": files["train"], "val": files["val"], "test": files["test"], "max_length": d["max_length"]},
        "model": {"name": job["model"], "attention_dropout": attention_dropout},
        "freeze": strategy,
        "optim": {"lr": learning_rate(strategy), "weight_decay": WEIGHT_DECAY},
        "scheduler": {"name": "linear", "warmup_ratio": WARMUP_RATIO},
        "train": {"epochs": job["epochs"], "batch_size": job["batch_size"], "eval_batch_size": job["eval_batch_size"],
                  "max_grad_norm": MAX_GRAD_NORM, "cache": "auto", "length_grouping": True, "save_model": False,
                  "device": job["device"], "threads": job.get("threads")},
    })


def unfreeze_method(job: dict, data, t0: float) -> dict:
    """`unfreeze.training.train`; epoch times from history `seconds` (cumulative from the start of `train`)."""
    from unfreeze.training.callbacks import RunCallbacks
    from unfreeze.training.run import train

    work = Path(job["work"])
    config = run_config(job, job["strategy"], job.get("attention_dropout"))
    results = train(config, work / "run", overwrite=True, progress=False, data=data,
                    callbacks=RunCallbacks(cache_root=work / "cache"))
    wall = time.perf_counter() - t0
    seconds = [row["seconds"] for row in results["history"]]
    epoch_seconds = [b - a for a, b in zip([0.0, *seconds], seconds)]
    return {"epoch_seconds": epoch_seconds, "total_seconds": seconds[-1], "run_wall_seconds": wall,
            "val_f1_by_epoch": [row["val_f1_macro"] for row in results["history"]],
            "val_f1": results["val"]["f1_macro"], "cache": results["cache"],
            "precision": "auto (fp32 on CPU, bf16/fp16 on GPU)"}


def unfreeze_study(job: dict, data, t0: float) -> dict:
    """One `run_study` over every strategy (one arm each), sharing one activation cache; wall time end to end."""
    from unfreeze.config.study import StudyConfig
    from unfreeze.study.execute import LocalExecutor
    from unfreeze.study.runner import run_study

    del data  # the study loads its data itself, as a user's study would
    base = run_config(job, "all", job.get("attention_dropout")).model_dump(mode="json")
    arms = {s: {"freeze": s, "optim": {"lr": learning_rate(s)}} for s in job["strategies"]}
    study = StudyConfig(name="bench", base=base, arms=arms, seeds=[job["seed"]], baseline=False)
    results = run_study(study, Path(job["work"]) / "study", executor=LocalExecutor(), progress=False,
                        echo=lambda *_: None)
    wall = time.perf_counter() - t0
    from unfreeze.training import cache

    f1 = dict(zip(results["arm"], results["val_f1_macro"])) if len(results) else {}
    return {"total_seconds": wall, "runs": len(results), "val_f1": f1,
            "cache_forward_batches": cache.STATS["forward_batches"]}


# ---------------------------------------------------------------------------------------------------------
# Dispatch, in the child process

METHODS = {"seed": seed_method, "trainer": trainer_method, "unfreeze": unfreeze_method, "study": unfreeze_study}


def run_job(job: dict) -> dict:
    """Run one job; add the process's peak RSS (and GPU peak), threads and device. Errors become data."""
    from unfreeze.training.memory import peak_rss_mb

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    torch.manual_seed(job.get("seed", 0))
    try:
        data = load_split_data(job)
        if job["kind"] == "limit":
            from bench_limit import limit_job

            result = limit_job(job, data)
        else:
            sync(job["device"])
            t0 = time.perf_counter()
            result = METHODS[job["kind"]](job, data, t0)
    except Exception as exc:  # one failed method must not lose the rest of the benchmark
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    result.update(peak_rss_mb=peak_rss_mb(), threads=torch.get_num_threads(), device=job["device"])
    if job["device"].startswith("cuda") and torch.cuda.is_available():
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def child_main(job: dict, result_path: str) -> None:
    """Entry point of a fresh process: quiet logs, run, write the result atomically, free the disk used."""
    import os

    from unfreeze.io import write_json

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING)
    for name in ("unfreeze", "transformers", "accelerate", "datasets", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    result = run_job(job)
    write_json(result_path, result)
    shutil.rmtree(job["work"], ignore_errors=True)
