"""Load a pretrained encoder offline and find its parts from the module structure, for any architecture.

Notebooks freeze by parsing parameter names (`name.split('.')[2]`), which works for one architecture. Here the
layer stack is *found*: the embedding module is the model child that owns `get_input_embeddings()`, the layer
stack is the largest `nn.ModuleList` of identical blocks, and every other parameterised module is placed
before or after the layers by tracing one tiny forward pass. This covers BERT, DistilBERT, RoBERTa, XLM-R,
ELECTRA (incl. its `embeddings_project`), DeBERTa-v2 (shared relative embeddings), MiniLM and MPNet.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from unfreeze.assets import MODELS, resolve_model_path
from unfreeze.model.bilstm import BiLSTMConfig, build_bilstm, is_bilstm_name
from unfreeze.model.vocab import TRAIN_VOCAB, is_train_vocab, train_tokenizer, training_texts
from unfreeze.config.schema import ModelConfig
from unfreeze.errors import AssetMissingError, UnfreezeError

#: Config attributes that hold attention-probability / hidden dropout, across architectures.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout")


@dataclass
class EncoderLayout:
    """The parts of an encoder that freezing strategies and the activation cache reason about."""

    embeddings: nn.Module
    layers: nn.ModuleList
    layers_owner: nn.Module
    layers_attr: str
    before: list[nn.Module] = field(default_factory=list)  # run before/with the layers (ELECTRA projection, DeBERTa rel. embeddings)
    after: list[nn.Module] = field(default_factory=list)  # run after the last layer (final norms)
    pooler: nn.Module | None = None
    #: how a layer returns its output: 0 = the hidden states tensor, n = a tuple of n items, states first
    layer_output: int = 0
    #: the layer stack runs the same parameters at several depths (ALBERT: one layer group called L times), so
    #: no depth can be frozen or trained apart from the others
    shared_depths: bool = False

    @property
    def num_layers(self) -> int:
        return len(self.layers)


def load_backbone(cfg: ModelConfig, seed: int = 0, training=None):
    """(model, tokenizer) from a built-in alias, a local folder or a hub id; never downloads when offline.

    `model.name: bilstm` builds a fresh BiLSTM over `model.tokenizer`'s vocabulary instead, its random weights
    drawn from `seed` (the run seed) without touching the global RNG, so the same config + seed gives the same
    model whatever ran before it in the process. With `model.tokenizer: train` that vocabulary is built from
    `training`, the TRAINING split (a sentence or token split; model/vocab.py): callers pass `data.train`, never
    val/test. Transformers ignore `training`."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if is_bilstm_name(cfg.name):
        return _build_bilstm(cfg, seed, training)
    source = resolve_model_path(cfg.name)
    local = Path(source).is_dir()
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0") not in ("0", "", "false")
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local or offline)
        apply_dropout_overrides(config, cfg)
        model = AutoModel.from_pretrained(source, config=config, local_files_only=local or offline,
                                          use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local or offline, use_fast=True)
    except (OSError, ValueError) as exc:
        raise AssetMissingError(_missing_model_message(cfg.name, local, offline, exc)) from None
    return model, tokenizer


def load_backbone_named(name: str):
    """(model, tokenizer) for a bare `model.name`, every other model key at its default (`unfreeze inspect`'s
    token lengths: `tasks.inspect_data(..., load_model=load_backbone_named)`)."""
    return load_backbone(ModelConfig(name=name))


def _build_bilstm(cfg: ModelConfig, seed: int, training=None):
    tokenizer = _bilstm_tokenizer(cfg, training)
    sizes = BiLSTMConfig(embedding_dim=cfg.embedding_dim, hidden_size=cfg.lstm_hidden, num_layers=cfg.lstm_layers,
                         dropout=0.1 if cfg.hidden_dropout is None else cfg.hidden_dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_bilstm(tokenizer, sizes)
    return model, tokenizer


def _bilstm_tokenizer(cfg: ModelConfig, training=None):
    from transformers import AutoTokenizer

    if is_train_vocab(cfg.tokenizer):
        if training is None:
            raise UnfreezeError(f"model.tokenizer: {TRAIN_VOCAB} builds the vocabulary from the training split, "
                                "which this command does not load; train the model (unfreeze run / study) or "
                                "name a tokenizer (a built-in alias or a folder)")
        return train_tokenizer(training_texts(training), cfg.vocab_size, cfg.vocab_min_count)
    source = resolve_model_path(cfg.tokenizer)
    local = Path(source).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, use_fast=True)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = "folder" if local else "name (not a local folder or built-in alias)"
        raise AssetMissingError(f"model.tokenizer {cfg.tokenizer!r}: tokenizer {where} could not be loaded: "
                                f"{first}. Use a built-in alias ({', '.join(MODELS)}) or a folder with tokenizer "
                                "files") from None
    return tokenizer


def _missing_model_message(name: str, local: bool, offline: bool, exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if local:
        return f"model folder {name!r} could not be loaded (needs config.json, model.safetensors, tokenizer): {first}"
    builtins = ", ".join(f"{k} ({v.install_line})" for k, v in MODELS.items())
    where = "offline (HF_HUB_OFFLINE=1), so nothing is downloaded" if offline else "from the hub"
    return (f"model {name!r} is not a local folder and could not be loaded {where}: {first}. "
            f"Use a folder with safetensors weights or a built-in alias: {builtins}")


def apply_dropout_overrides(config, cfg: ModelConfig) -> None:
    for keys, value in ((ATTENTION_DROPOUT_KEYS, cfg.attention_dropout), (HIDDEN_DROPOUT_KEYS, cfg.hidden_dropout)):
        if value is None:
            continue
        present = [k for k in keys if hasattr(config, k)]
        if not present:
            raise UnfreezeError(f"model {cfg.name!r}: its config has none of {keys}; cannot set that dropout")
        for key in present:
            setattr(config, key, value)


def hidden_size(model) -> int:
    return int(model.config.hidden_size)


# ---------------------------------------------------------------------------------------------------------
# Structure discovery


def discover_layout(model: nn.Module) -> EncoderLayout:
    check_is_encoder(model)
    embeddings = _embedding_module(model)
    owner, attr, layers = _layer_stack(model)
    pooler = getattr(model, "pooler", None)
    pooler = pooler if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()) else None
    covered = {id(p) for m in (embeddings, layers, pooler) if m is not None for p in m.parameters()}
    loose = _loose_modules(model, covered)
    trace = _trace(model, layers, loose)
    before, after = _place_loose_modules(trace, layers, loose)
    return EncoderLayout(embeddings, layers, owner, attr, before, after, pooler,
                         layer_output=trace.layer_output, shared_depths=_shares_depths(model, layers, trace))


def check_is_encoder(model: nn.Module) -> None:
    """Refuse decoder-only and encoder-decoder models: the largest block stack of a GPT-2 or a T5 would be found
    just as well, but its causal (or cross-) attention makes every pooled / per-token reading of this library
    wrong. Encoders are the model types transformers can load as a masked LM (BERT, RoBERTa, ELECTRA, …)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL

    config = getattr(model, "config", None)
    if config is None:
        return
    kind = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False):
        raise UnfreezeError(f"model type {kind!r} is an encoder-decoder; unfreeze fine-tunes encoders (BERT, "
                            "RoBERTa, ELECTRA, DeBERTa, MiniLM …)")
    if getattr(config, "is_decoder", False) or (kind in CAUSAL and kind not in MASKED):
        raise UnfreezeError(f"model type {kind!r} is a decoder (causal attention); unfreeze fine-tunes encoders "
                            "(BERT, RoBERTa, ELECTRA, DeBERTa, MiniLM …)")


def _embedding_module(model: nn.Module) -> nn.Module:
    target = model.get_input_embeddings()
    for _, child in model.named_children():
        if any(m is target for m in child.modules()):
            return child
    raise UnfreezeError(f"{type(model).__name__}: cannot find the module holding the input embeddings")


def _layer_stack(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The largest ModuleList whose children are all of one class: the transformer blocks."""
    best = None
    for owner_name, owner in model.named_modules():
        for attr, child in owner.named_children():
            if not isinstance(child, nn.ModuleList) or len(child) == 0:
                continue
            if len({type(block) for block in child}) != 1:
                continue
            size = sum(p.numel() for p in child.parameters())
            if best is None or size > best[0]:
                best = (size, owner, attr, child)
    if best is None:
        raise UnfreezeError(
            f"unsupported architecture {type(model).__name__}: no stack of transformer layers found "
            "(supported: BERT, DistilBERT, RoBERTa, XLM-R, ELECTRA, DeBERTa-v2, MiniLM, MPNet and alike)"
        )
    return best[1], best[2], best[3]


def _loose_modules(model: nn.Module, covered: set[int]) -> list[nn.Module]:
    """Modules that directly own a parameter not inside embeddings, layers or pooler."""
    found: list[nn.Module] = []
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in covered]
        if own and all(m is not module for m in found):
            found.append(module)
    return found


@dataclass
class _Trace:
    order: list[int]  # ids of the watched modules, in call order
    layer_output: int  # see EncoderLayout.layer_output


def _trace(model, layers, loose) -> _Trace:
    """One tiny eval-mode forward, recording the call order of the loose modules and every layer, and the form
    of a layer's output."""
    order: list[int] = []
    forms: list[int] = []

    def seen(mod, args, out):
        order.append(id(mod))
        if mod is layers[0] and not forms:
            forms.append(len(out) if isinstance(out, tuple) else 0)

    watched = list({id(m): m for m in [*loose, *layers]}.values())
    hooks = [m.register_forward_hook(seen) for m in watched]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            ids = torch.tensor([[1, 2, 3]], device=next(model.parameters()).device)
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return _Trace(order, forms[0] if forms else 0)


def _shares_depths(model, layers, trace: _Trace) -> bool:
    """True when one set of layer parameters serves several depths: a layer module runs more than once in one
    forward, or two positions of the stack hold the same parameter tensors."""
    if any(trace.order.count(id(layer)) > 1 for layer in layers):
        return True
    params = [id(p) for layer in layers for p in layer.parameters()]
    return len(params) != len(set(params))


def _place_loose_modules(trace: _Trace, layers, loose) -> tuple[list[nn.Module], list[nn.Module]]:
    """A loose module first called after the last layer is `after`, else `before`."""
    if not loose:
        return [], []
    order = trace.order
    last_layer = max((i for i, x in enumerate(order) if x == id(layers[-1])), default=-1)
    first_call = {}
    for i, x in enumerate(order):
        first_call.setdefault(x, i)
    after = [m for m in loose if first_call.get(id(m), -1) > last_layer]
    before = [m for m in loose if m not in after]
    return before, after


# ---------------------------------------------------------------------------------------------------------
# Running the top of the stack on stored hidden states


@contextmanager
def start_at_layer(layout: EncoderLayout, start: int, hidden_states: torch.Tensor):
    """Within this context a normal forward of the model skips layers `< start` and feeds `hidden_states` to
    layer `start` instead of what the (cheap, frozen) embeddings computed.

    The layer list keeps its length and order: the skipped layers are passed through (they return their input
    without computing anything), so code that acts on a layer *index* still sees the right one — DeBERTa-v2 with
    `conv_kernel_size > 0` mixes a convolution of the embeddings into layer 0's output, and a re-indexed list
    made it mix it into layer `start`'s. Layer `start`'s input is replaced by `hidden_states`, so whatever the
    passed-through layers (and that convolution) produced below it is discarded. The model's own forward still
    builds the attention mask, relative positions etc., so this works for every architecture whose layers take
    the hidden states as their first argument (all encoders we support).
    """
    def inject(module, args, kwargs):
        if args:
            return (hidden_states, *args[1:]), kwargs
        key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
        return args, {**kwargs, key: hidden_states}

    layers = list(layout.layers)
    handle = layers[start].register_forward_pre_hook(inject, with_kwargs=True)
    try:
        with pass_through(layout, layers[:start]):
            yield
    finally:
        handle.remove()


@contextmanager
def stop_at_layer(layout: EncoderLayout, stop: int):
    """Within this context layers `>= stop` are passed through; yields a one-item list that receives the hidden
    states entering layer `stop` (exactly `output_hidden_states[stop]` of a full forward, before any final norm)
    once the model has run. `stop == num_layers` passes nothing through and captures nothing."""
    captured: list[torch.Tensor] = []
    layers = list(layout.layers)
    if stop >= len(layers):
        yield captured
        return

    def capture(module, args, kwargs):
        captured.append(args[0] if args else kwargs.get("hidden_states", next(iter(kwargs.values()))))

    handle = layers[stop].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with pass_through(layout, layers[stop:]):
            yield captured
    finally:
        handle.remove()


@contextmanager
def pass_through(layout: EncoderLayout, layers: list[nn.Module]):
    """Make `layers` return their input hidden states unchanged (in the output form a real layer of this model
    returns, see `EncoderLayout.layer_output`), without computing anything. Forward pre-hooks still run."""
    def skip(*args, **kwargs):
        states = args[0] if args else kwargs.get("hidden_states", next(iter(kwargs.values())))
        return states if layout.layer_output == 0 else (states, *([None] * (layout.layer_output - 1)))

    saved = [layer.__dict__.get("forward") for layer in layers]
    for layer in layers:
        layer.forward = skip
    try:
        yield
    finally:
        for layer, own in zip(layers, saved):
            if own is None:
                del layer.forward
            else:
                layer.forward = own


def weights_fingerprint(model: nn.Module) -> str:
    """Hash of every tensor in the state dict: the identity of a backbone's weights for cache keys."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()[:16]
