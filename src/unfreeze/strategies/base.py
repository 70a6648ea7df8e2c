"""Which parameters train: `head`, `top_k`, `all`, `bitfit` (+ `gradual`, `llrd`, `lora` in `strategies.py`).

A plan is computed from the discovered layout (never from parameter names), applied by setting
`requires_grad`, and kept so the loop can put frozen modules in eval mode (no dropout noise in what is frozen)
and the activation cache can tell whether a frozen prefix exists.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unfreeze.config.schema import FreezeConfig
from unfreeze.errors import ConfigError
from unfreeze.model.heads import EncoderClassifier


@dataclass
class FreezePlan:
    """`frozen_prefix`: how many bottom layers (with the embeddings) are frozen and untouched by training —
    the boundary the activation cache can start from. 0 when nothing below the layers is frozen."""

    strategy: str
    trainable_layers: list[int]
    embeddings_trainable: bool
    frozen_prefix: int
    biases_only: bool = False

    @property
    def cacheable(self) -> bool:
        return self.strategy in ("head", "top_k") and self.frozen_prefix > 0


def apply_freeze(model: EncoderClassifier, cfg: FreezeConfig) -> FreezePlan:
    layout = model.layout
    n = layout.num_layers
    model.backbone.requires_grad_(False)
    model.head.requires_grad_(True)
    if cfg.strategy == "all":
        model.backbone.requires_grad_(True)
        plan = FreezePlan("all", list(range(n)), True, 0)
    elif cfg.strategy in ("head", "top_k"):
        k = 0 if cfg.strategy == "head" else int(cfg.k)
        if k > n:
            raise ConfigError(f"freeze.top_k={k}, but the model has only {n} layers")
        for layer in list(layout.layers)[n - k:]:
            layer.requires_grad_(True)
        if cfg.train_pooler:
            for module in layout.after + ([layout.pooler] if layout.pooler is not None else []):
                module.requires_grad_(True)
        plan = FreezePlan(cfg.strategy, list(range(n - k, n)), False, n - k if k < n else 0)
        if k == n:
            # top_k over all layers leaves only the embeddings frozen: no layer output can be cached
            plan.frozen_prefix = 0
    elif cfg.strategy == "bitfit":
        for module in model.backbone.modules():
            bias = module._parameters.get("bias")
            if isinstance(bias, nn.Parameter):
                bias.requires_grad_(True)
        plan = FreezePlan("bitfit", list(range(n)), True, 0, biases_only=True)
    else:
        from unfreeze.strategies.advanced import apply_advanced

        plan = apply_advanced(model, cfg)
    if model.pooling != "pooler" and layout.pooler is not None:
        layout.pooler.requires_grad_(False)  # unused by cls/mean pooling: do not count it as trainable
    return plan


def set_train_mode(model: EncoderClassifier, plan: FreezePlan) -> None:
    """Train mode for what trains, eval mode for what is frozen (dropout off in frozen layers)."""
    model.train()
    layout = model.layout
    if not plan.embeddings_trainable:
        layout.embeddings.eval()
        for module in layout.before:
            module.eval()
    trainable = set(plan.trainable_layers)
    for i, layer in enumerate(layout.layers):
        if i not in trainable:
            layer.eval()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
