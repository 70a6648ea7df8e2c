"""The parts of a run before its first step, each from its own sub-config: the data (`data:` + the task) and the
model (`model:` + `freeze:`). No part holds the whole config or another part.

Each call loads the pretrained weights afresh and builds a fresh head, so no run can continue from another
run's weights (a bug seen in notebooks that re-use one model object across a grid).
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from unfreeze.model.backbone import discover_layout, load_backbone
from unfreeze.config.schema import RunConfig
from unfreeze.data.encode import Encoded, model_max_positions, uses_token_types
from unfreeze.tasks import get_task
from unfreeze.strategies import FreezePlan, apply_freeze, count_parameters
from unfreeze.model.heads import EncoderClassifier

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """The data part: the splits as read (`data.TaskData` or `data.tokens.TokenTaskData`) and their encodings."""

    task: str
    data: object
    encoded: dict[str, Encoded]
    max_length: int
    length_stats: dict
    label_names: list[str] = field(init=False)

    def __post_init__(self):
        self.label_names = list(self.data.label_names)

    @property
    def notes(self) -> dict:
        return self.data.notes


@dataclass
class RunModel:
    """The model part: the classifier (backbone + fresh head), its tokenizer, the freezing plan at the start."""

    model: EncoderClassifier
    tokenizer: object
    plan: FreezePlan
    trainable_params: int
    total_params: int


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch: head initialisation, dropout masks and data order all follow."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_data(config: RunConfig):
    return get_task(config.task).read_data(config.data)


def prepare_parts(config: RunConfig, data=None) -> tuple[RunData, RunModel]:
    """The data and model parts of one run. `data` may be passed in (studies and folds load it once); the model is
    always loaded afresh. The tokenizer comes with the pretrained model, so the encoding waits for it."""
    data = data if data is not None else load_data(config)
    backbone, tokenizer = load_backbone(config.model, config.seed, training=data.train)
    run_data = encode_data(config.task, config.data, data, tokenizer, backbone)
    seed_everything(config.seed)  # the head's initial weights follow the seed, whatever loading drew
    model = build_model(config.model, config.freeze, config.task, backbone, tokenizer, len(run_data.label_names))
    return run_data, model


def encode_data(task: str, data_cfg, data, tokenizer, backbone) -> RunData:
    """The data part from `data:` and the task: every split encoded for `tokenizer` (and the backbone's limits)."""
    encoded, max_length, stats = get_task(task).encode(tokenizer, data, data_cfg,
                                                       model_max_positions(tokenizer, backbone),
                                                       uses_token_types(backbone))
    return RunData(task, data, encoded, max_length, stats)


def build_model(model_cfg, freeze_cfg, task: str, backbone, tokenizer, num_labels: int) -> RunModel:
    """The model part from `model:` and `freeze:`: a fresh head on `backbone`, frozen as the strategy says."""
    model = EncoderClassifier(backbone, discover_layout(backbone), num_labels, model_cfg, task)
    plan = apply_freeze(model, freeze_cfg)
    trainable, total = count_parameters(model)
    return RunModel(model, tokenizer, plan, trainable, total)


def encode_sequence_splits(tokenizer, backbone, data, data_cfg):
    """(encodings per split, max_length, length stats) of a sequence task (the probe's); `data_cfg`: `data:` (a
    DataConfig), or a RunConfig, whose `data` is used."""
    data_cfg = getattr(data_cfg, "data", data_cfg)
    return get_task("sequence").encode(tokenizer, data, data_cfg, model_max_positions(tokenizer, backbone),
                                       uses_token_types(backbone))
