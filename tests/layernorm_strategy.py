"""A toy strategy that exists only for the test suite: train the LayerNorms of the encoder (and the head).

It is the proof that a strategy is one file: registering it is all it takes for configs to accept
`freeze: layernorm`, for tables to label it, for the cache to stay off and for studies to run it."""
from __future__ import annotations

from torch import nn

from unfreeze.strategies import FreezePlan, Strategy, register


@register
class LayerNormOnly(Strategy):
    name = "layernorm"

    def label(self, cfg) -> str:
        return "layernorm-only"

    def apply(self, model, cfg) -> FreezePlan:
        for module in model.backbone.modules():
            if isinstance(module, nn.LayerNorm):
                module.requires_grad_(True)
        return FreezePlan(self.name, list(range(model.layout.num_layers)), True, 0)
