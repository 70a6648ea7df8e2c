"""The optimizer's parameter groups: which learning rate and weight decay each trainable parameter gets.

Weight decay is not applied to biases and normalisation weights (as in BERT's original recipe); the head can
have its own learning rate; layer-wise LR decay (the strategy's `layer_decay`: `llrd`, `gradual` with a `decay`)
assigns one group per layer. Groups are named so they can be reported and rebuilt when gradual unfreezing adds
parameters. Here, in `strategies/`, because both the run (`training/optim.py` builds the optimizer from them) and
`gradual.py` (adding groups to a running optimizer) need them, and strategies sit below training.
"""
from __future__ import annotations

from torch import nn


def no_decay_parameter_ids(model: nn.Module) -> set[int]:
    """Biases and every parameter of a normalisation module (found by type/name of the module, any arch)."""
    ids: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower()
        for name, param in module.named_parameters(recurse=False):
            if is_norm or name == "bias":
                ids.add(id(param))
    return ids


def layer_index_of(model: nn.Module) -> dict[int, int]:
    """Depth of each parameter: 0 embeddings (and modules before the layers), i+1 for layer i, L+1 after."""
    layout = model.layout
    depth: dict[int, int] = {}
    for module in [layout.embeddings, *layout.before]:
        for p in module.parameters():
            depth[id(p)] = 0
    for i, layer in enumerate(layout.layers):
        for p in layer.parameters():
            depth[id(p)] = i + 1
    top = layout.num_layers + 1
    for p in model.parameters():
        depth.setdefault(id(p), top)
    return depth


def parameter_groups(model: nn.Module, cfg, only_trainable: bool = True) -> list[dict]:
    """Groups keyed by (part, depth, decay). LR of a backbone parameter at depth d is
    `lr × decay^(L + 1 − d)` under `llrd` (and `gradual` with a `decay`), else `lr`; head parameters get `head_lr`
    (default: `lr`)."""
    optim = cfg.optim
    no_decay = no_decay_parameter_ids(model)
    depth = layer_index_of(model)
    top = model.layout.num_layers + 1
    decay_factor = cfg.freeze.layer_decay
    head_ids = {id(p) for p in model.head.parameters()}
    groups: dict[tuple, dict] = {}
    for name, param in model.named_parameters():
        if only_trainable and not param.requires_grad:
            continue
        is_head = id(param) in head_ids
        d = top if is_head else depth[id(param)]
        lr = (optim.head_lr or optim.lr) if is_head else optim.lr * decay_factor ** (top - d)
        decays = id(param) not in no_decay
        key = ("head" if is_head else f"depth{d}", decays)
        group = groups.setdefault(key, {
            "name": f"{key[0]}{'' if decays else '/no_decay'}", "params": [], "lr": lr,
            "initial_lr": lr, "weight_decay": optim.weight_decay if decays else 0.0,
        })
        group["params"].append(param)
    return list(groups.values())
