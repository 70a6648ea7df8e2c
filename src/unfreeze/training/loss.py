"""The training loss: cross-entropy over examples (sequence) or labelled positions (token), with optional class
weights and labels left out of the loss (`train.loss_ignore_labels`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from unfreeze.errors import ConfigError
from unfreeze.tasks import get_task


def class_weight_tensor(train_cfg, label_names: list[str], train_labels, task: str) -> torch.Tensor | None:
    """Per-class loss weights from `train.class_weights`, with `train.loss_ignore_labels` set to 0. `train_labels`:
    the encoded training labels (one per example, or one array per window of a token task)."""
    weights = _class_weights(train_cfg.class_weights, label_names, train_labels, task)
    ignored = train_cfg.loss_ignore_labels
    if not ignored:
        return weights
    names = label_names
    check_labels_known("train.loss_ignore_labels", ignored, names)
    if set(ignored) >= set(names):
        raise ConfigError("train.loss_ignore_labels ignores every label: nothing would be learned")
    weights = torch.ones(len(names)) if weights is None else weights
    weights[[names.index(n) for n in ignored]] = 0.0
    return weights


def _class_weights(spec, names: list[str], train_labels, task: str) -> torch.Tensor | None:
    if spec == "none":
        return None
    if spec == "balanced":
        flat = np.concatenate([np.asarray(x) for x in train_labels]) if get_task(task).per_token else \
            np.asarray(train_labels)
        flat = flat[flat >= 0]
        counts = np.bincount(flat, minlength=len(names)).astype(float)
        weights = len(flat) / (len(names) * np.maximum(counts, 1))
        return torch.tensor(weights, dtype=torch.float32)
    check_labels_known("train.class_weights", spec, names)
    return torch.tensor([float(spec.get(n, 1.0)) for n in names], dtype=torch.float32)


def check_labels_known(key: str, labels, names: list[str]) -> None:
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ConfigError(f"{key}: label {unknown[0]!r} is not one of {names}")



def loss_fn(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean cross-entropy over examples (sequence) or labelled positions (token; -100 ignored).

    With class weights it is the weighted mean (as torch computes it), except that a batch whose labels all
    have weight 0 (e.g. only `O` under `loss_ignore_labels: [O]`) gives 0, not 0/0 = NaN."""
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)
    if weight is None:
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=-100)
    weight = weight.to(flat_logits.device, flat_logits.dtype)
    total = F.cross_entropy(flat_logits, flat_labels, weight=weight, ignore_index=-100, reduction="sum")
    counted = weight[flat_labels[flat_labels != -100]].sum()
    return total / counted.clamp_min(torch.finfo(flat_logits.dtype).tiny)
