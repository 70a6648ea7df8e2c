"""`{llrd: 0.8}`: layer-wise learning-rate decay — everything trains, layer d at `lr × decay^(L+1−d)`.

Lower layers hold general features that large updates destroy; upper layers are task-specific and need to move
most. The LRs themselves come from `strategies.groups.parameter_groups`, which reads `layer_decay`. With
`bitfit: true` only the bias terms train, still at the per-depth LRs (BitFit's cheapness + LLRD's protection of
the bottom layers).
"""
from __future__ import annotations

from unfreeze.strategies.base import FreezePlan, Strategy, register, train_biases


@register
class LLRD(Strategy):
    name = "llrd"
    main_field = "decay"
    takes_bitfit_flag = True
    needs_distinct_layers = True

    def label(self, cfg) -> str:
        return f"llrd-{cfg.decay:g}" + ("-bitfit" if cfg.bitfit else "")

    def stepped_share(self, cfg, num_layers: int, embedding_share: float) -> float:
        return 0.01 if cfg.bitfit else 1.0  # every layer and the embeddings, at decayed LRs (or their biases)

    def layer_decay(self, cfg) -> float:
        return cfg.decay

    def apply(self, model, cfg) -> FreezePlan:
        if cfg.bitfit:
            train_biases(model.backbone)
        else:
            model.backbone.requires_grad_(True)
        return FreezePlan(self.name, list(range(model.layout.num_layers)), True, 0, biases_only=bool(cfg.bitfit))
