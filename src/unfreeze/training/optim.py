"""Optimizers and schedulers over the parameter groups practitioners expect (`strategies/groups.py`: no weight
decay on biases and norms, the head's own LR, one group per layer under layer-wise LR decay)."""
from __future__ import annotations

from torch.optim import SGD, Adam, AdamW, Optimizer, RMSprop
from torch.optim.lr_scheduler import ReduceLROnPlateau

# The groups are the strategy's answer (LR per depth under `layer_decay`), so they live below training/, where
# gradual unfreezing builds them too; named here for run.py and the tests.
from unfreeze.strategies.groups import parameter_groups  # noqa: F401



def build_optimizer(groups: list[dict], cfg) -> Optimizer:
    if cfg.name == "adamw":
        return AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.name == "adam":
        # Adam's weight_decay is L2 in the gradient; kept per group so biases/norms still get none
        return Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.name == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps)


def build_scheduler(optimizer: Optimizer, cfg, total_steps: int, maximize: bool):
    """Step-wise schedulers from transformers; `plateau` is stepped once per evaluation with the val metric."""
    from transformers import get_scheduler

    if cfg.name == "plateau":
        return ReduceLROnPlateau(optimizer, mode="max" if maximize else "min", factor=cfg.factor,
                                 patience=cfg.patience)
    name = {"constant": "constant_with_warmup"}.get(cfg.name, cfg.name)
    return get_scheduler(name, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                         num_training_steps=total_steps)
