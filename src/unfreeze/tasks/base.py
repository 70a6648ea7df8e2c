"""The task interface and registry.

A task (sequence classification, token classification) is an object in its own file of this package that
answers every question the rest of the code asks about it — how its data is read, how a split is scored, what
its predictions file is, its baseline, what a saved model's head is in words, how `unfreeze inspect` reads its
files — so code outside `tasks/` asks `get_task(config.task)` instead of comparing task names. Adding a task is one
new file with a `@register`-ed `Task` subclass (found automatically), its name in the `task` literal of
`config/schema.py` (the registry is checked against it), plus its tests.

Layer: `tasks/` sits above `data/` and `metrics/` (it reads and scores through them) and below `model/`, so the
model, training, study, report and probe code can ask it; what differs by task above this layer (tagging words
with a saved model, the token probe) is chosen by the task's structural facts (`per_token`), not by its name.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from unfreeze.errors import ConfigError


class Task:
    """One kind of prediction. Subclasses set the facts and implement the methods that read, score and write."""

    name: ClassVar[str]
    #: the head scores every token's state (logits: batch × tokens × labels, tags per word); False = one pooled
    #: vector and one label per example
    per_token: ClassVar[bool] = False
    #: inputs longer than max_length are cut into windows (every word is tagged), not truncated
    windows_long_inputs: ClassVar[bool] = False
    #: what one row of the data is, and what it carries, in the plural (`unfreeze inspect`'s table)
    rows_word: ClassVar[str] = "rows"
    labels_word: ClassVar[str] = "labels"
    #: the Hugging Face pipeline (and card tag) that runs a transformers-layout saved model of this task
    pipeline: ClassVar[str]
    #: the argument of `model.predict(...)` in the model card's example
    example_input: ClassVar[str]
    #: what the exported ONNX `logits` output is, and its dynamic axes
    logits_doc: ClassVar[str]
    logits_axes: ClassVar[dict[int, str]] = {0: "batch"}
    #: the run's predictions files: `predictions_<split>.<suffix>`
    predictions_suffix: ClassVar[str]
    #: the baseline the study trains beside the arms: its kind (the study's `BASELINES` table picks the code),
    #: its short name in plans and its wording in the probe plot
    baseline_kind: ClassVar[str]
    baseline_name: ClassVar[str]
    #: the baseline's cost grows with the text it reads (TF-IDF); False = too cheap to plan
    baseline_reads_texts: ClassVar[bool] = True
    #: the probe plot counts training data in this unit
    probe_unit: ClassVar[str] = "train"
    #: cross-validation fold models (and an arm's several models) are averaged by their probabilities
    averages_members: ClassVar[bool] = True
    #: paragraphs the study report adds under its tables
    report_notes: ClassVar[tuple[str, ...]] = ()

    # -- data -------------------------------------------------------------------------------------------------

    def read_data(self, data_cfg):
        """The task's data (train / val / test splits, label names, notes) from the run's `data:` config."""
        raise NotImplementedError

    def encode(self, tokenizer, data, data_cfg, max_positions: int, token_types: bool):
        """(encodings per split, max_length, length stats): every split encoded for `tokenizer`, within the
        backbone's `max_positions` (`token_types`: whether it reads token type ids)."""
        raise NotImplementedError

    def gold_labels(self, split, label_names: Sequence[str]) -> list:
        """The split's gold labels as names, one entry per example (token tasks: a tag list per sentence)."""
        raise NotImplementedError

    def inspect(self, data_cfg, model_name: str | None = None, load_model: Callable | None = None) -> dict:
        """`unfreeze inspect`'s report for this task's data."""
        raise NotImplementedError

    # -- scoring ----------------------------------------------------------------------------------------------

    def split_metrics(self, run, data_cfg, split: str, logits: list[np.ndarray], loss: float) -> dict:
        """The metrics dict of one evaluated split (metrics.json's `val` / `test`) from its logits, in encoded
        order. `run`: the run's data part (`encoded`, `data`, `label_names`); `data_cfg`: its `data:`."""
        raise NotImplementedError

    def headline_metrics(self, metric: str, columns) -> list[str]:
        """The report's metric columns: the selection metric first, then the task's usual ones that `columns`
        (results.csv's) holds as `test_<name>`."""
        extra = self._headline_extra(columns)
        return [metric] + [m for m in extra if m != metric and f"test_{m}" in columns]

    def _headline_extra(self, columns) -> list[str]:
        return []

    def count_metric(self, metric: str, scored: dict, run_config: Callable[[], dict]):
        """The `metrics.counts` metric that recomputes `metric` from predictions; `scored`: the split's metrics
        dict; `run_config()`: the run's config.yaml as a dict (read only when the task needs it)."""
        raise NotImplementedError

    # -- files ------------------------------------------------------------------------------------------------

    def predictions_file(self, split: str) -> str:
        return f"predictions_{split}.{self.predictions_suffix}"

    def write_predictions(self, out: Path, run, split: str, logits: list[np.ndarray]) -> None:
        """Write the run's `predictions_<split>` file into the folder `out` (atomically)."""
        raise NotImplementedError

    def read_predictions(self, run_dir: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(gold, predicted) of a run's predictions file, as object arrays."""
        raise NotImplementedError

    # -- saved models -----------------------------------------------------------------------------------------

    def head_words(self, model_meta: dict) -> str:
        """The head in a few words (model card, `model_type` of the refusing config)."""
        return f"{model_meta.get('pooling', 'mean')} pooling"

    def auto_class(self, pooling: str) -> str | None:
        """The transformers Auto class that computes our head when it has no hidden layers, if any."""
        return None


REGISTRY: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available under `cls.name`."""
    REGISTRY[cls.name] = cls()
    return cls


def task_names() -> list[str]:
    return list(REGISTRY)


def get_task(name: str | None) -> Task:
    """The task called `name` (None: the default, `sequence`, as in folders written before tasks were named);
    an unknown name is one ConfigError naming the choices."""
    name = "sequence" if name is None else name
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(REGISTRY), n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"task: unknown task {name!r}{hint} (known: {', '.join(REGISTRY)})") from None


def inspect_data(cfg, model_name: str | None = None, task: str | None = None, load_model=None) -> dict:
    """`unfreeze inspect`: the report of the task `task` (None: detected from the source — CoNLL, token JSONL,
    wnut16 / msra_ner are token data). With `model_name`, token lengths under its tokenizer: `load_model(name)` →
    (backbone, tokenizer), e.g. `model.backbone.load_backbone_named` (passed in: tasks/ sits below model/)."""
    from unfreeze.data.inspect_tokens import detect_task

    return get_task(task or detect_task(cfg)).inspect(cfg, model_name, load_model)
