"""MLflow backend: a study is a parent run, each run a child run (see the package docstring)."""
from __future__ import annotations

import contextlib
import getpass
import importlib.util
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from unfreeze.tracking import common
from unfreeze.tracking.common import (INSTALL_HINT, KIND_TAG, MLFLOW_HTTP_DEFAULTS, MLFLOW_PROBE_ENV, RUN_ID_TAG,
                                      STUDY_DIR_TAG, BackendUnavailable, _Part, chunks,
                                      env_defaults, first_line, mlflow_key)

# ---------------------------------------------------------------------------------------------------------
# MLflow


class MlflowBackend:
    """A study is a parent run, each run a child (tag `mlflow.parentRunId`); params/metrics go in `log_batch`es.

    Store: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<root_dir>/mlflow.db` with artifacts in
    `<root_dir>/mlartifacts` (MLflow 3.17 refuses the `./mlruns` file store unless MLFLOW_ALLOW_FILE_STORE is
    set, and `cd <root_dir> && mlflow ui` opens `./mlflow.db` by default), else MLflow's own default."""

    name = "mlflow"

    def __init__(self, root_dir: Path | None, experiment: str):
        if importlib.util.find_spec("mlflow") is None:
            raise BackendUnavailable(f"the package is not installed; {INSTALL_HINT['mlflow']}")
        from mlflow.utils import validation

        common.MAX_PARAM_VAL_LENGTH = getattr(validation, "MAX_PARAM_VAL_LENGTH", common.MAX_PARAM_VAL_LENGTH)
        common.MAX_TAG_VAL_LENGTH = getattr(validation, "MAX_TAG_VAL_LENGTH", common.MAX_TAG_VAL_LENGTH)
        common.MAX_PARAMS_TAGS_PER_BATCH = getattr(validation, "MAX_PARAMS_TAGS_PER_BATCH", common.MAX_PARAMS_TAGS_PER_BATCH)
        common.MAX_METRICS_PER_BATCH = getattr(validation, "MAX_METRICS_PER_BATCH", common.MAX_METRICS_PER_BATCH)
        from mlflow import MlflowClient

        user_uri = os.environ.get("MLFLOW_TRACKING_URI")
        if user_uri:
            uri = user_uri
        elif root_dir is not None:
            root_dir.mkdir(parents=True, exist_ok=True)
            uri = "sqlite:///" + str((root_dir / "mlflow.db").resolve())
        else:
            import mlflow

            uri = mlflow.get_tracking_uri()
        self.uri = uri
        where = f"MLFLOW_TRACKING_URI={uri}" if user_uri else uri
        check_store(uri, where)
        remote = uri.startswith(("http://", "https://"))
        probe = {k: v for k, v in MLFLOW_PROBE_ENV.items() if k not in os.environ}  # the user's settings win
        if remote:
            for key, value in MLFLOW_HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
        fix = ("start the server there, or unset MLFLOW_TRACKING_URI to log to a local SQLite file" if remote
               else "check the path and permissions, or set MLFLOW_TRACKING_URI")
        try:
            self.client = MlflowClient(tracking_uri=uri)
            with env_defaults(probe, override=True) if remote else contextlib.nullcontext():
                self.experiment_id = self._experiment(experiment, root_dir, local=not remote)
        except Exception as exc:  # noqa: BLE001 — any failure to reach the store means: off, with the reason
            raise BackendUnavailable(f"the tracking store at {where} did not answer ({first_line(exc)}); "
                                     f"{fix}") from None
        self.fix = fix

    def _experiment(self, name: str, root_dir: Path | None, local: bool) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id
        artifacts = (root_dir / "mlartifacts").resolve().as_uri() if (root_dir is not None and local) else None
        return self.client.create_experiment(name, artifact_location=artifacts)

    # -- lookups

    def _search(self, filter_string: str) -> Iterator[Any]:
        from mlflow.entities import ViewType

        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                           max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _children(self, parent_id: str) -> dict[str, list[Any]]:
        by_key: dict[str, list[Any]] = {}
        for run in self._search(f"tags.`mlflow.parentRunId` = '{parent_id}'"):
            key = run.data.tags.get(RUN_ID_TAG)
            if key:
                by_key.setdefault(key, []).append(run)
        return by_key

    # -- logging

    def _log(self, run_id: str, metrics: Mapping[str, float] = (), step: int = 0,
             params: Mapping[str, str] = (), tags: Mapping[str, str] = ()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        ms = [Metric(mlflow_key(k), float(v), now, int(step)) for k, v in dict(metrics).items()]
        ps = [Param(mlflow_key(k), str(v)[:common.MAX_PARAM_VAL_LENGTH]) for k, v in dict(params).items()]
        ts = [RunTag(mlflow_key(k), str(v)[:common.MAX_TAG_VAL_LENGTH]) for k, v in dict(tags).items()]
        for batch in chunks(ps, common.MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=batch)
        for batch in chunks(ts, common.MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=batch)
        for batch in chunks(ms, common.MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=batch)

    def _create(self, name: str, tags: dict[str, str]) -> str:
        tags = {mlflow_key(k): v[:common.MAX_TAG_VAL_LENGTH] for k, v in tags.items()}
        tags.setdefault("mlflow.user", _user())
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def start_study(self, name: str, params: dict[str, str], tags: dict[str, str], study_dir: str | None) -> _Part:
        existing = None
        if study_dir is not None:
            for run in self._search(f"tags.`{KIND_TAG}` = 'study'"):
                if run.data.tags.get(STUDY_DIR_TAG) == study_dir:
                    existing = run
                    break
        if existing is None:
            all_tags = {**tags, KIND_TAG: "study"}
            if study_dir is not None:
                all_tags[STUDY_DIR_TAG] = study_dir
            run_id = self._create(name, all_tags)
            self._log(run_id, params=params)
            return _Part(run_id, extra={"children": {}})
        run_id = existing.info.run_id
        self.client.update_run(run_id, status="RUNNING")
        # params cannot change in MLflow: add the new keys only (an edited study file may add grid keys)
        known = existing.data.params
        self._log(run_id, params={k: v for k, v in params.items() if mlflow_key(k) not in known},
                  tags={k: v for k, v in tags.items() if existing.data.tags.get(mlflow_key(k)) != v})
        return _Part(run_id, extra={"children": self._children(run_id)})

    def start_run(self, name: str, params: dict[str, str], tags: dict[str, str], parent: _Part | None,
                  run_id: str | None) -> _Part:
        earlier: list[Any] = []
        if run_id is not None:
            if parent is not None:
                earlier = parent.extra["children"].get(run_id, [])
            elif re.fullmatch(r"[\w.\-]+", run_id):
                earlier = list(self._search(f"tags.`{RUN_ID_TAG}` = '{run_id}'"))
        finished = [r for r in earlier if r.info.status == "FINISHED"]
        if finished:
            return _Part(finished[0].info.run_id, skipped=True)
        for stale in earlier:  # an interrupted or failed attempt: replaced, so the resumed study has one child
            self.client.delete_run(stale.info.run_id)
        all_tags = {**tags, KIND_TAG: "run"}
        if run_id is not None:
            all_tags[RUN_ID_TAG] = run_id
        if parent is not None:
            from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

            all_tags[MLFLOW_PARENT_RUN_ID] = parent.ref
        mlflow_run = self._create(name, all_tags)
        self._log(mlflow_run, params=params)
        if parent is not None and run_id is not None:
            parent.extra["children"][run_id] = []  # a second start_run of the same id in this process: a new try
        return _Part(mlflow_run)

    def log_metrics(self, part: _Part, metrics: dict[str, float], step: int) -> None:
        self._log(part.ref, metrics, step)
        part.last_step = max(part.last_step, step)

    def end_run(self, part: _Part, metrics: dict[str, float], status: str) -> None:
        self._log(part.ref, metrics, part.last_step)
        self.client.set_terminated(part.ref, status)

    def end_study(self, part: _Part, metrics: dict[str, float], artifacts: list[Path], status: str) -> None:
        self._log(part.ref, metrics, 0)
        for path in artifacts:
            if path.is_dir():
                self.client.log_artifacts(part.ref, str(path), artifact_path=path.name)
            elif path.exists():
                self.client.log_artifact(part.ref, str(path))
        self.client.set_terminated(part.ref, status)


def check_store(uri: str, where: str) -> None:
    """The causes MLflow itself reports badly, checked before it is asked: a `file:` store (MLflow 3 refuses it
    with a long maintenance notice), a SQLite store without its packages, and a SQLite file that cannot be written
    (MLflow retries for ~100 s, printing one warning block per try, then fails as if the install were broken).
    Raises `BackendUnavailable` with the real cause and its fix."""
    if uri.startswith("file:") or "://" not in uri and not uri.startswith(("sqlite:", "databricks")):
        raise BackendUnavailable(f"{where} is a file store, which MLflow 3 no longer writes; use a SQLite store "
                                 "(MLFLOW_TRACKING_URI=sqlite:///PATH/mlflow.db), or unset MLFLOW_TRACKING_URI "
                                 "to log to <study>/mlflow.db")
    if not uri.startswith("sqlite:"):
        return
    missing = [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailable(f"the SQLite store {uri} needs {' and '.join(missing)}; "
                                 f"pip install sqlalchemy alembic (or the full `mlflow` package)")
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        return
    db = Path(path)
    if not db.parent.is_dir():
        raise BackendUnavailable(f"the folder of the SQLite store {where} does not exist ({db.parent}); create it or "
                                 "point MLFLOW_TRACKING_URI elsewhere")
    try:
        with db.open("ab"):  # what SQLite needs first: the file opened for writing (created when absent)
            pass
    except OSError as exc:
        raise BackendUnavailable(f"the SQLite store {where} is not writable ({exc.strerror or exc}); it is a "
                                 "permission problem, not the install: make the file and its folder writable, or "
                                 "set MLFLOW_TRACKING_URI to a writable place") from None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no user name in some containers
        return "unknown"
