"""The baseline in the report: one row per data configuration, and the verdict when it beats fine-tuning.

Why it competes: a study whose best fine-tuned arm loses to TF-IDF on validation has found that fine-tuning did not
pay on this data, and the report must say so first, not bury the row under the table. The baseline takes part in
"best by validation" and the best fine-tuned arm is compared with it on test by the report's decision path
(`metrics.decide.decide`: the baseline is deterministic, seed variance 0; the arm's seed variance and the test set
count, and every decidable arm is compared with its baseline at alpha / arms, so picking the best arm on validation
is covered). One seed gives no p-value and no "significantly": one seed cannot tell a real gap from a lucky seed.
The validation verdict states its uncertainty (an interval), not two bare point estimates. Each baseline is paired
with the runs trained on the same data (`run_ids` in its metrics.json, written by `study.runner.run_baseline`),
so a grid over `data.train_size` compares each size with the floor trained on the same examples.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from unfreeze.data.near_duplicates import PASSAGE_WORDS
from unfreeze.io import read_json
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.metrics.compare import format_p
from unfreeze.report.significance import N_BOOT


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
    """Baseline rows in the arms table's column order (arm, n, Δ vs best, mark, val, val CI, test, test CI, ...)."""
    several = len(baselines) > 1
    out = []
    for base in baselines:
        cells = [label(base, several), "1", deltas.get(base["dir"], "–"), "–",
                 f"{base['val'].get(names[0], float('nan')):.4f}", "–",
                 f"{base['test'].get(names[0], float('nan')):.4f}", "–"]
        cells += [f"{base['test'].get(m, float('nan')):.4f}" for m in names[1:]]
        cells += ["–", "0 (no encoder)", f"{base.get('train_seconds', float('nan')):.1f}", "–"]
        out.append(cells[:width])
    return out


def verdict(group: pd.DataFrame, best: str | None, baselines: list[dict], metric: str, decision: dict | None,
            leaky: dict | None = None) -> tuple[list[str], dict[str, str], bool]:
    """(paragraphs, {baseline dir: Δ cell}, baseline wins on val) for the best fine-tuned arm vs its baseline,
    worded from `decision["baseline"]` (`metrics.decide`); `leaky`: the shared-passage shares when validation
    shares passages with training far more than test (`report.setup.leaky_validation`) — the baseline's lead on
    such a validation split is no finding (TF-IDF memorises passages), and the headline says so."""
    if best is None or metric in LOWER_IS_BETTER or not decision:
        return [], {}, False
    base = of_arm(baselines, group, best)
    if base is None or not isinstance(base["val"].get(metric), (int, float)):
        return [], {}, False
    val_best, val_base = float(decision["val_means"][best]), float(base["val"][metric])
    name = "TF-IDF" if "TF-IDF" in base["method"] else "the baseline"
    found = (decision or {}).get("baseline") or {}
    uncertainty = _val_uncertainty(found.get("val"))
    wins = val_base > val_best
    test = found.get("test")
    reversed_on_test = test is not None and test.get("decidable") and test["claim"] == ("better" if wins else "worse")
    if reversed_on_test:  # the headline must not state what the calibrated test contradicts
        lines = [disagreement(name, best, metric, val_base, val_best, wins, uncertainty, found.get("val"))]
    elif wins and leaky:
        lines = [leaky_lead(name, best, metric, val_base, val_best, uncertainty, leaky, bool(test and
                                                                                         test.get("decidable")))]
    elif wins:
        lines = [f"Verdict: fine-tuning did not beat {name} here (val {metric} {val_base:.4f} vs {val_best:.4f} for "
                 f"the best fine-tuned arm, {best}){uncertainty}. The baseline is best by validation."]
    else:
        lines = [f"The best fine-tuned arm ({best}) beats {name} on validation ({metric} {val_best:.4f} vs "
                 f"{val_base:.4f}){uncertainty}."]
    if test is None:
        return lines, {}, wins
    if not test["decidable"]:
        lines.append(f"On test, {best} − baseline: Δ {metric} = {test['delta']:+.4f} ({test['method']}): no p-value "
                     f"and no verdict — run at least 3 seeds per arm for one.")
        return lines, {base["dir"]: f"{-test['delta']:+.4f} (no test)"}, wins
    level = f"{test['level'] * 100:.3g} %"
    said = {"better": f"{best} is significantly better than {name}", "worse": f"{best} is significantly worse "
            f"than {name}", None: f"{best} and {name} are not told apart"}[test["claim"]]
    p = format_p(test["p_adj"], N_BOOT)
    lines.append(f"On test, {best} − baseline: Δ {metric} = {test['delta']:+.4f}, simultaneous {level} interval "
                 f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}] ({p}, adjusted over the "
                 f"{found['arms_in_family']} arm{'s' if found['arms_in_family'] != 1 else ''} compared with their "
                 f"baseline, so picking the best on validation is covered; {test['method']}): {said}.")
    return lines, {base["dir"]: f"{-test['delta']:+.4f} [{-test['ci_high']:+.4f}, {-test['ci_low']:+.4f}]"}, wins


def disagreement(name: str, best: str, metric: str, val_base: float, val_best: float, base_wins_val: bool,
                 uncertainty: str, val: dict | None) -> str:
    """The headline when the test verdict (below it) reverses the validation ranking of the best arm and its
    baseline: a disagreement only when validation separated them (its interval excludes 0), with the cause that
    fits the direction; else the test's finding, validation having not told them apart."""
    outcome = "better than" if base_wins_val else "worse than"
    numbers = f"val {metric} {val_base:.4f} for {name} vs {val_best:.4f} for {best}{uncertainty}"
    apart = bool(val) and val.get("ci_low") is not None and not val["ci_low"] <= 0 <= val["ci_high"]
    if not apart:
        return (f"Verdict: on test, {best} is significantly {outcome} {name} (below); validation did not tell them "
                f"apart ({numbers}).")
    ahead = name if base_wins_val else best
    cause = ("usually means the validation split shares sources with training (near-duplicate passages, several "
             "documents from one source or author, one period of time; see the Setup section's shared passages): "
             "pass a validation file split the way the test file was (data.val)" if base_wins_val else
             "can mean the arm was picked as the best of several on validation, which flattered it, or that "
             "validation differs from test; read the arms' test column")
    return (f"Verdict: validation and test disagree — {ahead} is ahead on validation ({numbers}), but on test {best} "
            f"is significantly {outcome} {name} (below). Trust the test set: it was not used to pick anything. A "
            f"validation gap that test reverses {cause}.")


def leaky_lead(name: str, best: str, metric: str, val_base: float, val_best: float, uncertainty: str,
               shares: dict, decidable: bool) -> str:
    """The headline when the baseline leads on a validation split that shares passages with training far more
    than test does: memorising models score high there, so validation cannot say fine-tuning lost."""
    test = shares.get("test")
    against = f", against {100 * test:.0f} % of test texts" if test is not None else ""
    return (f"Verdict: {name} is ahead on validation (val {metric} {val_base:.4f} vs {val_best:.4f} for the best "
            f"fine-tuned arm, {best}{uncertainty}), but {100 * shares['val']:.0f} % of validation texts share a "
            f"passage of {shares.get('words', PASSAGE_WORDS)}+ words with a training text{against} (Setup), which "
            f"flatters {name}: validation cannot tell whether fine-tuning beats it here. "
            + ("The test set decides (below)." if decidable else "The test set can, with 3 seeds per arm."))


def _val_uncertainty(val: dict | None) -> str:
    """'; Δ val …, interval […] (how)' — or why there is none."""
    if not val:
        return ""
    if val["ci_low"] is None:
        return f"; Δ val {val['delta']:+.4f}, one seed: no interval"
    apart = "within noise" if val["ci_low"] <= 0 <= val["ci_high"] else "beyond noise"
    return (f"; Δ val {val['delta']:+.4f}, simultaneous {val['level'] * 100:.3g} % interval "
            f"[{val['ci_low']:+.4f}, {val['ci_high']:+.4f}], {apart} — {val['how']}; the arm was picked on these "
            f"validation data, which flatters it")


def size_points(baselines: list[dict], metric: str) -> dict[float, float]:
    """{training-set size as the grid wrote it: baseline test metric}, for the learning curve over data size."""
    out = {}
    for base in baselines:
        size = base.get("config_train_size") or base.get("train_size")
        if size and isinstance(base["test"].get(metric), (int, float)):
            out[float(size)] = float(base["test"][metric])
    return out
