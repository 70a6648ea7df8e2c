"""Constants, pure helpers and handles shared by the tracking backends (see the package docstring)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from unfreeze.io.paths import path_component

log = logging.getLogger(__name__)

BACKENDS = ("mlflow", "wandb", "tensorboard")
STATUSES = ("FINISHED", "FAILED", "KILLED")
RUN_ID_TAG = "unfreeze.run_id"
STUDY_DIR_TAG = "unfreeze.study_dir"
KIND_TAG = "unfreeze.kind"

# MLflow's limits (mlflow.utils.validation, checked in 3.17.2); read from MLflow when it is installed
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
# W&B: tags and job types longer than 64 characters are rejected
WANDB_MAX_TAG_LENGTH = 64

# Bounded HTTP behaviour for a remote MLflow server, applied only where the user set nothing: MLflow's default
# (7 retries, exponential backoff, 120 s timeout) can stall a training loop for ~4 minutes per failing call.
# MLflow also prints "🏃 View run … at: URL" to stdout at every run end against a server: it would interleave
# with the study's one-line-per-run progress, so it is silenced (same rule: only if the user set nothing).
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
MLFLOW_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

INSTALL_HINT = {
    "mlflow": "pip install 'unfreeze[track]' (or: pip install mlflow-skinny sqlalchemy alembic)",
    "wandb": "pip install 'unfreeze[track]' (or: pip install wandb)",
    "tensorboard": "pip install 'unfreeze[track]' (or: pip install tensorboard)",
}


class BackendUnavailable(Exception):
    """A backend cannot start (package missing, server down); the message says why and how to fix it."""


# ---------------------------------------------------------------------------------------------------------
# Pure helpers


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → {"optim.lr": "2e-05", ...}: dotted keys, string values, ready for every backend.

    Lists and empty dicts become JSON text (one param, as they are one setting); other leaves become `str(v)`
    as MLflow's own `log_param` would. Values are cut to MLflow's 6000-character limit and keys to 250, the
    tightest limits of the three backends, so a param that logs to one backend logs to all."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, dotted + "."))
            continue
        if isinstance(value, (list, tuple, Mapping)):
            text = json.dumps(value, sort_keys=True, default=str)
        else:
            text = str(value)
        flat[dotted[:MAX_KEY_LENGTH]] = text[:MAX_PARAM_VAL_LENGTH]
    return flat


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a (nested) metrics dict as {"test/accuracy": 0.9, ...}.

    Nested dicts are joined with "/" (TensorBoard and W&B group charts by that prefix); strings, lists (e.g.
    `history`, logged step by step already), None and booleans are left out, so `train()`'s whole return value
    can be passed as is. NaN and infinities are kept: an undefined metric is information."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalar
            number = value.item()
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                flat[name] = float(number)
    return flat


def safe_name(name: str, limit: int = 120) -> str:
    """A folder name for a run or study name: `io.paths.path_component` (one component that cannot escape, and two
    names never share it: `a b` / `a_b`, `Fast` / `fast` on a case-insensitive disk)."""
    return path_component(name, max(limit, 24))


def mlflow_key(key: str) -> str:
    """A key MLflow accepts (letters, digits, `_ . - / space`, no empty / `.` / `..` path parts, ≤ 250 chars).

    MLflow rejects a whole batch for one bad key (e.g. a per-class metric named after a label with `&`), which
    would switch the backend off; cleaning the key keeps the value."""
    cleaned = re.sub(r"[^/\w.\- ]", "_", key)
    parts = ["_" if p in (".", "..") else p for p in cleaned.split("/") if p]
    return "/".join(parts)[:MAX_KEY_LENGTH] or "_"


def stable_id(*parts: str) -> str:
    """A 16-hex id that is the same for the same (study, run) across processes and re-runs."""
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextlib.contextmanager
def env_defaults(values: Mapping[str, str], override: bool) -> Iterator[None]:
    """Temporarily set environment variables (all of them, or only the unset ones); restores on exit."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if override or key not in os.environ:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def normalise_status(status: str) -> str:
    upper = str(status).upper()
    return upper if upper in STATUSES else "FAILED"


def str_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items()}


# ---------------------------------------------------------------------------------------------------------
# Handles


@dataclass
class Handle:
    """What `start_study` / `start_run` return; pass it back to the other calls.

    `skipped` is True when every backend already holds this run as finished (a resumed study): the later calls
    for it are no-ops. `parts` holds each backend's own handle (backend name → object)."""
    kind: str
    name: str
    skipped: bool = False
    parts: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Part:
    """One backend's state for one study or run."""
    ref: Any = None
    skipped: bool = False
    last_step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
