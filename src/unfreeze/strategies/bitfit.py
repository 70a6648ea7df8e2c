"""`bitfit`: only the bias terms of the encoder (and the head) train (Ben Zaken et al. 2022)."""
from __future__ import annotations

from unfreeze.strategies.base import FreezePlan, Strategy, register, train_biases


@register
class BitFit(Strategy):
    name = "bitfit"
    takes_bitfit_flag = True

    def stepped_share(self, cfg, num_layers: int, embedding_share: float) -> float:
        return 0.01  # bias terms: well under 1 % of the parameters

    def apply(self, model, cfg) -> FreezePlan:
        train_biases(model.backbone)
        return FreezePlan(self.name, list(range(model.layout.num_layers)), True, 0, biases_only=True)
