"""Typed configs for a run and a study, loaded from YAML and validated at the edge.

Every key is documented in `docs/config.md`. Unknown keys are errors that suggest the closest valid key, because a
misspelt `lerning_rate` silently ignored is how a study ends up measuring the default.
"""

from __future__ import annotations




from typing import Any, Literal, Union


from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from unfreeze.errors import ConfigError
from unfreeze.strategies import REGISTRY, get_strategy

#: `model.name` value that selects the BiLSTM baseline encoder (`model/bilstm.py`) instead of a pretrained
#: transformer; here, below `model/`, because the config checks it too (the layer order: docs/CONTRACTS.md)
BILSTM = BILSTM_NAME = "bilstm"


def is_bilstm_name(name: str) -> bool:
    """True for `model.name: bilstm`: the one place that knows the spelling, for config checks and reports."""
    return name == BILSTM_NAME




class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)



class SplitConfig(StrictModel):
    """Fractions carved (stratified, seeded) out of one file when val/test files are not given."""

    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)



def label_text(value: Any) -> Any:
    """The text form of a label given in YAML as a number (1 → "1", 2.0 → "2"); other values unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)



class HubConfig(StrictModel):
    """A data set read through `datasets.load_dataset`: a hub name (cached when offline) or a packaged builder
    (`csv`, `json`, `parquet`, … with `data_files`). `splits` maps our train/val/test to the data set's split
    expressions (slices allowed: `train[:90%]`); without it every split the data set has is read (`validation`
    / `dev` count as val) and missing val/test are carved from train by `data.split`."""

    path: str
    name: str | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    revision: str | None = None
    splits: dict[Literal["train", "val", "validation", "test"], str] | None = None

    @model_validator(mode="after")
    def _train_split(self) -> "HubConfig":
        if self.splits is not None and "train" not in self.splits:
            raise ValueError(f"data.hub.splits {self.splits}: name the `train` split (e.g. train: train)")
        if self.splits and {"val", "validation"} <= set(self.splits):
            raise ValueError("data.hub.splits: give `val` or `validation`, not both")
        return self


class DataConfig(StrictModel):
    dataset: str | None = None
    hub: HubConfig | None = None
    path: str | None = None
    train: str | None = None
    val: str | None = None
    test: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "disk", "conll"] = "auto"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    id_column: str | None = None
    split: SplitConfig = SplitConfig()
    train_size: int | None = Field(None, gt=0)
    split_seed: int = 0
    max_length: int | Literal["auto"] = "auto"
    max_length_percentile: float = Field(95.0, gt=0, le=100)
    max_length_cap: int = Field(512, gt=1)
    bad_rows: Literal["drop", "error"] = "drop"
    dedupe: bool = True
    near_duplicates: Literal["drop", "keep"] = "drop"  # val/test texts equal to a train text once normalised
    tfidf_analyzer: Literal["auto", "word", "char"] = "auto"  # TF-IDF baselines; auto: characters for CJK script
    positive_label: str | None = None
    # token classification
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    conll_tag_column: int = -1
    tag_scheme: Literal["auto", "iob1", "iob2", "ioe1", "ioe2", "iobes", "bioes", "bilou", "bmes",
                        "plain"] = "auto"
    label_all_subwords: bool = False
    stride: int = Field(32, ge=0)
    truncate: bool = False
    ignore_labels: list[str] = []
    fbeta: float = Field(1.0, gt=0)

    @field_validator("positive_label", "ignore_labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        """Labels are compared as text (a CSV's 0/1 column becomes "0"/"1"), so `positive_label: 1` means "1"."""
        return [label_text(v) for v in value] if isinstance(value, list) else label_text(value)

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        sources = [self.dataset is not None, self.path is not None, self.train is not None, self.hub is not None]
        if sum(sources) != 1:
            raise ValueError(
                "data: give exactly one of `dataset` (built-in name), `path` (one file, split by fractions), "
                "`train` (+ optional `val`/`test` files) or `hub` (datasets.load_dataset: {path: NAME, ...})"
            )
        if self.split.val + self.split.test >= 1:
            raise ValueError("data.split: val + test fractions must be below 1")
        return self



class ModelConfig(StrictModel):
    name: str = "minilm"
    pooling: Literal["cls", "mean", "pooler"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1)
    hidden: list[int] = []
    activation: Literal["gelu", "relu", "tanh"] = "gelu"
    attention_dropout: float | None = Field(None, ge=0, lt=1)
    hidden_dropout: float | None = Field(None, ge=0, lt=1)
    # `name: bilstm` only: a BiLSTM trained from scratch over this tokenizer's vocabulary (model/bilstm.py);
    # `train`: a WordPiece vocabulary built from the training split (model/vocab.py), sized by the two keys below
    tokenizer: str = "minilm"
    vocab_size: int = Field(20000, gt=5)
    vocab_min_count: int = Field(2, ge=1)
    embedding_dim: int = Field(128, gt=0)
    lstm_hidden: int = Field(256, gt=0)  # output width = both directions concatenated (even)
    lstm_layers: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _family_keys(self) -> "ModelConfig":
        """Checks for `name: bilstm` only. The BiLSTM keys are ignored by a transformer (so one study base can
        serve a grid over `model.name`); a transformer-only setting on the LSTM is refused rather than ignored;
        `cls` pooling is refused on the LSTM because position 0's forward state has read only `[CLS]` (the same
        vector for every text): half the pooled features would carry nothing."""
        if not is_bilstm_name(self.name):
            return self
        if self.lstm_hidden % 2:
            raise ValueError(f"model.lstm_hidden={self.lstm_hidden}: must be even (output width = 2 directions × "
                             "units)")
        if self.attention_dropout is not None:
            raise ValueError(f"model.attention_dropout: a {BILSTM} has no attention; use model.hidden_dropout")
        if self.pooling != "mean":
            raise ValueError(f"model.pooling: {self.pooling} on a {BILSTM} reads position 0, whose forward state "
                             "has seen only [CLS] (pooler: there is no pooler layer); use pooling: mean")
        return self



class FreezeConfig(StrictModel):
    """Which encoder parameters train: a strategy of `unfreeze.strategies` and its settings. Shorthands in YAML:
    `head`, `all`, `bitfit`, `top_2`, `{top_k: 2}`, `{gradual: {every_epochs: 1}}`, `{llrd: 0.8}`, `{lora: {r: 8}}`.
    What a setting means, and which combinations are valid, is each strategy's to say."""

    strategy: str = "all"
    k: int | None = Field(None, ge=0)
    train_pooler: bool = True
    every_epochs: float = Field(1.0, gt=0)
    every_steps: int | None = Field(None, gt=0)  # gradual: unfreeze by optimizer steps instead of epochs
    layers_per_stage: int = Field(1, gt=0)  # gradual: layers (units) unfrozen at each stage
    decay: float = Field(0.9, gt=0, le=1)
    r: int = Field(8, gt=0)
    alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = None
    bitfit: bool = False  # with llrd: train only the bias terms, at the layer-wise LRs

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            for strategy in REGISTRY.values():
                parsed = strategy.from_text(value)
                if parsed is not None:
                    return parsed
            return {"strategy": value}
        if isinstance(value, dict) and "strategy" not in value:
            value = dict(value)
            for name, strategy in REGISTRY.items():
                if name not in value or name in cls.model_fields:  # `bitfit: true` is a setting, not a strategy
                    continue
                inner = value.pop(name)
                if isinstance(inner, dict) or inner is None:
                    return {"strategy": name, **(inner or {}), **value}
                if strategy.main_field is not None:
                    return {"strategy": name, strategy.main_field: inner, **value}
                raise ValueError(f"freeze: `{name}` takes no value (write `freeze: {name}`)")
        return value

    @field_validator("strategy")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            get_strategy(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name

    @model_validator(mode="after")
    def _strategy_accepts(self) -> "FreezeConfig":
        get_strategy(self.strategy).check(self)
        return self

    @property
    def layer_decay(self) -> float:
        """The per-depth LR factor of the strategy (`decay` under `llrd`, and under `gradual` when `decay` is
        given: ULMFiT's discriminative learning rates); 1 otherwise."""
        return get_strategy(self.strategy).layer_decay(self)

    @property
    def label(self) -> str:
        """Short human name used in tables and plot legends."""
        return get_strategy(self.strategy).label(self)


class OptimConfig(StrictModel):
    name: Literal["adamw", "adam", "sgd", "rmsprop"] = "adamw"
    lr: float = Field(5e-5, gt=0)
    head_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)



class SchedulerConfig(StrictModel):
    name: Literal["linear", "cosine", "constant", "plateau"] = "linear"
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    factor: float = Field(0.5, gt=0, lt=1)
    patience: int = Field(1, ge=0)



class TrainConfig(StrictModel):
    epochs: int = Field(3, gt=0)
    batch_size: int = Field(16, gt=0)
    eval_batch_size: int = Field(64, gt=0)
    grad_accum_steps: int = Field(1, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_every_steps: int | None = Field(None, gt=0)
    early_stopping_patience: int | None = Field(None, gt=0)
    metric: str = "auto"
    class_weights: Union[Literal["none", "balanced"], dict[str, float]] = "none"
    loss_ignore_labels: list[str] = []
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    cache: Literal["auto", "on", "off"] = "auto"
    cache_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    cache_ram_mb: int = Field(2048, ge=0)

    @field_validator("loss_ignore_labels", mode="before")
    @classmethod
    def _ignored_as_text(cls, value: Any) -> Any:
        return [label_text(v) for v in value] if isinstance(value, list) else value

    @field_validator("class_weights", mode="before")
    @classmethod
    def _weight_keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for label, weight in value.items():
                if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                    raise ValueError(f"class weight of {label!r} must be a number >= 0, got {weight!r}")
            return {label_text(k): v for k, v in value.items()}
        return value

    @field_validator("cache", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare `on` / `off` as a boolean; they mean the modes of the same name here."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    length_grouping: bool = True
    max_tokens_per_batch: int | None = Field(None, gt=0)
    compile: bool = False
    threads: int | None = Field(None, gt=0)
    save_model: bool = True
    log_every_steps: int = Field(20, gt=0)



class TrackingConfig(StrictModel):
    """`tracking: [mlflow, tensorboard]` or `tracking: {backends: [...], experiment: NAME}`. Where a run is sent
    never changes its results, so this key is left out of a study run's identity hash (see grid.config_hash)."""
    backends: list[Literal["mlflow", "wandb", "tensorboard"]] = []
    experiment: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"backends": [value]}
        if isinstance(value, (list, tuple)):
            return {"backends": list(value)}
        return value


class ReportConfig(StrictModel):
    """`report:` in a study file. `min_effect`: the smallest gap in the selection metric worth finding; the
    report's "seeds to settle" plans the seeds per arm that find it with 80 % power (docs/statistics.md)."""
    min_effect: float = Field(0.01, gt=0, lt=1)  # = metrics.decide.MIN_EFFECT


class RunConfig(StrictModel):
    task: Literal["sequence", "token"] = "sequence"
    seed: int = Field(0, ge=0)
    data: DataConfig
    model: ModelConfig = ModelConfig()
    freeze: FreezeConfig = FreezeConfig()
    optim: OptimConfig = OptimConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _strategy_fits_model(self) -> "RunConfig":
        """A BiLSTM has nothing pretrained to keep, decay or adapt: only strategies without
        `needs_pretrained_layers` run on it. Refused here, so a study stops before any model loads."""
        if is_bilstm_name(self.model.name) and get_strategy(self.freeze.strategy).needs_pretrained_layers:
            fits = "/".join(n for n, s in REGISTRY.items() if not s.needs_pretrained_layers)
            others = "/".join(n for n, s in REGISTRY.items() if s.needs_pretrained_layers)
            raise ValueError(f"model {BILSTM} trains from scratch: use freeze: {fits} ({others} need pretrained "
                             "layers)")
        return self

    @property
    def selection_metric(self) -> str:
        """The validation metric that picks the best epoch (`train.metric`, `auto` resolved per task)."""
        return self.selection_metric_for(None)

    def selection_metric_for(self, detected_scheme: str | None) -> str:
        """`selection_metric` once the data is read: token tags detected as plain (no B-/I- scheme) have no
        entity spans to score, so `auto` selects on macro F1 over the non-ignored labels."""
        if self.train.metric != "auto":
            return self.train.metric
        if self.task == "token":
            scheme = detected_scheme or self.data.tag_scheme
            return "entity_f1_micro" if scheme != "plain" else "f1_macro_ignoring"
        return "f1_macro"
