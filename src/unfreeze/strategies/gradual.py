"""`{gradual: {every_epochs: 1}}`: gradual unfreezing (ULMFiT, Howard & Ruder 2018).

The head trains alone first (a random head's large early gradients would otherwise wreck the pretrained
layers); every `every_epochs` epochs (or `every_steps` optimizer steps) `layers_per_stage` more layers join, top →
bottom, embeddings last. `GradualUnfreezer` adds the newly trainable parameters to the *running* optimizer as new
parameter groups and extends the LR scheduler, so they are stepped with the scheduled LR: an optimizer built once
at start-up from the trainable parameters would silently never update what is unfrozen later. With `decay`
given, the layers train at ULMFiT's discriminative (per-depth) learning rates.
"""
from __future__ import annotations

import logging
import math

from torch import nn

from unfreeze.errors import UnfreezeError
from unfreeze.strategies.base import FreezePlan, Strategy, register, train_top_modules
from unfreeze.strategies.groups import parameter_groups

log = logging.getLogger(__name__)


@register
class Gradual(Strategy):
    name = "gradual"
    changes_frozen_set = True
    needs_distinct_layers = True
    one_process_reason = ("layers unfrozen after the start are not synchronised by data-parallel training); drop "
                          "`accelerate launch`, or use top_k / llrd / all")

    def label(self, cfg) -> str:
        return f"gradual-llrd-{cfg.decay:g}" if self.layer_decay(cfg) != 1.0 else self.name

    def layer_decay(self, cfg) -> float:
        return cfg.decay if "decay" in cfg.model_fields_set else 1.0

    def apply(self, model, cfg) -> FreezePlan:
        """Epoch 0 of ULMFiT: the head (+ final norms and pooler, like `top_k`) and no encoder layer."""
        if cfg.train_pooler:
            train_top_modules(model)
        return FreezePlan(self.name, [], False, 0)

    def schedule(self, model, config, plan) -> "GradualUnfreezer":
        return GradualUnfreezer(model, config, plan)


class GradualUnfreezer:
    """The ULMFiT schedule for one run: after `floor(epoch / every_epochs)` steps of the schedule, that many
    *units* are trainable — unit i < L is encoder layer L−1−i (top first), unit L the embeddings (+ modules that
    run before the layers, e.g. DeBERTa's relative embeddings).

    `plan` always reflects what trains (so `set_train_mode` keeps frozen layers in eval mode), `unfrozen` counts
    unfrozen encoder layers (logged per evaluation in history.csv)."""

    def __init__(self, model, config, plan: FreezePlan):
        self.model = model
        self.config = config
        freeze = config.freeze
        self.every = float(freeze.every_epochs)
        self.every_steps = freeze.every_steps  # when set, stages follow optimizer steps, not epochs
        self.per_stage = freeze.layers_per_stage
        self.plan = FreezePlan(plan.strategy, list(plan.trainable_layers), plan.embeddings_trainable, 0)
        self.unfrozen = len(self.plan.trainable_layers)

    @property
    def num_units(self) -> int:
        return self.model.layout.num_layers + 1

    def units_at(self, epoch: int) -> int:
        """Units trainable during `epoch` (0-based); the small epsilon keeps 3 / 1.5 from flooring to 1."""
        return min(self.num_units, self.per_stage * int(math.floor(epoch / self.every + 1e-9)))

    def units_after_steps(self, steps: int) -> int:
        return min(self.num_units, self.per_stage * (steps // self.every_steps))

    def on_epoch_start(self, epoch: int, optimizer, scheduler=None) -> bool:
        """Unfreeze what the schedule says for `epoch` (epoch-based schedules); add the new parameters to
        `optimizer` (a torch optimizer or an accelerate `AcceleratedOptimizer`) and extend `scheduler` (the LR
        scheduler stepping that optimizer; None only when there is none). True if anything changed."""
        if self.every_steps:
            return False
        return self._advance_to(self.units_at(epoch), optimizer, scheduler, f"epoch {epoch + 1}")

    def on_step(self, steps: int, optimizer, scheduler=None) -> bool:
        """After `steps` optimizer steps (step-based schedules): unfreeze what the schedule says now."""
        if not self.every_steps:
            return False
        return self._advance_to(self.units_after_steps(steps), optimizer, scheduler, f"step {steps}")

    def _advance_to(self, target: int, optimizer, scheduler, when: str) -> bool:
        done = self.unfrozen + int(self.plan.embeddings_trainable)
        if target <= done:
            return False
        params: list[nn.Parameter] = []
        for unit in range(done, target):
            params += self._unfreeze_unit(unit)
        groups = add_to_optimizer(self.model, self.config, optimizer, params, scheduler)
        log.info("gradual unfreezing, %s: %d encoder layer(s)%s trainable, %d new parameter group(s)",
                 when, self.unfrozen, " + embeddings" if self.plan.embeddings_trainable else "", len(groups))
        return True

    def _unfreeze_unit(self, unit: int) -> list[nn.Parameter]:
        layout = self.model.layout
        n = layout.num_layers
        modules = [layout.layers[n - 1 - unit]] if unit < n else [layout.embeddings, *layout.before]
        newly = [p for m in modules for p in m.parameters() if not p.requires_grad]
        for p in newly:
            p.requires_grad_(True)
        if unit < n:
            self.plan.trainable_layers = sorted({*self.plan.trainable_layers, n - 1 - unit})
            self.unfrozen = len(self.plan.trainable_layers)
        else:
            self.plan.embeddings_trainable = True
        return newly


def add_to_optimizer(model, config, optimizer, params: list[nn.Parameter],
                     scheduler=None) -> list[dict]:
    """Add `params` (those not already in the optimizer) as new groups built by `groups.parameter_groups`, so the
    no-decay and LLRD rules hold for them too. Existing groups and optimizer state are untouched.

    A new group starts at its initial LR × the schedule's current factor (read off an existing group), and a
    LambdaLR scheduler (transformers' linear/cosine/constant) gets a base LR + lambda for it; ReduceLROnPlateau
    sizes itself to new groups. Without this LambdaLR fails at its next step (torch zips groups strictly)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
    known = {id(p) for group in inner.param_groups for p in group["params"]}
    wanted = {id(p) for p in params if id(p) not in known}
    if not wanted:
        return []
    reference = inner.param_groups[0]
    factor = reference["lr"] / reference.get("initial_lr", reference["lr"])
    added = []
    for group in parameter_groups(model, config):
        mine = [p for p in group["params"] if id(p) in wanted]
        if mine:
            new = {**group, "params": mine, "lr": group["initial_lr"] * factor}
            inner.add_param_group(new)
            extend_scheduler(scheduler, new)
            added.append(new)
    return added


def extend_scheduler(scheduler, group: dict) -> None:
    """Give a newly added optimizer group a schedule: the same lambda as the first group, its own base LR."""
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    scheduler = getattr(scheduler, "scheduler", scheduler)  # unwrap accelerate's AcceleratedScheduler
    if scheduler is None or isinstance(scheduler, ReduceLROnPlateau):
        return
    if not hasattr(scheduler, "lr_lambdas"):
        raise UnfreezeError(f"gradual unfreezing cannot add parameter groups to a {type(scheduler).__name__} "
                            "scheduler (supported: LambdaLR-based linear/cosine/constant, plateau)")
    scheduler.base_lrs.append(group["initial_lr"])
    scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
