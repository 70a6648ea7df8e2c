"""The fan-out `Tracker` over the live backends, and `make_tracker` (see the package docstring)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from unfreeze.tracking.common import (INSTALL_HINT, BackendUnavailable, Handle, first_line, normalise_status, str_tags, flatten_metrics, flatten_params, log)
from unfreeze.errors import ConfigError
from unfreeze.tracking.mlflow_backend import MlflowBackend
from unfreeze.tracking.tensorboard_backend import TensorboardBackend
from unfreeze.tracking.wandb_backend import WandbBackend
from unfreeze.tracking.common import BACKENDS

STORE_HINT = {"mlflow": "MLFLOW_TRACKING_URI, or <study>/mlflow.db", "wandb": "WANDB_DIR / WANDB_MODE",
              "tensorboard": "<study>/tensorboard"}

# ---------------------------------------------------------------------------------------------------------
# Fan-out


_BACKEND_CLASSES = {"mlflow": MlflowBackend, "wandb": WandbBackend, "tensorboard": TensorboardBackend}


class Tracker:
    """Sends each call to every live backend; a backend that raises is switched off with one warning.

    Every public method returns normally whatever the backends do (only KeyboardInterrupt / SystemExit pass),
    so a training loop can call it without try/except."""

    def __init__(self, backends: list[Any]):
        self.backends = list(backends)
        self.off: set[str] = set()

    @property
    def active(self) -> list[str]:
        """Names of the backends still logging."""
        return [b.name for b in self.backends if b.name not in self.off]

    def _switch_off(self, backend: Any, what: str, exc: BaseException) -> None:
        self.off.add(backend.name)
        log.warning("tracking: %s is off from now on (%s failed: %s); %s. Training goes on; the run folders are "
                    "unaffected.", backend.name, what, first_line(exc), getattr(backend, "fix", "check its setup"))

    def _each(self, what: str, handle: Handle | None, call) -> dict[str, Any]:
        results = {}
        for backend in self.backends:
            if backend.name in self.off:
                continue
            part = None
            if handle is not None:
                part = handle.parts.get(backend.name)
                if part is None or part.skipped:
                    continue
            try:
                results[backend.name] = call(backend, part)
            except Exception as exc:  # noqa: BLE001 — tracking must never stop training
                self._switch_off(backend, what, exc)
        return results

    def start_study(self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], *,
                    study_dir: str | Path | None = None) -> Handle:
        """Open (or, with the same `study_dir`, re-open) the study. `params` may be nested: flattened here."""
        flat, str_tag = flatten_params(params or {}), str_tags(tags)
        key = str(Path(study_dir).resolve()) if study_dir is not None else None
        parts = self._each("start_study", None, lambda b, _: b.start_study(name, flat, str_tag, key))
        return Handle("study", name, parts=parts)

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
                  parent: Handle | None = None, *, run_id: str | None = None) -> Handle:
        """Open a run (a child of `parent`). With `run_id`, a run this tracker already holds as finished is
        skipped (`handle.skipped`) and an unfinished earlier attempt is replaced."""
        flat, str_tag = flatten_params(params or {}), str_tags(tags)

        def call(backend, _):
            parent_part = parent.parts.get(backend.name) if parent is not None else None
            if parent is not None and parent_part is None:
                raise RuntimeError("the study was not opened in this backend")
            return backend.start_run(name, flat, str_tag, parent_part, run_id)

        parts = self._each("start_run", None, call)
        return Handle("run", name, skipped=bool(parts) and all(p.skipped for p in parts.values()), parts=parts)

    def log_metrics(self, handle: Handle | None, metrics: Mapping[str, Any], step: int) -> None:
        """One evaluation's numbers at optimizer step `step` (a `step` key in `metrics` is the x axis, not a
        metric, and is dropped)."""
        if handle is None or handle.skipped:
            return
        flat = {k: v for k, v in flatten_metrics(metrics or {}).items() if k != "step"}
        self._each("log_metrics", handle, lambda b, p: b.log_metrics(p, flat, int(step)))

    def end_run(self, handle: Handle | None, metrics: Mapping[str, Any], status: str = "FINISHED") -> None:
        """Close the run with its final metrics (nested dicts fine: `train()`'s return value as is)."""
        if handle is None or handle.skipped:
            return
        flat, final = flatten_metrics(metrics or {}), normalise_status(status)
        self._each("end_run", handle, lambda b, p: b.end_run(p, flat, final))

    def end_study(self, handle: Handle | None, metrics: Mapping[str, Any], artifacts: Iterable[str | Path] = (),
                  status: str = "FINISHED") -> None:
        """Close the study with its own numbers and files (e.g. results.csv, report.html)."""
        if handle is None:
            return
        flat, final = flatten_metrics(metrics or {}), normalise_status(status)
        paths = [Path(p) for p in artifacts]
        self._each("end_study", handle, lambda b, p: b.end_study(p, flat, paths, final))


def make_tracker(backends: Iterable[str], root_dir: str | Path | None, experiment: str = "unfreeze") -> Tracker:
    """A Tracker over the named backends ("mlflow", "wandb", "tensorboard"; an empty list gives a no-op one).

    A backend that cannot start (package missing, server down) is left out with one warning naming it and the
    fix. An unknown name is a config error and raises `ConfigError` (a typo should not silently log nothing)."""
    names = list(dict.fromkeys(backends))
    unknown = [n for n in names if n not in _BACKEND_CLASSES]
    if unknown:
        raise ConfigError(f"tracking backend {unknown[0]!r} is unknown; choose from {list(BACKENDS)}")
    root = Path(root_dir) if root_dir is not None else None
    live = []
    for name in names:
        try:
            live.append(_BACKEND_CLASSES[name](root, experiment))
        except BackendUnavailable as exc:
            log.warning("tracking: %s is off: %s. Training goes on without it.", name, exc)
        except ImportError as exc:  # a broken install: the one case where reinstalling is the fix
            log.warning("tracking: %s is off: it failed to import (%s); reinstall it with %s. Training goes on "
                        "without it.", name, first_line(exc), INSTALL_HINT[name])
        except Exception as exc:  # noqa: BLE001 — a store that refuses must not stop training either
            log.warning("tracking: %s is off: it failed to start (%s); check where it stores (%s) and that it is "
                        "writable. Training goes on without it.", name, first_line(exc), STORE_HINT[name])
    return Tracker(live)
