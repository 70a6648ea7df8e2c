"""Our own head on top of any encoder: pooling (cls / mean / pooler), dropout, optional dense stack, linear.

The head is ours, not `AutoModelForSequenceClassification`'s, so every architecture gets the same head and a
study compares freezing strategies, not heads. A token task uses the same stack on every token state.
"""
from __future__ import annotations

import torch
from torch import nn

from unfreeze.model.backbone import EncoderLayout, hidden_size, start_at_layer, stop_at_layer
from unfreeze.config.schema import ModelConfig
from unfreeze.errors import ConfigError
from unfreeze.tasks import get_task

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class ClassificationHead(nn.Module):
    """dropout → [linear → activation → dropout] × len(hidden) → linear."""

    def __init__(self, in_dim: int, num_labels: int, cfg: ModelConfig):
        super().__init__()
        blocks: list[nn.Module] = [nn.Dropout(cfg.dropout)]
        width = in_dim
        for units in cfg.hidden:
            blocks += [nn.Linear(width, units), ACTIVATIONS[cfg.activation](), nn.Dropout(cfg.dropout)]
            width = units
        blocks.append(nn.Linear(width, num_labels))
        self.net = nn.Sequential(*blocks)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average over real tokens only: padding must not dilute the mean."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class EncoderClassifier(nn.Module):
    """Backbone + head. `forward` accepts either token ids (full pass), cached hidden states entering layer
    `cached_from` (the frozen prefix computed once, see `training/cache.py`), or `cached_features`: the pooled
    vectors the head reads, cached when nothing below the head trains. `stop_at`: the head reads the hidden states
    entering that layer (freeze `layer: k`; a saved model records it); None = the encoder's output."""

    def __init__(self, backbone: nn.Module, layout: EncoderLayout, num_labels: int, cfg: ModelConfig,
                 task: str = "sequence", stop_at: int | None = None):
        super().__init__()
        if cfg.pooling == "pooler" and not get_task(task).per_token and layout.pooler is None:
            raise ConfigError(
                f"model.pooling: pooler needs a model with a pooler layer ({type(backbone).__name__} has none); "
                "use cls or mean"
            )
        self.backbone = backbone
        self.layout = layout
        self.task = task
        self.per_token = get_task(task).per_token
        self.pooling = cfg.pooling
        self.head = ClassificationHead(hidden_size(backbone), num_labels, cfg)
        #: the head reads the hidden states entering this layer (freeze `layer: k`); None = the encoder's output
        self.stop_at: int | None = stop_at

    def set_stop_layer(self, k: int) -> None:
        """From now on the head reads the hidden states entering layer `k` (1 ≤ k ≤ number of layers) and the
        layers above are not run (freeze `layer: k`); the constructor's `stop_at` does the same for a saved model."""
        if not 1 <= k <= self.layout.num_layers:
            raise ValueError(f"set_stop_layer({k}): the model has layers 1 … {self.layout.num_layers}")
        self.stop_at = k

    def encode(self, input_ids, attention_mask, token_type_ids=None, cached_states=None, cached_from=None):
        """Final token states (batch, tokens, hidden): the encoder's output, or the states entering layer
        `stop_at` (the layers above are not run)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        stop = self.layout.num_layers if self.stop_at is None else self.stop_at
        if cached_states is not None and cached_from >= stop:
            return cached_states  # everything up to the stop is frozen: the cache already holds its output
        with stop_at_layer(self.layout, stop) as captured:
            if cached_states is None:
                out = self.backbone(**kwargs).last_hidden_state
            else:
                with start_at_layer(self.layout, cached_from, cached_states):
                    out = self.backbone(**kwargs).last_hidden_state
        return captured[0] if captured else out

    def features(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.per_token:
            return states
        if self.pooling == "cls":
            return states[:, 0]
        if self.pooling == "mean":
            return mean_pool(states, attention_mask)
        return self.layout.pooler(states)

    def forward(self, input_ids, attention_mask, token_type_ids=None, cached_states=None, cached_from=None,
                cached_features=None):
        if cached_features is not None:
            return self.head(cached_features)
        states = self.encode(input_ids, attention_mask, token_type_ids, cached_states, cached_from)
        return self.head(self.features(states, attention_mask))
