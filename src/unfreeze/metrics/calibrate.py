"""`unfreeze calibrate GEN.py`: run the report's decision path (`metrics.decide.decide`: pick on validation, marks
on test, the baseline verdict, the seed plan) on studies drawn from anyone's generative model, and count how often
it claims something the truths contradict.

GEN.py defines `simulate(rng)` (rng a `numpy.random.Generator`) returning one study:

    {"labels": [class names], "metric": "accuracy" | "f1_macro" (or another metric of `metrics.counts.SUPPORTED`),
     "val":  {"y": (n_val,) ints, "arms": {arm: (seeds, n_val) ints}, "baseline": (n_val,) ints [optional]},
     "test": {"y": (n_test,) ints, "arms": {arm: (seeds, n_test) ints}, "baseline": (n_test,) ints [optional]},
     "truth": {arm: population value of the metric}, "truth_baseline": float [optional]}

Predictions are class indices into `labels`; row i of every arm is seed number i (arms with fewer rows ran the
first seeds). An arm may also be (seeds, folds, n): cross-validation, the folds of one seed predicting the same
examples (a cluster; the seed is the unit). GEN.py is imported and executed as Python: it is your own code, run
with your rights — calibrate only files you trust.

Rates (`calibrate` returns and `--json` writes exactly these keys):
- false_mark_rate: share of studies with at least one false mark (a † on an arm whose truth is not below the
  picked reference's truth, or a ‡ on an arm whose truth is not above it);
- false_baseline_rate: share of studies whose baseline verdict claims a significant difference contrary to the
  truths (any such claim when they are equal); None when no study has a baseline;
- power: among (study, arm) pairs whose truth is at least 0.02 below the reference's, the share marked †;
  None when there are none;
- mc_se: the Monte-Carlo standard error of a rate at the nominal 5 % over this many studies, sqrt(.05·.95/N).
"""
from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unfreeze.errors import UnfreezeError
from unfreeze.metrics.counts import SUPPORTED, CountMetric, _confusion_rows, _from_confusion
from unfreeze.metrics.decide import MIN_EFFECT, Split, decide

POWER_GAP = 0.02  # truth gap below the reference from which an arm counts towards power
TRUTH_TOL = 1e-12  # truths closer than this are equal
N_BOOT = 2000  # example resamples per study (the report: 10,000; only the test-set term's Monte-Carlo noise moves)


class CalibrateError(UnfreezeError):
    """A generator file that cannot be loaded, or a study it returns that is not in the documented format."""


def load_generator(path: str | Path) -> Callable[[np.random.Generator], dict]:
    """`simulate` from the Python file at `path` (imported, i.e. executed: the user's own code)."""
    path = Path(path)
    if not path.is_file():
        raise CalibrateError(f"{path}: no such file; pass the generator file that defines simulate(rng)")
    if path.suffix != ".py":
        raise CalibrateError(f"{path}: not a .py file; pass the Python file that defines simulate(rng)")
    spec = importlib.util.spec_from_file_location(f"unfreeze_generator_{abs(hash(str(path.resolve())))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # its own helper modules next to it
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:  # sys.exit() at import: the user's code, not a request to end `unfreeze`
        raise CalibrateError(f"{path}: importing it called sys.exit({exc.code!r}); a generator only defines "
                             "simulate(rng): remove the exit (or guard it with if __name__ == '__main__')") from None
    except Exception as exc:  # noqa: BLE001 — the user's code: one line naming the file and the error
        raise CalibrateError(f"{path}: importing it failed ({type(exc).__name__}: {exc}); fix the generator") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    simulate = getattr(module, "simulate", None)
    if not callable(simulate):
        raise CalibrateError(f"{path}: defines no function simulate(rng); add one returning a study dict "
                             f"(format: docs/statistics.md, example: examples/calibrate_generator.py)")
    return simulate


def check_json_out(json_out: str | Path | None, generator: str | Path) -> Path | None:
    """`--json`, before the generator is imported: a file (not a folder), not the generator itself, not inside a
    run, study or saved-model folder (whose files only unfreeze writes). One line (rc 2); returns it absolute."""
    from unfreeze.io.paths import check_out_file

    if json_out is None:
        return None
    return check_out_file(json_out, "--json", keep=(generator,))  # refuses inside a study too


def int_metric(name: str, k: int) -> CountMetric:
    """`name` over class indices 0..k-1: the same counts and formula as `counts.classification_metric`."""
    if name not in SUPPORTED or name == "f1":
        raise CalibrateError(f"study key 'metric' = {name!r} is not supported; use 'accuracy' or 'f1_macro' "
                             f"(or one of {sorted(SUPPORTED - {'f1'})})")
    return CountMetric(name, lambda y, p: _confusion_rows(np.asarray(y, int), np.asarray(p, int), k),
                       _from_confusion(name, k, list(range(k)), None))


def _split(part, name: str, k: int) -> tuple[Split, dict[str, dict]]:
    """(Split with run keys (seed, fold), {arm: {key: predictions}}) from one split of a study, checked."""
    if not isinstance(part, dict) or "y" not in part or not isinstance(part.get("arms"), dict) or not part["arms"]:
        raise CalibrateError(f"study['{name}'] must be a dict with 'y' and a non-empty 'arms' dict")
    y = np.asarray(part["y"])
    if y.ndim != 1 or not len(y) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
        raise CalibrateError(f"study['{name}']['y'] must be a 1-D int array of class indices in [0, {k})")
    arms = {}
    for arm, preds in part["arms"].items():
        where = f"study['{name}']['arms'][{arm!r}]"
        p = _array(preds, where)
        if p.ndim == 2:
            p = p[:, None, :]
        if p.ndim != 3 or p.shape[-1] != len(y) or not p.shape[0] or not p.shape[1]:
            raise CalibrateError(f"{where} must be an int array (seeds, {len(y)}) or (seeds, folds, {len(y)}) with "
                                 f"at least one seed and fold, got shape {p.shape}")
        _check_classes(p, where, k)
        arms[str(arm)] = {(s, f): p[s, f] for s in range(p.shape[0]) for f in range(p.shape[1])}
    base = part.get("baseline")
    if base is not None:
        base = _array(base, f"study['{name}']['baseline']")
        if base.shape != y.shape:
            raise CalibrateError(f"study['{name}']['baseline'] must be an int array of shape {y.shape}, got shape "
                                 f"{base.shape}")
        _check_classes(base, f"study['{name}']['baseline']", k)
    return Split(y, arms, base), arms


def _array(value, where: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as exc:  # ragged rows
        raise CalibrateError(f"{where} must be a rectangular int array of class indices ({exc})") from None


def _check_classes(p: np.ndarray, where: str, k: int) -> None:
    """Every prediction a class index in [0, k): the first bad value is named with its position."""
    numeric = np.issubdtype(p.dtype, np.number) and not np.issubdtype(p.dtype, np.complexfloating)
    if not numeric:
        raise CalibrateError(f"{where} must be an int array of class indices in [0, {k}), got dtype {p.dtype}")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(p) | (p != np.round(p)) | (p < 0) | (p >= k) if not np.issubdtype(p.dtype, np.integer) \
            else (p < 0) | (p >= k)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CalibrateError(f"{where} must be an int array of class indices in [0, {k}) (the labels' positions), "
                             f"got {p[pos].item()!r} at index {list(pos)}; fix the generator")
    if not np.issubdtype(p.dtype, np.integer):
        raise CalibrateError(f"{where} must be an int array of class indices in [0, {k}), got dtype {p.dtype}; "
                             "cast it, e.g. .astype(int)")


def _finite(value, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, str)) or not math.isfinite(number):
        raise CalibrateError(f"{where} = {value!r} must be a finite number (the population value of the metric), "
                             "e.g. 0.8")
    return number


def _truths(truth) -> dict[str, float]:
    if not isinstance(truth, dict):
        raise CalibrateError(f"study['truth'] must be a dict {{arm: population value of the metric}}, got "
                             f"{type(truth).__name__}")
    return {str(a): _finite(v, f"study['truth'][{a!r}]") for a, v in truth.items()}


def run_study(study: dict, alpha: float = 0.05, min_effect: float = MIN_EFFECT, n_boot: int = N_BOOT,
              seed: int = 0, options: dict | None = None) -> dict:
    """One simulated study through `decide`, scored against its truths: {"false_mark", "false_baseline",
    "has_baseline", "power_pairs", "power_hits", "marks", "plan_seeds", "decision"}."""
    if not isinstance(study, dict) or not {"labels", "metric", "val", "test", "truth"} <= set(study):
        raise CalibrateError("simulate(rng) must return a dict with 'labels', 'metric', 'val', 'test', 'truth' "
                             "(format: docs/statistics.md)")
    k = len(study["labels"])
    metric = int_metric(study["metric"], k)
    val, val_arms = _split(study["val"], "val", k)
    test, _ = _split(study["test"], "test", k)
    truth = _truths(study["truth"])
    missing = set(test.arms) - set(truth) or set(test.arms) ^ set(val.arms)
    if missing:
        raise CalibrateError(f"arms {sorted(missing)} must appear in val, test and truth alike")
    val_scores = {arm: {key: metric(val.y, p) for key, p in runs.items()} for arm, runs in val_arms.items()}
    has_base = test.baseline is not None
    if has_base and "truth_baseline" not in study:
        raise CalibrateError("a study with a baseline must give 'truth_baseline' (its population metric)")
    base_truth = _finite(study["truth_baseline"], "study['truth_baseline']") if has_base else None
    val_base = metric(val.y, val.baseline) if val.baseline is not None else None
    decision = decide(test, metric, val_scores, val_base, val if val.baseline is not None else None, alpha=alpha,
                      min_seeds=3, min_effect=min_effect, n_boot=n_boot, seed=seed, **(options or {}))
    best = decision["best"]
    ref = truth[best]
    false_mark, marks, pairs, hits = False, 0, 0, 0
    for arm, row in decision["arms"].items():
        marks += row["worse"] + row["better"]
        false_mark |= bool(row["worse"] and not truth[arm] < ref - TRUTH_TOL)
        false_mark |= bool(row["better"] and not truth[arm] > ref + TRUTH_TOL)
        if truth[arm] <= ref - POWER_GAP + TRUTH_TOL:
            pairs += 1
            hits += bool(row["worse"])
    false_base = None
    if has_base:
        claim = (decision["baseline"] or {}).get("test", {}).get("claim")
        false_base = bool((claim == "better" and not ref > base_truth + TRUTH_TOL)
                          or (claim == "worse" and not ref < base_truth - TRUTH_TOL))
    plan = decision.get("plan") or {}
    return {"false_mark": false_mark, "false_baseline": false_base, "has_baseline": has_base, "power_pairs": pairs,
            "power_hits": hits, "marks": marks, "plan_seeds": plan.get("seeds"), "decision": decision}


def calibrate(simulate: Callable[[np.random.Generator], dict], studies: int, seed: int = 0, alpha: float = 0.05,
              min_effect: float = MIN_EFFECT, n_boot: int = N_BOOT,
              progress: Callable[[int], None] | None = None, options: dict | None = None, source: str = "") -> dict:
    """{"studies", "false_mark_rate", "false_baseline_rate", "power", "mc_se"} over `studies` draws of
    `simulate(rng)` with `rng = numpy.random.default_rng(seed)` (deterministic for a given seed). `options`
    (`decide`'s family / df_rule) exist for the benchmark's comparison of rules only; the CLI never sets them.
    `source` (the generator file) leads every error line."""
    if studies < 1:
        raise CalibrateError(f"--studies {studies}: pass at least 1 (hundreds for a rate, e.g. 1000)")
    rng, lead = np.random.default_rng(seed), f"{source}: " if source else ""
    outcomes = []
    for i in range(studies):
        try:
            study = simulate(rng)
        except UnfreezeError:
            raise
        except SystemExit as exc:  # the user's code: sys.exit() inside simulate
            raise CalibrateError(f"{lead}simulate(rng) called sys.exit({exc.code!r}) (study {i + 1}); return a study "
                                 "dict instead") from None
        except Exception as exc:  # noqa: BLE001 — the user's code
            raise CalibrateError(f"{lead}simulate(rng) raised {type(exc).__name__}: {exc} (study {i + 1})") from exc
        try:
            outcomes.append(run_study(study, alpha, min_effect, n_boot, seed=i, options=options))
        except CalibrateError as exc:
            raise CalibrateError(f"{lead}{exc} (study {i + 1})") from None
        if progress:
            progress(i + 1)
    return summarize(outcomes)


def summarize(outcomes: list[dict]) -> dict:
    n = len(outcomes)
    based = [o["false_baseline"] for o in outcomes if o["has_baseline"]]
    pairs = sum(o["power_pairs"] for o in outcomes)
    return {"studies": n, "false_mark_rate": float(np.mean([o["false_mark"] for o in outcomes])),
            "false_baseline_rate": float(np.mean(based)) if based else None,
            "power": sum(o["power_hits"] for o in outcomes) / pairs if pairs else None,
            "mc_se": math.sqrt(0.05 * 0.95 / n)}


def table_rows(result: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows the CLI prints."""
    def rate(value):
        return "–" if value is None else f"{value:.3f}"

    return [("studies", str(result["studies"])),
            ("false_mark_rate (≤ 0.05 + MC error)", rate(result["false_mark_rate"])),
            ("false_baseline_rate (≤ 0.05 + MC error)", rate(result["false_baseline_rate"])),
            (f"power (arms ≥ {POWER_GAP} below the reference, marked †)", rate(result["power"])),
            ("mc_se (of a rate at 0.05)", f"{result['mc_se']:.4f}")]
