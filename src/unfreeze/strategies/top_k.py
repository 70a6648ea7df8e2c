"""`{top_k: k}`: the top k encoder layers (+ final norms, pooler and head) train; `head`: k = 0.

The embeddings and the bottom L − k layers never change, so their output is computed once per study (the
activation cache starts at layer L − k).
"""
from __future__ import annotations

from unfreeze.errors import ConfigError
from unfreeze.strategies.base import FreezePlan, Strategy, register, train_top_modules


@register
class TopK(Strategy):
    name = "top_k"
    main_field = "k"
    depth_only = True
    needs_distinct_layers = True

    def from_text(self, text: str) -> dict | None:
        if text.startswith("top_") and text[4:].isdigit():
            return {"strategy": self.name, "k": int(text[4:])}
        return super().from_text(text)

    def k(self, cfg) -> int:
        return int(cfg.k)

    def check(self, cfg) -> None:
        if cfg.k is None:
            raise ValueError("freeze: top_k needs a layer count, e.g. `freeze: {top_k: 2}`")
        super().check(cfg)

    def label(self, cfg) -> str:
        return f"top-{cfg.k}"

    def cached_top(self, cfg) -> int:
        return self.k(cfg)

    def trained_layers(self, cfg, num_layers: int | None) -> int:
        return self.k(cfg)

    def apply(self, model, cfg) -> FreezePlan:
        layout = model.layout
        n, k = layout.num_layers, self.k(cfg)
        if k > n:
            raise ConfigError(f"freeze.top_k={k}, but the model has only {n} layers")
        for layer in list(layout.layers)[n - k:]:
            layer.requires_grad_(True)
        if cfg.train_pooler:
            train_top_modules(model)
        # top_k over all layers leaves only the embeddings frozen: no layer output can be cached
        return FreezePlan(self.name, list(range(n - k, n)), False, n - k if k < n else 0)


@register
class Head(TopK):
    name = "head"
    main_field = None
    needs_distinct_layers = False  # everything in the encoder stays frozen: shared layers are fine

    def from_text(self, text: str) -> dict | None:
        return {"strategy": self.name} if text == self.name else None

    def k(self, cfg) -> int:
        return 0

    def check(self, cfg) -> None:
        Strategy.check(self, cfg)

    def label(self, cfg) -> str:
        return self.name
