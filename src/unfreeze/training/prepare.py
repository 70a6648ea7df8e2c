"""Everything a run needs before its first step: data, tokenizer, model with head, freezing plan, encodings.

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
from unfreeze.data.encode import Encoded, choose_max_length, encode_texts, model_max_positions, token_lengths, uses_token_types
from unfreeze.strategies import FreezePlan, apply_freeze, count_parameters
from unfreeze.model.heads import EncoderClassifier

log = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    config: RunConfig
    data: object  # data.TaskData or tokens.TokenTaskData
    tokenizer: object
    model: EncoderClassifier
    plan: FreezePlan
    encoded: dict[str, Encoded]
    max_length: int
    length_stats: dict
    trainable_params: int
    total_params: int
    notes: dict = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return self.data.label_names


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch: head initialisation, dropout masks and data order all follow."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_data(config: RunConfig):
    if config.task == "token":
        from unfreeze.data.tokens import load_token_data

        return load_token_data(config.data)
    from unfreeze.data.sequence import load_sequence_data

    return load_sequence_data(config.data)


def prepare_run(config: RunConfig, data=None) -> PreparedRun:
    """`data` may be passed in (studies and folds load it once); the model is always loaded afresh."""
    data = data if data is not None else load_data(config)
    backbone, tokenizer = load_backbone(config.model, config.seed, training=data.train)
    if config.task == "token":
        from unfreeze.data.windows import encode_token_splits

        encoded, max_length, stats = encode_token_splits(tokenizer, data, config.data, model_max_positions(tokenizer, backbone))
    else:
        encoded, max_length, stats = encode_sequence_splits(tokenizer, backbone, data, config)
    seed_everything(config.seed)
    layout = discover_layout(backbone)
    model = EncoderClassifier(backbone, layout, len(data.label_names), config.model, config.task)
    plan = apply_freeze(model, config.freeze)
    trainable, total = count_parameters(model)
    return PreparedRun(config, data, tokenizer, model, plan, encoded, max_length, stats, trainable, total)


def encode_sequence_splits(tokenizer, backbone, data, config: RunConfig):
    train = data.train
    lengths = token_lengths(tokenizer, train.texts, train.pairs)
    max_length, stats = choose_max_length(lengths, config.data, model_max_positions(tokenizer, backbone))
    types = uses_token_types(backbone)
    encoded = {
        name: encode_texts(tokenizer, split.texts, split.pairs, split.labels, max_length, types)
        for name, split in (("train", data.train), ("val", data.val), ("test", data.test))
    }
    if stats["truncated_share"] > 0.05:
        log.warning("max_length=%d truncates %.0f%% of training texts", max_length, 100 * stats["truncated_share"])
    return encoded, max_length, stats
