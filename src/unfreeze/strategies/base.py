"""The strategy interface and registry, and what every strategy shares.

A strategy decides which encoder parameters train. Each one is an object in its own file of this package that
answers every question the rest of the code asks about it — how its config is checked and labelled, how it is
applied to a model, whether a frozen prefix can be cached, how many layers it trains, the per-depth LR factor,
its per-step hooks — so nothing outside `strategies/` branches on a strategy's name. Adding a strategy is one
new file with a `@register`-ed `Strategy` subclass (found automatically) plus its tests.

Plans are computed from the discovered layout (never from parameter names) and applied by setting
`requires_grad`; the plan is kept so the loop can put frozen modules in eval mode (no dropout noise in what is
frozen) and the activation cache can tell whether a frozen prefix exists.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from unfreeze.errors import ConfigError


@dataclass
class FreezePlan:
    """`frozen_prefix`: how many bottom layers (with the embeddings) are frozen and untouched by training —
    the boundary the activation cache can start from. 0 when nothing below the layers is frozen."""

    strategy: str
    trainable_layers: list[int]
    embeddings_trainable: bool
    frozen_prefix: int
    biases_only: bool = False

    @property
    def cacheable(self) -> bool:
        return self.frozen_prefix > 0


class Strategy:
    """One way of choosing what trains. Subclasses set `name` and override what differs from these defaults
    (everything trains, no cache, one process or many, no per-step hooks)."""

    name: ClassVar[str]
    #: `freeze: {<name>: value}` with a scalar value sets this config field (top_k → k, llrd → decay)
    main_field: ClassVar[str | None] = None
    #: accepts `bitfit: true` (train only the bias terms within what it trains)
    takes_bitfit_flag: ClassVar[bool] = False
    #: the trainable set grows during training (parameters frozen at the start may change later)
    changes_frozen_set: ClassVar[bool] = False
    #: why it cannot run data-parallel over several processes; None = it can
    one_process_reason: ClassVar[str | None] = None
    #: fully described by how many top layers train (plotted on the "unfrozen layers" axis)
    depth_only: ClassVar[bool] = False
    #: only meaningful on pretrained layers (freezing, decaying or adapting them); False where it also makes sense
    #: for an encoder trained from scratch (`model.name: bilstm`)
    needs_pretrained_layers: ClassVar[bool] = True
    #: treats layers at different depths differently (freezes some, decays their LR, stops at one), which is
    #: impossible where one set of weights serves every depth (ALBERT); such models are refused
    needs_distinct_layers: ClassVar[bool] = False

    def from_text(self, text: str) -> dict | None:
        """The config dict a YAML string means for this strategy (`head`, `top_3` …), or None if not ours."""
        return {"strategy": self.name} if text == self.name else None

    def check(self, cfg) -> None:
        """Raise ValueError for a config this strategy cannot run (pydantic reports it with the key path)."""
        if cfg.bitfit and not self.takes_bitfit_flag:
            raise ValueError(f"freeze: `bitfit: true` combines with llrd only (biases trained with layer-wise LR "
                             f"decay), not with {self.name}; plain BitFit is `freeze: bitfit`")

    def label(self, cfg) -> str:
        """Short human name used in tables and plot legends."""
        return self.name

    def layer_decay(self, cfg) -> float:
        """Per-depth LR factor (LR of depth d = lr × factor^(L + 1 − d)); 1 = one LR for the whole encoder."""
        return 1.0

    def cached_top(self, cfg) -> int | None:
        """How many top layers train above a prefix that never changes (0 = only the head), or None when no
        prefix stays constant. Decides, before any model is loaded, which cache boundaries a study needs."""
        return None

    def trained_layers(self, cfg, num_layers: int | None) -> int | None:
        """Encoder layers that train (the `unfrozen_layers` column of results.csv, the cost estimate)."""
        return num_layers

    def stepped_share(self, cfg, num_layers: int, embedding_share: float) -> float:
        """For the cost estimate: the share of the backbone's parameters the optimizer updates every step (AdamW
        time grows with it). Default: the trained layers' share of the layer parameters, embeddings frozen."""
        return (1 - embedding_share) * (self.trained_layers(cfg, num_layers) or 0) / max(num_layers, 1)

    def run_depth(self, cfg, num_layers: int) -> int:
        """For the cost estimate: how many encoder layers a forward pass runs (`layer: k` stops at k)."""
        return num_layers

    def no_cache_reason(self, cfg) -> str:
        return (f"strategy `{self.label(cfg)}` trains parameters inside the frozen prefix or changes it during "
                "training")

    def apply(self, model, cfg) -> FreezePlan:
        """Set `requires_grad` on `model` (backbone already frozen, head trainable) and return the plan."""
        raise NotImplementedError

    def schedule(self, model, config, plan) -> Any | None:
        """Per-epoch / per-step hooks for one run (`on_epoch_start`, `on_step`, `plan`), or None: `model` (the
        EncoderClassifier), `config` (the RunConfig: `freeze:` and the optimizer settings), `plan` (the FreezePlan
        at the start)."""
        return None


REGISTRY: dict[str, Strategy] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available under `cls.name`."""
    REGISTRY[cls.name] = cls()
    return cls


def strategy_names() -> list[str]:
    return list(REGISTRY)


def get_strategy(name: str) -> Strategy:
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(REGISTRY), n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"freeze: unknown strategy {name!r}{hint} (known: {', '.join(REGISTRY)})") from None


# ---------------------------------------------------------------------------------------------------------
# What every strategy shares


def apply_freeze(model, cfg) -> FreezePlan:
    """Freeze the backbone, make the head trainable, then let the strategy unfreeze what it trains."""
    strategy = get_strategy(cfg.strategy)
    try:
        strategy.check(cfg)  # configs are checked when parsed; this guards callers that build one by hand
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if strategy.needs_distinct_layers and getattr(model.layout, "shared_depths", False):
        kind = getattr(getattr(model.backbone, "config", None), "model_type", type(model.backbone).__name__)
        raise ConfigError(f"freeze: `{strategy.label(cfg)}` on model type {kind!r}: it shares one layer's weights "
                          "across depth (ALBERT-style): top_k / gradual / llrd / layer cannot freeze part of it; "
                          "use head, all, bitfit or lora")
    model.backbone.requires_grad_(False)
    model.head.requires_grad_(True)
    plan = strategy.apply(model, cfg)
    layout = model.layout
    if model.pooling != "pooler" and layout.pooler is not None:
        layout.pooler.requires_grad_(False)  # unused by cls/mean pooling: do not count it as trainable
    return plan


def train_top_modules(model) -> None:
    """The modules that run after the last layer (final norms) and the pooler: they belong with the head."""
    layout = model.layout
    for module in layout.after + ([layout.pooler] if layout.pooler is not None else []):
        module.requires_grad_(True)


def train_biases(module: nn.Module) -> None:
    """Make every `bias` parameter below `module` trainable (found by attribute name, any architecture)."""
    for sub in module.modules():
        bias = sub._parameters.get("bias")
        if isinstance(bias, nn.Parameter):
            bias.requires_grad_(True)


def set_train_mode(model, plan: FreezePlan) -> None:
    """Train mode for what trains, eval mode for what is frozen (dropout off in frozen layers)."""
    model.train()
    layout = model.layout
    if not plan.embeddings_trainable:
        layout.embeddings.eval()
        for module in layout.before:
            module.eval()
    trainable = set(plan.trainable_layers)
    for i, layer in enumerate(layout.layers):
        if i not in trainable:
            layer.eval()
    # Any other frozen part too: a module whose parameters all stay frozen (DeBERTa-v2's layer-0 convolution
    # block holds its own dropout and is neither embeddings nor a layer) must not add dropout noise — the
    # activation cache computes it in eval mode, and the uncached path must give the same numbers.
    for module in model.backbone.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
