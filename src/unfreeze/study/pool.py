"""Data shared by the runs of a study: each distinct data config loaded once per process, and the CV folds built
from train + val (test unchanged).
"""
from __future__ import annotations



import json

import logging





from typing import Any

import numpy as np


from unfreeze.config.schema import RunConfig




log = logging.getLogger(__name__)



class DataPool:
    """Loads each distinct data config once per process; builds CV folds from train + val."""

    def __init__(self, cv=None):
        self.cv = cv
        self._cache: dict[str, Any] = {}
        self._fingerprints: dict[tuple[str, int], dict[str, str]] = {}

    def key(self, config: RunConfig) -> str:
        return json.dumps({"task": config.task, "data": config.data.model_dump(mode="json")}, sort_keys=True)

    def get(self, config: RunConfig, fold: int = -1):
        from unfreeze.training.prepare import load_data

        key = self.key(config)
        if key not in self._cache:
            self._cache[key] = load_data(config)
        data = self._cache[key]
        if fold < 0:
            return data
        from unfreeze.training.run_dir import data_fingerprint

        folded = self.fold(data, fold, config.data.split_seed)
        if (key, fold) in self._fingerprints:  # each fold's train + val hashed once per process, not once per run
            folded._data_fingerprint = self._fingerprints[key, fold]
        else:
            self._fingerprints[key, fold] = data_fingerprint(folded)
        return folded

    def fingerprint(self, config: RunConfig, fold: int = -1) -> dict[str, str]:
        """`training.run_dir.data_fingerprint` of the train + val a run of `config` (and `fold`) reads."""
        from unfreeze.training.run_dir import data_fingerprint

        return data_fingerprint(self.get(config, fold))

    def fold(self, data, fold: int, seed: int):
        """Fold `fold` of k: validation = that fold of (train ∪ val), training = the rest; test unchanged."""
        from dataclasses import replace

        from sklearn.model_selection import KFold, StratifiedKFold

        pool = concat_splits(data.train, data.val)
        labels = getattr(pool, "labels", None)
        if self.cv.stratified and labels is not None:
            splitter = StratifiedKFold(self.cv.folds, shuffle=True, random_state=seed)
            parts = list(splitter.split(np.zeros(len(pool)), labels))
        else:
            parts = list(KFold(self.cv.folds, shuffle=True, random_state=seed).split(np.zeros(len(pool))))
        train_idx, val_idx = parts[fold]
        return replace(data, train=pool.subset(train_idx), val=pool.subset(val_idx))



def concat_splits(a, b):
    both = np.concatenate([np.arange(len(a)), np.arange(len(b)) + len(a)])
    merged = type(a)(**{
        name: (np.concatenate([getattr(a, name), getattr(b, name)]) if isinstance(getattr(a, name), np.ndarray)
               else None if getattr(a, name) is None else list(getattr(a, name)) + list(getattr(b, name)))
        for name in a.__dataclass_fields__
    })
    return merged.subset(both)
