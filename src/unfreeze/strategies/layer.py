"""`{layer: k}`: the head on layer k's output — the hidden states entering layer k, i.e. after k layers — with
nothing in the encoder training and the layers above k not run at all.

This is the probe's answer made trainable: `unfreeze probe` finds the layer whose states predict the labels
best; `layer: k` trains the usual head there. It is cheap with the activation cache, whose boundary is k (the
head then trains on stored states only). The model stops at layer k (`EncoderClassifier.set_stop_layer`), in the
cached and the uncached path alike, and the saved model records the stop layer (`unfreeze.json`), so `predict` on
`best/` reproduces the run's predictions.
"""
from __future__ import annotations

from unfreeze.errors import ConfigError
from unfreeze.strategies.base import FreezePlan, Strategy, register


@register
class Layer(Strategy):
    name = "layer"
    main_field = "k"
    needs_distinct_layers = True

    def check(self, cfg) -> None:
        if cfg.k is None or cfg.k < 1:
            raise ValueError("freeze: layer needs the layer whose input states the head reads, 1 ≤ k ≤ number of "
                             "layers, e.g. `freeze: {layer: 4}` (the states after 4 layers)")
        super().check(cfg)

    def label(self, cfg) -> str:
        return f"layer-{cfg.k}"

    def cached_top(self, cfg) -> None:
        # The boundary is k from the bottom, not a count of top layers: a study cannot pre-fill it with the
        # top_k boundaries before the model is loaded, but the run itself still caches at layer k.
        return None

    def trained_layers(self, cfg, num_layers: int | None) -> int:
        return 0

    def run_depth(self, cfg, num_layers: int) -> int:
        return min(int(cfg.k), num_layers)

    def no_cache_reason(self, cfg) -> str:
        return f"strategy `{self.label(cfg)}` stops at layer {cfg.k}; nothing below it trains"

    def apply(self, model, cfg) -> FreezePlan:
        n, k = model.layout.num_layers, int(cfg.k)
        if k > n:
            raise ConfigError(f"freeze.layer={k}, but the model has only {n} layers (1 ≤ k ≤ {n})")
        model.set_stop_layer(k)
        if cfg.train_pooler and model.layout.pooler is not None:
            model.layout.pooler.requires_grad_(True)  # with `pooling: pooler` it reads layer k's states
        return FreezePlan(self.name, [], False, k)
