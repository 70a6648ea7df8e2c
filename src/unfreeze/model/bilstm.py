"""A non-transformer baseline encoder: token embeddings + bidirectional LSTM, shaped like a Hugging Face encoder.

Why this shape: unfreeze's head (`EncoderClassifier`) reads `backbone(input_ids=..., attention_mask=...)
.last_hidden_state` and `backbone.config.hidden_size`; probing and the activation cache read
`output_hidden_states=True` → `hidden_states[b]` = the input of layer `b`. This module answers all of that, so an
LSTM runs in the same study grid (optimizers × LR × batch size) with the same tokenizer, batching, `max_length`
and NER word alignment as the transformers it is compared against.

What a caller can rely on:
- padding never influences a state: every layer runs on a `PackedSequence` built from the attention-mask
  lengths, and padded positions of every returned state are exactly 0;
- the module tree is `embeddings` (owning `get_input_embeddings()`) + `layers` (an `nn.ModuleList` of identical
  `BiLSTMLayer`s, each taking the hidden states as its first argument), so a structure-discovery routine that
  looks for "the child owning the input embeddings" and "the largest ModuleList of identical blocks" finds
  both, and a pre-hook that swaps the first argument of a layer can start the stack at any layer;
- weights are saved as safetensors + a JSON config (`config.json` with `"model_type": "bilstm"`), never pickles.

Only one freezing strategy is meaningful for it (`all`): nothing in it is pretrained, so the run config refuses
strategies whose `needs_pretrained_layers` is set (docs/config.md, "BiLSTM baseline").
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from unfreeze.config.schema import BILSTM_NAME as MODEL_NAME, is_bilstm_name
from unfreeze.errors import ConfigError, UnfreezeError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
MODEL_TYPE = "bilstm"


# ---------------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class BiLSTMConfig:
    """Sizes of a BiLSTM encoder.

    `hidden_size` is the OUTPUT width (both directions concatenated), i.e. what the head sees, so the head's
    `model.config.hidden_size` is right without special-casing; each direction has `hidden_size // 2` units, so
    it must be even. `vocab_size` / `pad_token_id` are normally filled from the tokenizer by `build_bilstm`.
    `type_vocab_size = 0` tells unfreeze's `uses_token_types` that segment ids are not used (pairs are still
    encoded as `[CLS] a [SEP] b [SEP]`, the LSTM sees the separator)."""

    vocab_size: int = 0
    embedding_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.1
    pad_token_id: int = 0

    model_type: ClassVar[str] = MODEL_TYPE
    type_vocab_size: ClassVar[int] = 0
    is_encoder_decoder: ClassVar[bool] = False
    is_decoder: ClassVar[bool] = False

    @property
    def num_hidden_layers(self) -> int:
        """Same name as transformers' configs: layer counts, estimates and probes read it."""
        return self.num_layers

    @property
    def per_direction(self) -> int:
        return self.hidden_size // 2

    def validate(self) -> "BiLSTMConfig":
        """Refuse sizes nn.LSTM would reject later with a less readable message; returns self for chaining."""
        checks = [
            (self.vocab_size > 0, f"vocab_size={self.vocab_size}: must be > 0 (build_bilstm takes it from the tokenizer)"),
            (self.embedding_dim > 0, f"embedding_dim={self.embedding_dim}: must be > 0"),
            (self.hidden_size > 0 and self.hidden_size % 2 == 0,
             f"hidden_size={self.hidden_size}: must be a positive even number (output width = 2 × units per direction)"),
            (self.num_layers >= 1, f"num_layers={self.num_layers}: must be >= 1"),
            (0.0 <= self.dropout < 1.0, f"dropout={self.dropout}: must be in [0, 1)"),
            (0 <= self.pad_token_id < max(self.vocab_size, 1),
             f"pad_token_id={self.pad_token_id}: must be a token id below vocab_size={self.vocab_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"bilstm config: {message}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `model_type` is included so a saved folder says what it holds."""
        return {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "bilstm config") -> "BiLSTMConfig":
        """Strict: an unknown key is an error (a typo must not silently fall back to a default)."""
        data = dict(data)
        kind = data.pop("model_type", MODEL_TYPE)
        data.pop("format_version", None)
        data.pop("id2label", None), data.pop("label2id", None)  # the run's labels, written for other readers
        if kind != MODEL_TYPE:
            raise UnfreezeError(f"{source}: model_type is {kind!r}, expected {MODEL_TYPE!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UnfreezeError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**data).validate()


# ---------------------------------------------------------------------------------------------------------
# Modules


class BiLSTMEmbeddings(nn.Module):
    """Token embeddings + dropout. No positions: the recurrence is the order signal."""

    def __init__(self, cfg: BiLSTMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=cfg.pad_token_id)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.word_embeddings(input_ids))


class BiLSTMLayer(nn.Module):
    """One bidirectional LSTM layer on packed sequences, then dropout (0 on the top layer: the head has its own).

    `forward(hidden_states, lengths)`: hidden states first, so a forward pre-hook can substitute them."""

    def __init__(self, input_size: int, per_direction: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(input_size, per_direction, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        _init_forget_bias(self.lstm)

    def forward(self, hidden_states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(hidden_states, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=hidden_states.shape[1])
        return self.dropout(out)


def _init_forget_bias(lstm: nn.LSTM) -> None:
    """Forget-gate bias 1 (Jozefowicz et al. 2015): gradients survive long sequences from the first step.
    PyTorch gate order is i, f, g, o and the two bias vectors add, so set b_ih[f] = 1 and b_hh[f] = 0."""
    h = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("bias_ih"):
                param[h:2 * h].fill_(1.0)
            elif name.startswith("bias_hh"):
                param[h:2 * h].fill_(0.0)


class BiLSTMEncoder(nn.Module):
    """Embeddings + `num_layers` BiLSTM layers → per-token states (batch, tokens, hidden_size).

    Accepts the keyword arguments unfreeze passes to a transformer; `token_type_ids` is accepted and ignored.
    The attention mask must be right-padded (ones, then zeros), which is what unfreeze's collator produces;
    anything else is refused rather than silently mis-packed."""

    def __init__(self, config: BiLSTMConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.embeddings = BiLSTMEmbeddings(config)
        widths = [config.embedding_dim] + [config.hidden_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            BiLSTMLayer(width, config.per_direction, config.dropout if i < config.num_layers - 1 else 0.0)
            for i, width in enumerate(widths)
        )

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool = False):
        """A transformers `BaseModelOutput` (imported here so config checks can import this module cheaply)."""
        from transformers.modeling_outputs import BaseModelOutput

        del token_type_ids  # no segment embeddings: see BiLSTMConfig
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = real_lengths(attention_mask)
        hidden = self.embeddings(input_ids)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, lengths)
            states.append(hidden)
        if bool((lengths == 0).any()):
            hidden = hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)  # an all-padding row stays all-zero
            states[-1] = hidden
        return BaseModelOutput(last_hidden_state=hidden,
                               hidden_states=tuple(states) if output_hidden_states else None)

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True, **_: Any) -> None:
        """Same call as a transformers model, so unfreeze's `save_model` needs no branch for saving."""
        save_bilstm(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **_: Any) -> "BiLSTMEncoder":
        return load_bilstm(folder)


def real_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-row count of real tokens, on the CPU as int64 (what `pack_padded_sequence` wants).

    Packing by counts is only right when the real tokens come first; a left-padded or holed mask would pack the
    wrong positions, so it is refused."""
    mask = attention_mask.to(torch.bool)
    lengths = mask.sum(1)
    expected = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    if not torch.equal(mask, expected):
        raise UnfreezeError("bilstm: attention_mask is not right-padded (real tokens must come first); "
                            "set tokenizer.padding_side = 'right'")
    return lengths.to("cpu", torch.int64)


# ---------------------------------------------------------------------------------------------------------
# Building, saving, loading


def build_bilstm(tokenizer, cfg: BiLSTMConfig | Mapping[str, Any] | None = None, *,
                 init_embeddings_from: str | Path | None = None) -> BiLSTMEncoder:
    """A fresh encoder for `tokenizer` (any Hugging Face tokenizer with a pad token).

    `vocab_size` = `len(tokenizer)` (added tokens included, unlike `tokenizer.vocab_size`) and `pad_token_id`
    come from the tokenizer and override whatever `cfg` says. Random init uses torch's global RNG: call
    `torch.manual_seed` first for a reproducible model. With `init_embeddings_from` (a model folder with
    safetensors weights, normally the tokenizer's own transformer), the embedding matrix starts from that
    model's input embeddings, see `load_word_embeddings`."""
    if tokenizer.pad_token_id is None:
        raise UnfreezeError(f"bilstm: tokenizer {type(tokenizer).__name__} has no pad token; "
                            "use a tokenizer folder that defines one (BERT/ELECTRA/RoBERTa tokenizers do)")
    from_tokenizer = {"vocab_size": len(tokenizer), "pad_token_id": int(tokenizer.pad_token_id)}
    if cfg is None:
        cfg = BiLSTMConfig(**from_tokenizer)
    elif isinstance(cfg, Mapping):
        cfg = BiLSTMConfig.from_dict({**cfg, **from_tokenizer})
    else:
        cfg = dataclasses.replace(cfg, **from_tokenizer)
    model = BiLSTMEncoder(cfg)
    if init_embeddings_from is not None:
        table = load_word_embeddings(init_embeddings_from, cfg.embedding_dim)
        rows = min(table.shape[0], cfg.vocab_size)
        with torch.no_grad():
            model.get_input_embeddings().weight[:rows] = table[:rows]
    return model


def save_bilstm(model: BiLSTMEncoder, folder: str | Path) -> None:
    """`folder/config.json` + `folder/model.safetensors`; the folder is created. Tokenizer files are the
    caller's (unfreeze saves the tokenizer beside every backbone already)."""
    from safetensors.torch import save_file

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(target / WEIGHTS_FILE), metadata={"format": "pt", "model_type": MODEL_TYPE})
    (target / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n", encoding="utf-8")


def is_bilstm_folder(folder: str | Path) -> bool:
    """True when `folder/config.json` declares `"model_type": "bilstm"`: check this before `AutoConfig`, which
    would reject the unknown model type."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (json.JSONDecodeError, AttributeError):
        return False


def load_bilstm(folder: str | Path) -> BiLSTMEncoder:
    """The encoder `save_bilstm` wrote, bit-identical, in eval mode (as transformers' `from_pretrained`
    returns it); every tensor must match (strict), else a one-line error."""
    from safetensors.torch import load_file

    base = Path(folder)
    config_path, weights_path = base / CONFIG_FILE, base / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise UnfreezeError(f"{path}: missing; a bilstm folder needs {CONFIG_FILE} and {WEIGHTS_FILE} "
                                "(written by save_bilstm)")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UnfreezeError(f"{config_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    model = BiLSTMEncoder(BiLSTMConfig.from_dict(raw, source=str(config_path)))
    state = load_file(str(weights_path))
    missing, unexpected = _key_mismatch(model.state_dict(), state)
    if missing or unexpected:
        raise UnfreezeError(f"{weights_path}: does not match {config_path} (missing {missing[:3]}, unexpected "
                            f"{unexpected[:3]}); save both with save_bilstm")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[-1].strip()
        raise UnfreezeError(f"{weights_path}: tensor shapes do not match {config_path}: {first}") from None
    return model.eval()


def _key_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(found)), sorted(set(found) - set(expected))


# ---------------------------------------------------------------------------------------------------------
# Optional: start the embeddings from a transformer's input embeddings


def load_word_embeddings(folder: str | Path, embedding_dim: int) -> torch.Tensor:
    """(vocab, embedding_dim) float32 from the `*word_embeddings.weight` tensor of `folder/model.safetensors`.

    Only that one tensor is read (safetensors opens lazily), so this costs well under a second even for a
    large model. Equal widths: the matrix as is. Narrower target: its top `embedding_dim` principal components
    (the projection that keeps the most of the tokens' variance, i.e. of what distinguishes them). Either way
    the result is rescaled to an overall standard deviation of 1, the scale of the random init, so a learning
    rate that suits one init suits the other."""
    from safetensors import safe_open

    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise UnfreezeError(f"{path}: missing; init_embeddings_from needs a model folder with {WEIGHTS_FILE}")
    with safe_open(str(path), framework="pt") as handle:
        names = sorted(k for k in handle.keys() if k.endswith("word_embeddings.weight"))
        if not names:
            raise UnfreezeError(f"{path}: no '*word_embeddings.weight' tensor; pass a BERT-like model folder "
                                "or leave init_embeddings_from unset")
        table = handle.get_tensor(names[0]).to(torch.float32)
    if table.shape[1] < embedding_dim:
        raise UnfreezeError(f"{path}: embeddings are {table.shape[1]} wide, fewer than embedding_dim="
                            f"{embedding_dim}; set embedding_dim <= {table.shape[1]}")
    if table.shape[1] > embedding_dim:
        table = principal_components(table, embedding_dim)
    return table / table.std().clamp(min=1e-12)


def principal_components(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """Scores of the centred rows on the top-k principal axes (as sklearn's PCA.fit_transform), with each axis'
    sign fixed so its largest-magnitude loading is positive: same input → same output on every machine."""
    centred = matrix - matrix.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    axes = vh[:k]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    return (centred.double() @ (axes * signs).T).to(matrix.dtype)


def model_family(name: str) -> str:
    """The family a `model.name` belongs to (`bilstm` or `transformer`): results.csv's `model_family` column, so
    a report can leave the LSTM out of questions that only make sense for pretrained layer stacks."""
    return MODEL_NAME if is_bilstm_name(name) else "transformer"
