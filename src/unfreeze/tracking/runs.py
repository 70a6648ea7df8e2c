"""What unfreeze sends to a tracker for one run, and which tracker a run or study file asks for.

A run is logged by *replaying* its results after `train()` returned (history rows at their optimizer step, then
the final metrics): the training loop stays free of tracking code, a run trained elsewhere (a Ray worker) is
logged the same way from the driver, and a tracker that is down can never cost a trained run.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from unfreeze.tracking.common import Handle
from unfreeze.tracking.tracker import Tracker, make_tracker

# final numbers of a run besides its val/test metrics (keys of train()'s return value)
RUN_NUMBERS = ("trainable_params", "total_params", "train_seconds", "best_epoch", "peak_rss_mb", "peak_gpu_mb")


def backend_names(configured: Iterable[str], extra: Iterable[str] | None) -> list[str]:
    """The file's `tracking.backends` plus the command line's `--track` names, each once, in that order."""
    return list(dict.fromkeys([*configured, *(extra or [])]))


def open_tracker(tracking, extra: Iterable[str] | None, root_dir: Path, default_experiment: str) -> Tracker | None:
    """A Tracker for a `TrackingConfig` + `--track` names, storing under `root_dir`; None when none is asked for
    (so an untracked run imports no tracking package at all)."""
    names = backend_names(tracking.backends, extra)
    if not names:
        return None
    return make_tracker(names, root_dir, tracking.experiment or default_experiment)


def final_metrics(results: Mapping[str, Any]) -> dict[str, Any]:
    """`train()`'s return value reduced to numbers: scalar val/test metrics (per-class tables left out, they are
    in the run folder), parameter counts, seconds and peak memory."""
    from unfreeze.metrics.classification import scalar_metrics

    out: dict[str, Any] = {split: scalar_metrics(results[split]) for split in ("val", "test") if split in results}
    out.update({k: results[k] for k in RUN_NUMBERS if isinstance(results.get(k), (int, float))})
    return out


def replay_run(tracker: Tracker, name: str, params: Mapping[str, Any], results: Mapping[str, Any] | None,
               tags: Mapping[str, Any], parent: Handle | None = None, run_id: str | None = None,
               status: str = "FINISHED") -> Handle:
    """Log one finished (or failed: `results` None) run: params, each evaluation at its step, final metrics."""
    handle = tracker.start_run(name, params, tags, parent, run_id=run_id)
    if handle.skipped:
        return handle
    for row in (results or {}).get("history", []):
        tracker.log_metrics(handle, history_metrics(row), step=int(row.get("step", 0)))
    tracker.end_run(handle, final_metrics(results) if results else {}, status=status)
    return handle


def history_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """One evaluation of `history` under the names the final metrics use: `val_f1_macro` → `val/f1_macro`, so
    each metric has ONE name in a tracker (its curve, then the saved model's value as the last point, which is
    the run's summary value), not a `val_f1_macro` curve beside a `val/f1_macro` summary."""
    return {("val/" + k[4:] if k.startswith("val_") else k): v for k, v in row.items()}


def baseline_metrics(study_dir: str | Path) -> dict[str, float]:
    """The study's baseline rows as tracker metrics: `baseline/val/f1_macro`, `baseline/test/accuracy`, ... (one
    baseline) or `baseline/<data key>/test/...` (one per distinct training set), plus the baseline's seconds.
    Read from `baseline/*/metrics.json` (and the older single `baseline/metrics.json`)."""
    from unfreeze.io import read_json
    from unfreeze.metrics.classification import scalar_metrics

    root = Path(study_dir) / "baseline"
    paths = sorted(root.glob("*/metrics.json")) or [p for p in [root / "metrics.json"] if p.exists()]
    out: dict[str, float] = {}
    for path in paths:
        try:
            saved = read_json(path)
        except (OSError, ValueError):
            continue
        prefix = "baseline/" if len(paths) == 1 else f"baseline/{path.parent.name}/"
        for split in ("val", "test"):
            if isinstance(saved.get(split), Mapping):
                out.update({f"{prefix}{split}/{k}": v for k, v in scalar_metrics(saved[split]).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if isinstance(saved.get("train_seconds"), (int, float)):
            out[f"{prefix}train_seconds"] = float(saved["train_seconds"])
    return out


def track_run(config, out_dir: str | Path, results: Mapping[str, Any], extra: Iterable[str] | None = None) -> None:
    """Log one `unfreeze train` run to the file's `tracking` backends + `extra`, storing beside the run folder
    (`<parent>/mlflow.db`, `<parent>/tensorboard/<run>`, `<parent>/wandb`) unless MLFLOW_TRACKING_URI is set."""
    from unfreeze.config.load import run_config_dict

    out = Path(out_dir)
    tracker = open_tracker(config.tracking, extra, out.resolve().parent, "unfreeze")
    if tracker is None:
        return
    params = {k: v for k, v in run_config_dict(config).items() if k != "tracking"}
    tags = {"run_dir": str(out.resolve()), "strategy": config.freeze.strategy, "seed": config.seed}
    replay_run(tracker, out.name, params, results, tags)


def check_backend_names(names: Iterable[str] | None) -> None:
    """`--track` names are checked before any training, so a typo fails in a second, not after the run."""
    from unfreeze.errors import ConfigError
    from unfreeze.tracking.common import BACKENDS

    for name in names or []:
        if name not in BACKENDS:
            raise ConfigError(f"--track {name!r}: unknown tracking backend; choose from {', '.join(BACKENDS)}")
