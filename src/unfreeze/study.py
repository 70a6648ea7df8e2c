"""A study: a grid of run configs × seeds (× folds), run resumably into one results store, then aggregated.

Layout of the study folder is documented in `docs/CONTRACTS.md`. A run's folder is named by a stable hash of
its fully resolved config (+ fold), so editing the study file adds or removes runs without touching unrelated
ones, and re-running skips every run whose `metrics.json` exists (written last, atomically). A run that was
interrupted has no run folder (only a staging folder under `runs/.unfinished/`), or one without `metrics.json`
(older versions): it is redone from scratch.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import (FreezeConfig, RunConfig, StudyConfig, apply_overrides, describe_validation_error,
                     run_config_dict)
from .errors import ConfigError, UnfreezeError
from .files import read_json, write_dataframe_csv, write_json, write_text
from .metrics import scalar_metrics

log = logging.getLogger(__name__)


@dataclass
class PlannedRun:
    run_id: str
    arm: str
    seed: int
    fold: int
    overrides: dict[str, Any]
    config: RunConfig

    @property
    def info(self) -> dict:
        return {"run_id": self.run_id, "arm": self.arm, "seed": self.seed, "fold": self.fold,
                "overrides": self.overrides}


@dataclass
class RunOutcome:
    run_id: str
    arm: str
    ok: bool
    skipped: bool = False
    seconds: float = 0.0
    error: str | None = None
    metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Grid expansion and hashing (pure)


def display_value(key: str, value: Any) -> str:
    if key == "freeze":
        return FreezeConfig.model_validate(value).label
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def arm_name(overrides: dict[str, Any]) -> str:
    """Readable arm name from the grid values, e.g. `top-2 · train_size=500`."""
    if not overrides:
        return "base"
    parts = []
    for key, value in overrides.items():
        shown = display_value(key, value)
        parts.append(shown if key == "freeze" else f"{key.split('.')[-1]}={shown}")
    return " · ".join(parts)


def grid_combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def arm_overrides(study: StudyConfig) -> list[tuple[str, dict[str, Any]]]:
    """(arm name, dotted overrides) for every arm: named arms × grid combinations (either may be absent)."""
    combos = grid_combinations(study.grid) if study.grid else [{}]
    named = list(study.arms.items()) or [(None, {})]
    arms = []
    for name, fixed in named:
        flat = flatten(fixed)
        for combo in combos:
            overrides = {**flat, **combo}
            label = arm_name(combo)
            if name is not None:
                label = name if not combo else f"{name} · {label}"
            arms.append((label, overrides))
    return arms


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested override dicts become dotted keys; `freeze` values stay whole (they are one setting)."""
    flat = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted != "freeze":
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_hash(config: RunConfig, fold: int) -> str:
    """Stable, key-order-independent identity of a run: the config's non-default values (incl. seed) + fold.

    Defaults are left out so that a later version adding a config key (with a default that keeps the old
    behaviour) does not orphan every finished run of an existing study; a changed default value does change
    the hash, as it may change the results."""
    values = config.model_dump(mode="json", exclude_defaults=True)
    text = json.dumps({"config": values, "fold": fold}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def expand(study: StudyConfig) -> list[PlannedRun]:
    runs: list[PlannedRun] = []
    folds = range(study.cv.folds) if study.cv else [-1]
    seen: set[str] = set()
    for arm, overrides in arm_overrides(study):
        for seed in study.seeds:
            data = apply_overrides(study.base, [])
            for key, value in overrides.items():
                from .config import set_dotted

                set_dotted(data, key, value)
            data["seed"] = seed
            try:
                config = RunConfig.model_validate(data)
            except Exception as exc:  # pydantic ValidationError
                raise ConfigError(describe_validation_error(exc, RunConfig, f"study arm {arm!r}")) from None
            for fold in folds:
                run_id = config_hash(config, fold)
                if run_id in seen:
                    raise ConfigError(f"study arm {arm!r} (seed {seed}) duplicates another arm's config")
                seen.add(run_id)
                runs.append(PlannedRun(run_id, arm, seed, fold, overrides, config))
    return runs


# ---------------------------------------------------------------------------------------------------------
# Data shared by the runs of a study


class DataPool:
    """Loads each distinct data config once per process; builds CV folds from train + val."""

    def __init__(self, cv=None):
        self.cv = cv
        self._cache: dict[str, Any] = {}

    def key(self, config: RunConfig) -> str:
        return json.dumps({"task": config.task, "data": config.data.model_dump(mode="json")}, sort_keys=True)

    def get(self, config: RunConfig, fold: int = -1):
        from .prepare import load_data

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


# ---------------------------------------------------------------------------------------------------------
# Running


def cache_top_ks(runs: list[PlannedRun]) -> dict[str, set[int]]:
    """Per backbone name, every `top_k` a study needs (0 = head), so one forward pass fills all boundaries."""
    ks: dict[str, set[int]] = {}
    for run in runs:
        freeze = run.config.freeze
        if freeze.strategy in ("head", "top_k"):
            ks.setdefault(run.config.model.name, set()).add(0 if freeze.strategy == "head" else int(freeze.k))
    return ks


def execute_run(job: PlannedRun, study_dir: Path, pool: DataPool, top_ks: dict[str, set[int]],
                progress: bool = True) -> RunOutcome:
    """Run one planned run into its folder unless it finished before. Deterministic errors are returned, not
    raised, so one bad arm does not stop the study."""
    from .outputs import is_finished
    from .training import train

    run_dir = study_dir / "runs" / job.run_id
    if is_finished(run_dir):
        return RunOutcome(job.run_id, job.arm, ok=True, skipped=True, metrics=read_json(run_dir / "metrics.json"))
    if run_dir.exists():
        shutil.rmtree(run_dir)  # unfinished: redo from scratch
    started = time.perf_counter()
    try:
        metrics = train(job.config, run_dir, overwrite=True, progress=progress, data=pool.get(job.config, job.fold),
                        cache_root=study_dir / "cache", cache_top_ks=top_ks.get(job.config.model.name),
                        run_info=job.info)
    except UnfreezeError as exc:
        return RunOutcome(job.run_id, job.arm, ok=False, seconds=time.perf_counter() - started, error=str(exc))
    except Exception as exc:  # noqa: BLE001 — any failure of one run is recorded (as under Ray); Ctrl-C still stops
        log.exception("run %s (%s) failed", job.run_id, job.arm)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return RunOutcome(job.run_id, job.arm, ok=False, seconds=time.perf_counter() - started,
                          error=f"{type(exc).__name__}: {first}")
    return RunOutcome(job.run_id, job.arm, ok=True, seconds=time.perf_counter() - started, metrics=metrics)


class LocalExecutor:
    """Runs one after another in this process (torch uses all cores for each run)."""

    name = "local"

    def run(self, jobs: list[PlannedRun], study_dir: Path, pool: DataPool, top_ks, report) -> list[RunOutcome]:
        outcomes = []
        for job in jobs:
            outcome = execute_run(job, study_dir, pool, top_ks, progress=report.show_run_progress)
            report(outcome)
            outcomes.append(outcome)
        return outcomes


class ProgressReporter:
    """One line per finished run: done / total, the run's headline metric, and an ETA from the runs so far."""

    def __init__(self, total: int, already_done: int, metric: str, echo=print, show_run_progress: bool = True):
        self.total, self.done, self.metric, self.echo = total, already_done, metric, echo
        self.show_run_progress = show_run_progress
        self.failed = 0
        self.running: int | None = None  # set by executors that run several at once
        self.started = time.perf_counter()
        self.ran = 0

    def __call__(self, outcome: RunOutcome) -> None:
        if outcome.skipped:
            return
        self.done += 1
        self.ran += 1
        if not outcome.ok:
            self.failed += 1
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.ran * (self.total - self.done)
        if outcome.ok:
            value = outcome.metrics.get("val", {}).get(self.metric)
            what = f"val {self.metric} {value:.4f}" if isinstance(value, float) else "done"
        else:
            what = f"FAILED: {outcome.error}"
        running = f" · running {self.running}" if self.running is not None else ""
        self.echo(f"[{self.done}/{self.total}] {outcome.arm} ({outcome.run_id}) {what} in {outcome.seconds:.0f}s"
                  f"{running} · failed {self.failed} · ETA {eta / 60:.1f} min")


def make_executor(study: StudyConfig, name: str | None = None, address: str | None = None):
    name = name or study.executor
    if name == "local":
        return LocalExecutor()
    from .ray_executor import RayExecutor

    return RayExecutor(study.ray if address is None else study.ray.model_copy(update={"address": address}))


def run_study(study: StudyConfig, out_dir: str | Path, executor=None, progress: bool = True, echo=print,
              study_text: str | None = None, command: str | None = None) -> pd.DataFrame:
    """Run every unfinished run of the study, the baseline and CV ensembles; write results.csv and the report."""
    study_dir = Path(out_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    jobs = expand(study)
    write_study_meta(study_dir, study, jobs, study_text, command)
    pool = DataPool(study.cv)
    if study.baseline:
        run_baseline(study_dir, jobs, pool, echo)
    from .outputs import is_finished

    todo = [j for j in jobs if not is_finished(study_dir / "runs" / j.run_id)]
    echo(f"study {study.name}: {len(jobs)} runs, {len(jobs) - len(todo)} already finished, {len(todo)} to run")
    metric = jobs[0].config.selection_metric
    reporter = ProgressReporter(len(jobs), len(jobs) - len(todo), metric, echo, show_run_progress=progress)
    executor = executor or make_executor(study)
    outcomes = executor.run(todo, study_dir, pool, cache_top_ks(jobs), reporter)
    failed = [o for o in outcomes if not o.ok]
    record_failures(study_dir, failed)
    for outcome in failed:
        echo(f"FAILED {outcome.arm} ({outcome.run_id}): {outcome.error}")
    if failed:
        echo(f"{len(failed)} of {len(todo)} runs failed (listed in {study_dir / 'failures.json'}); "
             "fix the cause and run the study again to redo only those")
    if study.cv:
        from .ensemble import write_cv_ensembles

        write_cv_ensembles(study_dir, jobs, pool)
    results = collect_results(study_dir, jobs)
    from .report import build_report

    _, html = build_report(study_dir, results)
    echo(f"report: {html}")
    return results


def write_study_meta(study_dir: Path, study: StudyConfig, jobs: list[PlannedRun], study_text, command) -> None:
    from .outputs import versions

    first = jobs[0].config
    write_json(study_dir / "study.json", {
        "name": study.name, "task": first.task, "grid_keys": list(study.grid), "arms": sorted({j.arm for j in jobs}),
        "seeds": study.seeds, "selection_metric": first.selection_metric,
        "cv": study.cv.model_dump() if study.cv else None, "command": command, "versions": versions(),
        "runs": len(jobs), "run_ids": [j.run_id for j in jobs],
    })
    if study_text is not None:
        write_text(study_dir / "study.yaml", study_text)


def record_failures(study_dir: Path, failed: list[RunOutcome]) -> None:
    path = study_dir / "failures.json"
    previous = read_json(path) if path.exists() else []
    merged = {f["run_id"]: f for f in previous}
    for outcome in failed:
        merged[outcome.run_id] = {"run_id": outcome.run_id, "arm": outcome.arm, "error": outcome.error}
    finished = {p.parent.name for p in (study_dir / "runs").glob("*/metrics.json")}
    current = [f for rid, f in merged.items() if rid not in finished]
    if current or path.exists():
        write_json(path, current)


def run_baseline(study_dir: Path, jobs: list[PlannedRun], pool: DataPool, echo) -> None:
    """TF-IDF + logistic regression on the same splits as the largest data config of the study. Keyed by that
    data config: a study file whose data changed gets a new baseline, never a stale row."""
    target = study_dir / "baseline" / "metrics.json"
    config = max((j.config for j in jobs), key=lambda c: c.data.train_size or float("inf"))
    data_key = hashlib.sha1(pool.key(config).encode()).hexdigest()[:12]
    if target.exists() and read_json(target).get("data_key") == data_key:
        return
    from .baselines import run_study_baseline

    run_study_baseline(study_dir, config, pool.get(config), data_key)
    echo(f"baseline written to {target.parent}")


# ---------------------------------------------------------------------------------------------------------
# Aggregation


def collect_results(study_dir: str | Path, jobs: list[PlannedRun] | None = None) -> pd.DataFrame:
    """One row per finished run (columns in docs/CONTRACTS.md); also written to results.csv."""
    study_dir = Path(study_dir)
    meta = read_json(study_dir / "study.json") if (study_dir / "study.json").exists() else {}
    # `unfreeze report` has no jobs: the run ids of the study file's last version say which folders count
    wanted = {j.run_id for j in jobs} if jobs is not None else (set(meta["run_ids"]) if "run_ids" in meta else None)
    rows = []
    for metrics_path in sorted((study_dir / "runs").glob("*/metrics.json")):
        run_dir = metrics_path.parent
        if wanted is not None and run_dir.name not in wanted:
            continue  # left over from an earlier version of the study file
        info_path = run_dir / "run.json"
        if not info_path.exists():
            continue
        rows.append(result_row(run_dir, read_json(info_path), read_json(metrics_path), meta.get("grid_keys", [])))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        write_dataframe_csv(study_dir / "results.csv", frame)
    return frame


def result_row(run_dir: Path, info: dict, metrics: dict, grid_keys: list[str]) -> dict:
    import yaml

    config = RunConfig.model_validate({k: v for k, v in yaml.safe_load((run_dir / "config.yaml").read_text())
                                       .items() if k != "versions"})
    num_layers = metrics.get("num_layers")
    freeze = config.freeze
    row = {"run_id": info["run_id"], "arm": info["arm"], "seed": info["seed"], "fold": info["fold"],
           "path": str(run_dir), "strategy": freeze.label}
    row["num_layers"] = num_layers
    reached = [h["unfrozen_layers"] for h in metrics.get("history", []) if "unfrozen_layers" in h]
    row["unfrozen_layers"] = max(reached) if reached else unfrozen_layers(freeze, num_layers)
    for key in grid_keys:
        row[key] = display_value(key, info["overrides"].get(key)) if key in info["overrides"] else None
    for split in ("val", "test"):
        for name, value in scalar_metrics(metrics.get(split, {})).items():
            row[f"{split}_{name}"] = value
    for key in ("trainable_params", "total_params", "train_seconds", "peak_rss_mb", "peak_gpu_mb", "best_epoch",
                "selection_metric"):
        row[key] = metrics.get(key)
    return row


def unfrozen_layers(freeze: FreezeConfig, num_layers: int | None) -> int | None:
    if freeze.strategy == "head":
        return 0
    if freeze.strategy == "top_k":
        return int(freeze.k)
    return num_layers
