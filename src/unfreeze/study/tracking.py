"""A study sent to a tracker: one parent (the study: file, grid, seeds as params; results.csv and the report as
artifacts; per-arm means as metrics) and one child per arm × seed × fold (a search: per finished trial and re-run,
logged when the search ends).

Everything is logged from the driver process, from what the run folders hold, whichever executor trained the
runs: a child is logged as each outcome arrives, and once more at the end for every finished run the tracker
does not hold yet (runs finished before tracking was switched on). The tracker finds a study again by its
folder and a child by its run id, so a resumed study adds only the runs it has not logged.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from unfreeze.config.load import run_config_dict
from unfreeze.config.study import StudyConfig
from unfreeze.io import read_json
from unfreeze.study.execute import RunOutcome
from unfreeze.study.grid import PlannedRun
from unfreeze.tracking.runs import baseline_metrics, open_tracker, replay_run

log = logging.getLogger(__name__)


class StudyTracking:
    """The tracker of one `run_study` call; every method is a no-op without backends and never raises."""

    def __init__(self, study: StudyConfig, study_dir: Path, jobs: list[PlannedRun], extra: list[str] | None,
                 study_text: str | None = None):
        self.study_dir, self.jobs = study_dir, {j.run_id: j for j in jobs}
        self.logged: set[str] = set()
        self.tracker = open_tracker(study.tracking, extra, study_dir, study.name)
        self.parent = None
        if self.tracker is None:
            return
        params = {"study": study.name, "grid": study.grid, "arms": sorted(study.arms), "seeds": study.seeds,
                  "cv_folds": study.cv.folds if study.cv else None, "runs": len(jobs), "study_file": study_text or ""}
        if study.search is not None:  # a search: its runs are known as trials finish (see `add_jobs`)
            params.update(search=study.search.model_dump(mode="json", exclude={"storage"}), runs=None)
        self.parent = self.tracker.start_study(study.name, params, {"task": jobs[0].config.task},
                                               study_dir=study_dir)

    def on_outcome(self, outcome: RunOutcome) -> None:
        """Log one run as its outcome reaches the driver (finished: from its metrics.json; failed: its error)."""
        job = self.jobs.get(outcome.run_id)
        if self.tracker is None or job is None or outcome.run_id in self.logged:
            return
        if outcome.ok:
            self._child(job, self._metrics(job, outcome.metrics), "FINISHED")
        elif not outcome.skipped:
            self._child(job, None, "FAILED", error=outcome.error)

    def add_jobs(self, jobs: list[PlannedRun]) -> None:
        """Runs planned after the start: a search's trials and re-runs, known once Optuna asked for them."""
        self.jobs.update({j.run_id: j for j in jobs})

    def log_finished(self) -> None:
        """Every finished run not logged in this process (a resumed study, or tracking switched on later)."""
        if self.tracker is None:
            return
        for run_id, job in self.jobs.items():
            path = self.study_dir / "runs" / run_id / "metrics.json"
            if run_id not in self.logged and path.exists():
                self._child(job, read_json(path), "FINISHED")

    def close(self, results: pd.DataFrame, status: str = "FINISHED") -> None:
        """The study's own numbers (each arm's mean and std of every val_/test_ column) and files."""
        if self.tracker is None:
            return
        metrics: dict[str, float] = {"runs_finished": float(len(results))}
        if not results.empty and "arm" in results:
            columns = [c for c in results.columns if c.startswith(("val_", "test_"))
                       and pd.api.types.is_numeric_dtype(results[c])]
            grouped = results.groupby("arm")[columns]
            for stat, frame in (("mean", grouped.mean()), ("std", grouped.std())):
                for arm, row in frame.iterrows():
                    metrics.update({f"{arm}/{col}_{stat}": value for col, value in row.items() if pd.notna(value)})
        metrics.update(baseline_metrics(self.study_dir))  # the baseline row competes in the verdict: log it too
        files = [self.study_dir / name for name in ("results.csv", "report.html", "report.md", "study.yaml")]
        self.tracker.end_study(self.parent, metrics, [p for p in files if p.exists()], status=status)

    def _metrics(self, job: PlannedRun, metrics: dict) -> dict:
        if "history" in metrics:
            return metrics
        path = self.study_dir / "runs" / job.run_id / "metrics.json"
        return read_json(path) if path.exists() else metrics

    def _child(self, job: PlannedRun, results: dict | None, status: str, error: str | None = None) -> None:
        tags = {"arm": job.arm, "seed": job.seed, "fold": job.fold, "run_id": job.run_id,
                "strategy": job.config.freeze.strategy, "freeze": job.config.freeze.label}
        if error:
            tags["error"] = error
        fold = f" · fold {job.fold}" if job.fold >= 0 else ""
        params = {k: v for k, v in run_config_dict(job.config).items() if k != "tracking"}
        replay_run(self.tracker, f"{job.arm} · seed {job.seed}{fold}", params, results, tags, self.parent,
                   run_id=job.run_id, status=status)
        self.logged.add(job.run_id)
