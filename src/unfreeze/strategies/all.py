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

    def stepped_share(self, cfg, num_layers: int, embedding_share: float) -> float:
        return 1.0  # the embeddings train too

    def apply(self, model, cfg) -> FreezePlan:
        model.backbone.requires_grad_(True)
        return FreezePlan(self.name, list(range(model.layout.num_layers)), True, 0)
