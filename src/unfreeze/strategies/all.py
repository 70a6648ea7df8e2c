"""`all`: every parameter trains (classic full fine-tuning)."""
from __future__ import annotations

from unfreeze.strategies.base import FreezePlan, Strategy, register


@register
class All(Strategy):
    name = "all"
    depth_only = True
    needs_pretrained_layers = False

    def no_cache_reason(self, cfg) -> str:
        return "nothing is frozen"

    def apply(self, model, cfg) -> FreezePlan:
        model.backbone.requires_grad_(True)
        return FreezePlan(self.name, list(range(model.layout.num_layers)), True, 0)
