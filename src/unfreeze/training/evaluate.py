"""Evaluating a split during training: logits of every example through the one evaluation loop
(`model.inference.run_inference`), gathered across processes, then metrics computed once on the whole split.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from accelerate import Accelerator

from unfreeze.errors import ConfigError, UnfreezeError
from unfreeze.model.inference import run_inference
from unfreeze.metrics.classification import scalar_metrics
from unfreeze.tasks import get_task
from unfreeze.training.loss import loss_fn
from unfreeze.training.prepare import RunData

log = logging.getLogger(__name__)


def model_inputs(batch: dict, cached_from: int | None) -> dict:
    """The model's keyword arguments for a collated batch. Cached token states are (batch, tokens, hidden); a
    pooled cache (`training/cache.py`: what a `head` run's head reads) gives (batch, hidden) — the features."""
    keys = ("input_ids", "attention_mask", "token_type_ids", "cached_states")
    inputs = {k: batch[k] for k in keys if k in batch}
    if "cached_states" in inputs:
        if inputs["cached_states"].dim() == 2:
            inputs["cached_features"] = inputs.pop("cached_states")
        else:
            inputs["cached_from"] = cached_from
    return inputs


def collect_logits(model, loader, accelerator: Accelerator, cached_from: int | None, size: int,
                   desc: str | None = None) -> list[np.ndarray]:
    """Per-example logits in dataset order: (classes,) for sequence tasks, (tokens, classes) for token tasks.

    Gathered across processes and de-duplicated by index, so distributed padding never counts an example twice.
    `desc`: show a progress bar (batches, with total and ETA) under that name; None = quiet.
    """
    out: list[np.ndarray | None] = [None] * size

    def keep(batch: dict, logits: torch.Tensor) -> None:
        lengths = batch["attention_mask"].sum(1)
        if logits.dim() == 3:
            logits = accelerator.pad_across_processes(logits, dim=1)
        index, logits, lengths = accelerator.gather_for_metrics((batch["index"], logits, lengths))
        for i, row, n in zip(index.tolist(), logits.float().cpu().numpy(), lengths.tolist()):
            out[i] = row[:n] if row.ndim == 2 else row

    if desc is not None:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=desc, total=len(loader), leave=False, dynamic_ncols=True,
                      disable=not accelerator.is_local_main_process)
    run_inference(model, loader, lambda batch: model(**model_inputs(batch, cached_from)), keep)
    missing = [i for i, x in enumerate(out) if x is None]
    if missing:  # a real error, not an assert: `python -O` must not turn this into metrics over a partial split
        raise UnfreezeError(f"evaluation gathered {size - len(missing)} of {size} examples (first missing index "
                            f"{missing[0]}); every example must be evaluated exactly once — the data loader or the "
                            f"distributed gather dropped examples, so the metrics would be wrong")
    return out  # type: ignore[return-value]


def split_loss(logits: list[np.ndarray], labels, weight) -> float:
    if logits[0].ndim == 1:
        return float(loss_fn(torch.tensor(np.stack(logits)), torch.as_tensor(np.asarray(labels)), weight))
    flat_logits = torch.tensor(np.concatenate(logits))
    flat_labels = torch.as_tensor(np.concatenate([np.asarray(x) for x in labels]))
    return float(loss_fn(flat_logits, flat_labels, weight))


class Evaluator:
    """The metrics of a split from its logits: built from the data part, `data:` (positive label, ignored tags,
    fβ) and the loss's class weights."""

    def __init__(self, run_data: RunData, data_cfg, weight):
        self.data, self.data_cfg, self.weight = run_data, data_cfg, weight

    def __call__(self, split: str, logits: list[np.ndarray]) -> dict:
        data = self.data
        labels = data.encoded[split].labels  # one per example (sequence) or one array per window (token)
        loss = split_loss(logits, labels, self.weight)
        return get_task(data.task).split_metrics(data, self.data_cfg, split, logits, loss)

    def check_metric(self, metric: str) -> None:
        """Fail before the first step, not after epoch 1, when `train.metric` is not a metric this task reports:
        the metric names come from evaluating constant predictions on the validation split."""
        n_classes = len(self.data.label_names)
        enc = self.data.encoded["val"]
        if get_task(self.data.task).per_token:
            dummy = [np.zeros((int(n), n_classes), dtype=np.float32) for n in enc.lengths]
        else:
            dummy = [np.zeros(n_classes, dtype=np.float32)] * len(enc)
        reported = scalar_metrics(self("val", dummy))
        if metric not in reported:
            raise ConfigError(f"train.metric={metric!r} is not a metric of this {self.data.task} task; "
                              f"choose one of {sorted(reported)}")
