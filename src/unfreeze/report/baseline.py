"""The baseline in the report: one row per data configuration, and the verdict when it beats fine-tuning.

Why it competes: a study whose best fine-tuned arm loses to TF-IDF on validation has found that fine-tuning did not
pay on this data, and the report must say so first, not bury the row under the table. The baseline takes part in
"best by validation" and the best fine-tuned arm is compared with it on test (`metrics.compare.compare_with_fixed`:
the baseline is deterministic, one "seed" with seed variance 0). Each baseline is paired with the runs trained on
the same data (`run_ids` in its metrics.json, written by `study.runner.run_baseline`), so a grid over
`data.train_size` compares each size with the floor trained on the same examples.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.io import read_json
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.metrics.compare import compare_with_fixed, format_p
from unfreeze.report.significance import N_BOOT, count_metric_of, read_test_predictions


def load_baselines(study_dir: Path) -> list[dict]:
    """Every per-data-config baseline (`baseline/<data_key>/metrics.json`), else the single legacy one."""
    root = Path(study_dir) / "baseline"
    paths = sorted(root.glob("*/metrics.json")) or ([root / "metrics.json"] if (root / "metrics.json").exists()
                                                     else [])
    return [{**read_json(p), "dir": str(p.parent)} for p in paths]


def for_group(baselines: list[dict], group: pd.DataFrame, only_group: bool) -> list[dict]:
    """The baselines trained on the data of this group's runs (legacy ones without `run_ids`: single group only)."""
    run_ids = set(group["run_id"]) if "run_id" in group else set()
    matched = [b for b in baselines if set(b.get("run_ids") or []) & run_ids]
    if not matched and only_group:
        matched = [b for b in baselines if not b.get("run_ids")]
    return sorted(matched, key=lambda b: b.get("train_size") or 0)


def label(base: dict, several: bool) -> str:
    size = f" (train size {base.get('train_size')})" if several else ""
    return f"baseline{size}: {base['method']}"


def of_arm(baselines: list[dict], group: pd.DataFrame, arm: str) -> dict | None:
    """The baseline trained on the same data as `arm`'s runs (the only one when there is no `run_ids` link)."""
    ids = set(group.loc[group["arm"] == arm, "run_id"]) if "run_id" in group else set()
    for base in baselines:
        if set(base.get("run_ids") or []) & ids:
            return base
    return baselines[0] if len(baselines) == 1 else None


def rows(baselines: list[dict], names: list[str], width: int, deltas: dict[str, str]) -> list[list[str]]:
    several = len(baselines) > 1
    out = []
    for base in baselines:
        cells = [label(base, several), "1", f"{base['val'].get(names[0], float('nan')):.4f}", "–",
                 f"{base['test'].get(names[0], float('nan')):.4f}", "–"]
        cells += [f"{base['test'].get(m, float('nan')):.4f}" for m in names[1:]]
        cells += [deltas.get(base["dir"], "–"), "–", "0 (no encoder)", f"{base.get('train_seconds', float('nan')):.1f}",
                  "–"]
        out.append(cells[:width])
    return out


def verdict(group: pd.DataFrame, best: str | None, baselines: list[dict], meta: dict, metric: str
            ) -> tuple[list[str], dict[str, str], bool]:
    """(paragraphs, {baseline dir: Δ cell}, baseline wins on val) for the best fine-tuned arm vs its baseline."""
    if best is None or metric in LOWER_IS_BETTER:
        return [], {}, False
    base = of_arm(baselines, group, best)
    if base is None or not isinstance(base["val"].get(metric), (int, float)):
        return [], {}, False
    part = group[group["arm"] == best]
    val_best, val_base = float(part[f"val_{metric}"].mean()), float(base["val"][metric])
    name = "TF-IDF" if "TF-IDF" in base["method"] else "the baseline"
    wins = val_base > val_best
    if wins:
        lines = [f"Verdict: fine-tuning did not beat {name} here (val {metric} {val_base:.4f} vs {val_best:.4f} for "
                 f"the best fine-tuned arm, {best}). The baseline is best by validation."]
    else:
        lines = [f"The best fine-tuned arm ({best}) beats {name} on validation ({metric} {val_best:.4f} vs "
                 f"{val_base:.4f})."]
    comp = compare_test(part, base, meta, metric)
    cell = "–"
    if comp is not None:
        p = format_p(comp["p_value"], comp["n_boot"])
        lines.append(f"On test, {best} − baseline: Δ {metric} = {comp['delta']:+.4f} ({p}, 95 % CI "
                     f"[{comp['ci_low']:+.4f}, {comp['ci_high']:+.4f}]; {comp['method']}).")
        cell = f"{-comp['delta']:+.4f} ({p})"
    return lines, {base["dir"]: cell}, wins


def compare_test(part: pd.DataFrame, base: dict, meta: dict, metric: str) -> dict | None:
    """The best arm's runs vs the baseline's test predictions on the same test set, or None when not comparable."""
    task = meta.get("task", "sequence")
    try:
        fn = count_metric_of(Path(part["path"].iloc[0]), meta.get("task", "sequence"), metric)
        y_base, p_base = read_test_predictions(Path(base["dir"]), task)
        preds, y = {}, None
        for path, seed, fold in zip(part["path"], part["seed"], part["fold"]):
            y, preds[(int(seed), int(fold))] = read_test_predictions(Path(path), task)
    except (FileNotFoundError, KeyError):
        return None
    if fn is None or y is None or len(y) != len(y_base) or any(_plain(a) != _plain(b) for a, b in zip(y, y_base)):
        return None  # not a count metric, or the baseline was scored on another test set
    return compare_with_fixed(y, preds, p_base, fn, n_boot=N_BOOT)


def _plain(value):
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else str(value)


def size_points(baselines: list[dict], metric: str) -> dict[float, float]:
    """{training-set size as the grid wrote it: baseline test metric}, for the learning curve over data size."""
    out = {}
    for base in baselines:
        size = base.get("config_train_size") or base.get("train_size")
        if size and isinstance(base["test"].get(metric), (int, float)):
            out[float(size)] = float(base["test"][metric])
    return out
