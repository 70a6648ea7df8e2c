"""The report's "Setup" section and per-class scores over seeds, read from the runs' own files.

A reader of a report must know what was trained on what before any number means anything: split sizes, the
max_length and how much it truncated, the label distribution (is accuracy meaningful?), the model, the seeds and
the machine (train seconds mean nothing without it). Everything comes from the runs' `metrics.json` and
`config.yaml` — never from the study file, which may have changed since. Runs written before a field existed
simply leave its line out.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from unfreeze.data.near_duplicates import PASSAGE_WORDS, shared_passage_warning, validation_leaks
from unfreeze.io import read_json


def _runs(results: pd.DataFrame) -> list[tuple[dict, dict]]:
    out = []
    for path in results["path"]:
        path = Path(path)
        try:
            metrics = read_json(path / "metrics.json")
            config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, ValueError):
            continue
        out.append((metrics, config))
    return out


def _values(values: list) -> str:
    """One value, or the distinct values with how many runs had each (arms may differ, e.g. a max_length grid)."""
    counts = Counter(str(v) for v in values if v is not None)
    if not counts:
        return "–"
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{v} ({n} runs)" for v, n in counts.most_common())


def setup_rows(results: pd.DataFrame) -> list[list[str]]:
    runs = _runs(results)
    if not runs:
        return []
    rows = []
    sizes = [m.get("data", {}).get("sizes") for m, _ in runs]
    rows.append(["split sizes (train / val / test)", _values(
        [f"{s.get('train', '?')} / {s.get('val', '?')} / {s.get('test', '?')}" for s in sizes if s])])
    lengths = []
    for metrics, _ in runs:
        stats = metrics.get("token_lengths") or {}
        share = stats.get("truncated_share")
        lengths.append(f"{metrics.get('max_length')}" + (f" (truncates {100 * share:.1f}% of training texts)"
                                                          if share is not None else ""))
    rows.append(["max_length", _values(lengths)])
    counts = next((m["train_label_counts"] for m, _ in runs if m.get("train_label_counts")), None)
    if counts:
        total = sum(counts.values()) or 1
        rows.append(["training labels", top_list([f"{k}: {v} ({100 * v / total:.1f}%)" for k, v in
                                                  sorted(counts.items(), key=lambda kv: -kv[1])])])
    shared = [m.get("data", {}).get("shared_passages") for m, _ in runs]
    rows.append([f"texts sharing a {PASSAGE_WORDS}-word passage with training (val / test)", _values(
        [" / ".join(f"{100 * s[k]:.0f} %" if s.get(k) is not None else "–" for k in ("val", "test"))
         for s in shared if s])])
    rows.append(["model", _values([(c.get("model") or {}).get("name") for _, c in runs])])
    rows.append(["seeds", ", ".join(str(s) for s in sorted(results["seed"].unique()))])
    machines = [m.get("machine") for m, _ in runs if m.get("machine")]
    if machines:
        rows.append(["machine", _values([f"{mc.get('cpu_count')} CPUs, {mc.get('torch_threads')} torch threads"
                                         + (f", GPU {mc['gpu']}" if mc.get("gpu") else ", no GPU") for mc in machines])])
    return [r for r in rows if r[1] != "–"]


#: Lists longer than this (labels, tags) show the first TOP_N and "… and N more" (110 POS tags in one cell).
TOP_N = 30


def top_list(items: list[str], limit: int = TOP_N) -> str:
    """`items` joined by commas, cut to the first `limit` with "… and N more" when there are more."""
    more = f", … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def setup_blocks(results: pd.DataFrame) -> list:
    rows = setup_rows(results)
    if not rows:
        return []
    note = ("Read from the runs' metrics.json and config.yaml; where arms differ, each value is listed with its "
            "number of runs. Training labels: counts in one run's training set (the same across arms unless data "
            f"settings are in the grid), most frequent first, the first {TOP_N} shown.")
    warnings = {shared_passage_warning(s) for s in _shared(results)} - {None}
    return [("h2", "Setup"), ("table", ["what", "value"], rows), ("p", note)] + [
        ("p", f"Warning: {w}.") for w in sorted(warnings)]


def leaky_validation(results: pd.DataFrame) -> dict | None:
    """The shared-passage shares of the first run whose validation split shares passages with training far more
    than its test split does (`data.near_duplicates.validation_leaks`), else None."""
    return next((s for s in _shared(results) if validation_leaks(s)), None)


def _shared(results: pd.DataFrame) -> list[dict]:
    return [m["data"]["shared_passages"] for m, _ in _runs(results) if (m.get("data") or {}).get("shared_passages")]


def per_class_over_seeds(results: pd.DataFrame, arm: str, key: str = "per_class",
                         labels: list[str] | None = None) -> dict[str, dict]:
    """{class: {"f1": mean, "std": std, "n": runs}} over every run of `arm` (all seeds and folds), test split."""
    scores: dict[str, list[float]] = {}
    for path in results.loc[results["arm"] == arm, "path"]:
        try:
            test = read_json(Path(path) / "metrics.json")["test"]
        except (OSError, KeyError, ValueError):
            continue
        for name, values in (test.get(key) or {}).items():
            if labels is None or name in labels:
                scores.setdefault(name, []).append(float(values["f1"]))
    return {name: {"f1": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
            for name, v in scores.items()}


def never_right(results: pd.DataFrame, arm: str, key: str = "per_class") -> dict[str, dict]:
    """Classes with test support that `arm` never got right: F1 0 in every run (all seeds and folds).
    {class: {"runs": n, "support": test examples in the first run, "predicted": whether any run predicted it}}."""
    seen: dict[str, dict] = {}
    for path in results.loc[results["arm"] == arm, "path"]:
        try:
            per_class = read_json(Path(path) / "metrics.json")["test"].get(key) or {}
        except (OSError, KeyError, ValueError):
            continue
        for name, values in per_class.items():
            entry = seen.setdefault(name, {"runs": 0, "zero": 0, "support": int(values.get("support", 0)),
                                           "predicted": False})
            entry["runs"] += 1
            entry["zero"] += float(values.get("f1", 0.0)) == 0.0
            entry["predicted"] |= float(values.get("precision", 0.0)) > 0 or float(values.get("recall", 0.0)) > 0
    return {name: {k: v for k, v in e.items() if k != "zero"} for name, e in seen.items()
            if e["runs"] and e["zero"] == e["runs"] and e["support"] > 0}


def per_class_flags(results: pd.DataFrame, arm: str | None) -> list:
    """A "Per-class outcomes" section when the best arm never got a class right (F1 0.0 in every run on test),
    with the fix to try: a class the model never predicts is invisible to accuracy but sinks f1_macro."""
    if arm is None:
        return []
    flagged = never_right(results, arm)
    if not flagged:
        return []
    runs = max(e["runs"] for e in flagged.values())
    names = top_list([f"{name!r} ({e['support']} test examples" + ("" if e["predicted"] else ", never predicted")
                      + ")" for name, e in sorted(flagged.items(), key=lambda kv: -kv[1]["support"])])
    return [("h2", "Per-class outcomes"),
            ("p", f"{len(flagged)} class{'es' if len(flagged) != 1 else ''} the best arm ({arm}) never got right: "
                  f"F1 0.0 on test in every one of its {runs} run{'s' if runs != 1 else ''}: {names}. Try "
                  "`train.class_weights: balanced` (each class weighted by the inverse of its training frequency), "
                  "or more examples of these classes.")]
