"""Cross-validation outputs: out-of-fold metrics and test predictions averaged over the fold models.

With `cv: {folds: k}`, each (arm, seed) trains k models; each model's validation fold is out-of-fold, so pooling
the k validation predictions gives one honest estimate over the whole training pool, and averaging the k models'
test probabilities gives the usual competition-style ensemble. Written to `STUDY/ensembles/<arm>-s<seed>/` (made
one safe file name by `ensemble_folder`).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.io import write_dataframe_csv, write_json
from unfreeze.io.paths import path_component
from unfreeze.metrics.classification import classification_metrics
from unfreeze.tasks import get_task

PROB_PREFIX = "prob_"


def write_cv_ensembles(study_dir: Path, jobs, pool) -> None:
    groups: dict[tuple[str, int], list] = defaultdict(list)
    for job in jobs:
        if get_task(job.config.task).averages_members:
            groups[(job.arm, job.seed)].append(job)
    for (arm, seed), members in groups.items():
        run_dirs = [study_dir / "runs" / j.run_id for j in members]
        if not all((d / "metrics.json").exists() for d in run_dirs):
            continue  # some folds failed or are missing: no ensemble for this arm/seed
        config = members[0].config
        labels = pool.get(config).label_names
        target = study_dir / "ensembles" / ensemble_folder(arm, seed)
        write_ensemble(target, run_dirs, labels, config.data.positive_label, arm, seed)


def ensemble_folder(arm: str, seed: int) -> str:
    """`<arm>-s<seed>` made one safe component as a whole: readable for plain names (`all-s0`), and two different
    (arm, seed) pairs never share a folder (`Fast`/`fast`, `a/b`/`a_b`, NFC/NFD, case-insensitive disks)."""
    return path_component(f"{arm}-s{seed}")


def write_ensemble(target: Path, run_dirs: list[Path], labels: list[str], positive_label, arm: str, seed: int):
    tests = [pd.read_csv(d / "predictions_test.csv") for d in run_dirs]
    prob_cols = [f"{PROB_PREFIX}{n}" for n in labels]
    probs = np.mean([t[prob_cols].to_numpy() for t in tests], axis=0)
    index = {n: i for i, n in enumerate(labels)}
    test = tests[0][[c for c in ("id", "text", "text_pair", "label") if c in tests[0]]].copy()
    test["pred"] = [labels[i] for i in probs.argmax(1)]
    for j, col in enumerate(prob_cols):
        test[col] = probs[:, j]
    oof = pd.concat([pd.read_csv(d / "predictions_val.csv") for d in run_dirs], ignore_index=True)
    result = {
        "arm": arm, "seed": seed, "folds": len(run_dirs),
        "oof": _metrics(oof, index, labels, positive_label),
        "test": _metrics(test, index, labels, positive_label),
        "oof_note": "optimistic: each fold's held-out part also picked that fold's best epoch; the ensemble's test "
                    "score is the untouched estimate",
    }
    write_dataframe_csv(target / "predictions_test.csv", test)
    write_dataframe_csv(target / "oof_predictions.csv", oof)
    write_json(target / "metrics.json", result)


def _metrics(frame: pd.DataFrame, index: dict[str, int], labels: list[str], positive_label) -> dict:
    y_true = frame["label"].astype(str).map(index).to_numpy()
    y_pred = frame["pred"].astype(str).map(index).to_numpy()
    return classification_metrics(y_true, y_pred, labels, positive_label)


def average_probabilities(frames: list[pd.DataFrame], labels: list[str]) -> np.ndarray:
    cols = [f"{PROB_PREFIX}{n}" for n in labels]
    return np.mean([f[cols].to_numpy() for f in frames], axis=0)
