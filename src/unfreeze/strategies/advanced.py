"""Strategies beyond a fixed frozen set: layer-wise LR decay, gradual unfreezing (ULMFiT), LoRA.

`freezing.apply_freeze` has already frozen the backbone and made the head trainable when `apply_advanced` runs.

* `llrd` — everything trains; the per-depth learning rate `lr × decay^(L+1−depth)` lives in
  `optim.parameter_groups` (embeddings lowest, head at `head_lr`). Lower layers hold general features that
  large updates destroy; upper layers are task-specific and need to move most. With `bitfit: true` only the bias
  terms train, still with the per-depth LR (BitFit's cheapness + LLRD's protection of the bottom). BitFit does not
  combine with `gradual` (which needs whole layers) or `lora` (adapters already are the cheap part): ConfigError.
* `gradual` — the head trains alone first (a random head's large early gradients would otherwise wreck the
  pretrained layers); every `every_epochs` epochs one more layer joins, top → bottom, embeddings last.
  `GradualUnfreezer` adds the newly trainable parameters to the *running* optimizer as new parameter groups and
  extends the LR scheduler, so they are stepped with the scheduled LR: an optimizer built once at start-up from
  the trainable parameters would silently never update what is unfrozen later.
* `lora` — peft low-rank adapters on the attention query/value projections (found structurally, per
  architecture); only adapters + head train. The layout keeps pointing at the same modules, because peft injects
  adapters in place. `outputs.save_model` merges the adapters, so a saved model is a plain encoder.
"""
from __future__ import annotations

import logging
import math

from torch import nn

from unfreeze.config.schema import FreezeConfig
from unfreeze.errors import ConfigError, UnfreezeError
from unfreeze.strategies.base import FreezePlan
from unfreeze.model.heads import EncoderClassifier
from unfreeze.train.optim import parameter_groups

log = logging.getLogger(__name__)


def apply_advanced(model: EncoderClassifier, cfg: FreezeConfig) -> FreezePlan:
    """The plan for `llrd`, `gradual` or `lora` (backbone already frozen, head already trainable)."""
    biases_only = bool(getattr(cfg, "bitfit", False))
    if biases_only and cfg.strategy != "llrd":
        raise ConfigError(f"freeze: `bitfit: true` combines with llrd only (biases trained with layer-wise LR "
                          f"decay); {cfg.strategy} does not take it")
    if cfg.strategy == "llrd":
        return apply_llrd(model, biases_only)
    if cfg.strategy == "gradual":
        return start_gradual(model, cfg)
    if cfg.strategy == "lora":
        return apply_lora(model, cfg)
    raise ConfigError(f"freeze.strategy {cfg.strategy!r} is not an advanced strategy")


# ---------------------------------------------------------------------------------------------------------
# Layer-wise learning-rate decay (the LRs themselves: optim.parameter_groups)


def apply_llrd(model: EncoderClassifier, biases_only: bool = False) -> FreezePlan:
    n = model.layout.num_layers
    if biases_only:
        train_biases(model.backbone)
    else:
        model.backbone.requires_grad_(True)
    return FreezePlan("llrd", list(range(n)), True, 0, biases_only=biases_only)


def train_biases(module: nn.Module) -> None:
    """Make every `bias` parameter below `module` trainable (found by attribute name, any architecture)."""
    for sub in module.modules():
        bias = sub._parameters.get("bias")
        if isinstance(bias, nn.Parameter):
            bias.requires_grad_(True)


# ---------------------------------------------------------------------------------------------------------
# Gradual unfreezing


def start_gradual(model: EncoderClassifier, cfg: FreezeConfig) -> FreezePlan:
    """Epoch 0 of ULMFiT: the head (+ final norms and pooler, like `top_k`) and no encoder layer."""
    layout = model.layout
    if cfg.train_pooler:
        for module in layout.after + ([layout.pooler] if layout.pooler is not None else []):
            module.requires_grad_(True)
    return FreezePlan("gradual", [], False, 0)


class GradualUnfreezer:
    """The ULMFiT schedule for one run: after `floor(epoch / every_epochs)` steps of the schedule, that many
    *units* are trainable — unit i < L is encoder layer L−1−i (top first), unit L the embeddings (+ modules that
    run before the layers, e.g. DeBERTa's relative embeddings).

    `plan` always reflects what trains (so `set_train_mode` keeps frozen layers in eval mode), `unfrozen` counts
    unfrozen encoder layers (logged per evaluation in history.csv)."""

    def __init__(self, run):
        self.model: EncoderClassifier = run.model
        self.config = run.config
        freeze = run.config.freeze
        self.every = float(freeze.every_epochs)
        self.every_steps = freeze.every_steps  # when set, stages follow optimizer steps, not epochs
        self.per_stage = freeze.layers_per_stage
        self.plan = FreezePlan("gradual", list(run.plan.trainable_layers), run.plan.embeddings_trainable, 0)
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


def add_to_optimizer(model: EncoderClassifier, config, optimizer, params: list[nn.Parameter],
                     scheduler=None) -> list[dict]:
    """Add `params` (those not already in the optimizer) as new groups built by `optim.parameter_groups`, so the
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


# ---------------------------------------------------------------------------------------------------------
# LoRA


def apply_lora(model: EncoderClassifier, cfg: FreezeConfig) -> FreezePlan:
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
    return FreezePlan("lora", list(range(layout.num_layers)), False, 0)


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
