"""Experiment tracking: send runs and studies to MLflow, Weights & Biases and/or TensorBoard.

A study is one tracked *study* (MLflow: a parent run; W&B: a group; TensorBoard: a folder) and each of its runs
is one tracked *run* (MLflow: a child run; W&B: a run of the group; TensorBoard: one event folder). The API has
one call per moment of a run:

    tracker = make_tracker(["mlflow", "tensorboard"], study_dir / "tracking", experiment="unfreeze")
    study = tracker.start_study(name, params, tags, study_dir=study_dir)
    run = tracker.start_run(run_name, flatten_params(config_dict), {"arm": ..., "seed": ...}, parent=study,
                            run_id=job.run_id)
    tracker.log_metrics(run, history_row, step=history_row["step"])      # once per evaluation
    tracker.end_run(run, final_metrics, status="FINISHED")               # or "FAILED"
    tracker.end_study(study, study_metrics, [results_csv, report_html], status="FINISHED")

What the caller can rely on:
- Tracking never stops training. A backend whose package is missing, whose server does not answer, or that
  raises on any call is switched off with ONE `logging.warning` naming it and the fix; the others go on.
- Re-running a study does not duplicate runs: a study is found again by its `study_dir`, a run by its
  `run_id` (the study's stable config hash). A run that finished before is skipped (`handle.skipped`); one that
  was interrupted is replaced (MLflow: the old attempt is soft-deleted; TensorBoard: its old event files are
  removed), so its curve is not drawn twice.
- One name per metric: a run's evaluations are logged as `val/<metric>` at their optimizer step (history's
  `val_<metric>` renamed), and the saved model's final `val/<metric>` and `test/<metric>` at the last step; a
  study's parent also holds each arm's mean/std and the baseline row (`baseline/val/...`, `baseline/test/...`).
- No global state: MLflow is driven through an explicit `MlflowClient` (no active run), W&B runs are created
  with `reinit="create_new"` and finished one by one, TensorBoard writers are per run.

Packages (the `[track]` extra; tested with mlflow-skinny 3.17.2, tensorboard 2.21.0, wandb 0.31.0):
`mlflow-skinny` + `sqlalchemy` + `alembic` (the SQLite store), `tensorboard`, `wandb>=0.19.10` (`reinit=
"create_new"`). The full `mlflow` package is only needed to *view* (`mlflow ui`) and can live in another env.
"""
from __future__ import annotations

from unfreeze.tracking.common import (BACKENDS, KIND_TAG, MLFLOW_HTTP_DEFAULTS, RUN_ID_TAG, STUDY_DIR_TAG, Handle,
                                      flatten_metrics, flatten_params)
from unfreeze.tracking.tracker import Tracker, make_tracker

__all__ = ["BACKENDS", "KIND_TAG", "MLFLOW_HTTP_DEFAULTS", "RUN_ID_TAG", "STUDY_DIR_TAG", "Handle", "Tracker",
           "flatten_metrics", "flatten_params", "make_tracker"]
