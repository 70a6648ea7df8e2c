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

    def key(self, config: RunConfig) -> str:
        return json.dumps({"task": config.task, "data": config.data.model_dump(mode="json")}, sort_keys=True)

    def get(self, config: RunConfig, fold: int = -1):
        from unfreeze.training.prepare import load_data

        key = self.key(config)
        if key not in self._cache:
            self._cache[key] = load_data(config)
        data = self._cache[key]
        return data if fold < 0 else self.fold(data, fold, config.data.split_seed)

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
