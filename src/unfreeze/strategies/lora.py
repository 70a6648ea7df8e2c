"""`{lora: {r: 8}}`: peft low-rank adapters on the attention query/value projections (Hu et al. 2021).

The projections are found structurally, per architecture; only adapters + head train. The layout keeps pointing
at the same modules, because peft injects adapters in place. `model.checkpoint.save_model` keeps the small
adapter and saves a merged model, so `best/` is a plain encoder.
"""
from __future__ import annotations

from torch import nn

from unfreeze.errors import ConfigError, UnfreezeError
from unfreeze.strategies.base import FreezePlan, Strategy, register


@register
class LoRA(Strategy):
    name = "lora"

    def label(self, cfg) -> str:
        return f"lora-r{cfg.r}"

    def stepped_share(self, cfg, num_layers: int, embedding_share: float) -> float:
        return 0.02  # the low-rank adapters: a few per cent of the parameters at the usual ranks

    def apply(self, model, cfg) -> FreezePlan:
        return apply_lora(model, cfg)


def apply_lora(model, cfg) -> FreezePlan:
    """Wrap the backbone with peft LoRA adapters; only adapters + head (+ pooler under pooler pooling) train.

    peft replaces the target `nn.Linear`s *inside* the existing modules, so `model.layout` (embeddings, layer
    list, its owner, pooler) still names the live modules and `start_at_layer` keeps working."""
    from peft import LoraConfig, get_peft_model

    layout = model.layout
    targets = list(cfg.target_modules) if cfg.target_modules else lora_targets(layout)
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout, target_modules=targets)
    try:
        model.backbone = get_peft_model(model.backbone, lora)
    except ValueError as exc:
        raise ConfigError(f"freeze.target_modules {targets}: {str(exc).splitlines()[0]}") from None
    if not any(m is layout.layers for m in model.backbone.modules()):  # pragma: no cover - peft contract
        raise UnfreezeError("LoRA wrapping replaced the layer stack; the discovered layout is stale")
    if model.pooling == "pooler" and cfg.train_pooler and layout.pooler is not None:
        layout.pooler.requires_grad_(True)  # under pooler pooling the pooler is the first layer of the head
    model.head.requires_grad_(True)
    return FreezePlan(LoRA.name, list(range(layout.num_layers)), False, 0)


def lora_targets(layout) -> list[str]:
    """Names of the query and value projections (the LoRA paper's default), found structurally: in the first
    layer, the module that directly owns the most (≥ 3) `nn.Linear`s is the attention; its first and third linear
    (registration order is query, key, value in every supported architecture) are query and value. The names are
    checked to start with `q` / `v` so an unfamiliar layout fails loudly instead of adapting the wrong matrices."""
    best: tuple[str, list[str]] | None = None
    for path, module in layout.layers[0].named_modules():
        linears = [name for name, child in module.named_children() if isinstance(child, nn.Linear)]
        if len(linears) >= 3 and (best is None or len(linears) > len(best[1])):
            best = (path, linears)
    if best is not None:
        query, value = best[1][0], best[1][2]
        if query.lower().startswith("q") and value.lower().startswith("v"):
            return [query, value]
    found = [name for name, m in layout.layers[0].named_modules() if isinstance(m, nn.Linear)]
    raise UnfreezeError(
        f"LoRA: cannot tell the query/value projections of {type(layout.layers[0]).__name__} "
        f"(linear layers: {', '.join(found) or 'none'}); set freeze.target_modules, e.g. "
        "`freeze: {lora: {r: 8, target_modules: [query, value]}}`")
