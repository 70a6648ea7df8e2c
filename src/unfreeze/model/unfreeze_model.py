"""`UnfreezeModel`: a saved classifier as one object — network, tokenizer and what prediction needs (labels, task,
max_length, tokenisation settings) — loaded from a run's `best/`, a run folder or a study arm, saved back as the
same folder (model/checkpoint.py), and used to predict, with the same tokenisation, eval mode and
`inference_mode` as at test time: predicting a run's test texts reproduces its `predictions_test.csv`.

    model = unfreeze.load("runs/qs")            # or UnfreezeModel.from_pretrained("runs/qs/best")
    model.predict(["a gripping film", "dull"])   # ['pos', 'neg']
    model.predict_proba(["a gripping film"])     # array of shape (1, len(model.labels))

A study arm (`from_pretrained(study, arm=…)`) is its fold/seed models: probabilities are averaged across them
(not logits), as the cross-validation ensemble does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.errors import UnfreezeError
from unfreeze.model import checkpoint
from unfreeze.model.predict import load_members, member_logits, predict_members, softmax
from unfreeze.model.predict_tokens import tag_words, word_probabilities
from unfreeze.tasks import get_task


class UnfreezeModel:
    """One saved model (or the fold/seed models of one study arm). `network` is the EncoderClassifier (backbone +
    our head) in eval mode; `meta` is `unfreeze.json`."""

    def __init__(self, network, tokenizer, meta: dict, path: Path | None = None, others: list | None = None):
        self.network = network
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path  # the folder it was loaded from (None for a model built in memory)
        self._others = list(others or [])  # further (network, tokenizer, meta) members of a study arm

    # -- loading and saving ------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, arm: str | None = None) -> "UnfreezeModel":
        """A run's `best/` folder (either layout), a run folder, or — with `arm` — a study folder."""
        dirs, members = load_members(path, arm)
        return cls(*members[0], path=dirs[0], others=members[1:])

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the folder `from_pretrained` reads (weights as safetensors, tokenizer, head, unfreeze.json,
        model card); one model only, not a study arm."""
        from unfreeze.io.paths import check_out_folder, refuse_inside_study

        self._single("save_pretrained")
        target = check_out_folder(path, "save_pretrained path", "model", overwrite=True)  # never a folder it did not write
        refuse_inside_study(target, "save_pretrained path")
        checkpoint.save_folder(target, self.network, self.tokenizer, self.meta)
        return target

    def export(self, format: str = "onnx", out: str | Path = "export", opset: int = 17) -> Path:
        """Export for use without unfreeze (`unfreeze export`): `onnx` (every transformer head) or
        `transformers` (heads a transformers class computes). A model not loaded from a folder is saved first."""
        import tempfile

        from unfreeze.model.export import export_model

        self._single("export")
        if self.path is not None:
            return export_model(self.path, out, format, opset)
        with tempfile.TemporaryDirectory() as tmp:
            return export_model(self.save_pretrained(Path(tmp) / "best"), out, format, opset)

    # -- what the model is -------------------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def max_length(self) -> int:
        return int(self.meta["max_length"])

    def __repr__(self) -> str:
        members = f", {1 + len(self._others)} models" if self._others else ""
        return f"UnfreezeModel({self.task}, labels={self.labels}, path={str(self.path)!r}{members})"

    # -- predicting ----------------------------------------------------------------------------------------------

    def predict(self, inputs, pairs: list[str] | None = None, batch_size: int = 64) -> list:
        """Sequence task: a label per text (`pairs`: the second texts of a pair task). Token task: a tag per word
        for every sentence, given as a list of words (a string is split on whitespace)."""
        if get_task(self.task).per_token:
            return tag_words(self.network, self.tokenizer, self.meta, _word_lists(inputs), batch_size)
        return [self.labels[i] for i in self.predict_proba(inputs, pairs, batch_size).argmax(-1)]

    def predict_proba(self, inputs, pairs: list[str] | None = None, batch_size: int = 64):
        """Sequence task: (texts, labels) probabilities (predict's prob_<label> columns). Token task: per
        sentence a (words, labels) array whose argmax is `predict`'s tag."""
        if get_task(self.task).per_token:
            return word_probabilities(self.network, self.tokenizer, self.meta, _word_lists(inputs), batch_size)
        return softmax(self.logits(inputs, pairs, batch_size).astype(np.float64))

    def logits(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> np.ndarray:
        """(texts, labels) logits of a sequence model; for a study arm, the log of its members' mean
        probabilities."""
        if isinstance(texts, str):
            raise UnfreezeError("predict takes a list of texts, not one string: model.predict([text])")
        return member_logits(self._members(), list(texts), pairs, batch_size)

    def predict_file(self, input_path: str | Path, output_path: str | Path, text_column: str | None = None,
                     submission: bool = False) -> pd.DataFrame:
        """What `unfreeze predict` writes: `id, pred, prob_<class>…` (or `id, label` with `submission`) for every
        row of `input_path`; a token model tags a CoNLL / JSONL file."""
        return predict_members(self._members(), input_path, output_path, text_column, submission)

    def _members(self) -> list[tuple]:
        return [(self.network, self.tokenizer, self.meta), *self._others]

    def _single(self, what: str) -> None:
        if self._others:
            raise UnfreezeError(f"{what}: this is a study arm of {1 + len(self._others)} models; load one run's "
                                f"best/ folder (e.g. {self.path})")


def _word_lists(inputs) -> list[list[str]]:
    if isinstance(inputs, str):
        raise UnfreezeError("predict takes a list of sentences, not one string: model.predict([words])")
    return [s.split() if isinstance(s, str) else list(s) for s in inputs]
