"""What makes a search the same search when it is resumed, kept with its Optuna study (`user_attrs`):

- `unfreeze_search`: the space (choices, ranges, log flags), sampler, pruner, selection metric and direction, and
  the run id of the base config (base + first seed) — a resumed search whose file changed any of these would tell
  Optuna, results.csv and the report's pick trials of two different searches as one, so it is refused in one line
  naming the first difference (a new search needs another `--out`, or another `name:` in a shared storage);
- `unfreeze_folder`: the study folder that owns a `storage:` SQLite file given in the study file — a second folder
  naming the same file and study name would mark the first one's live trials FAIL and retrain its values;
  refused. (The default `<study>/optuna.db` is owned by its folder, which may be moved; a database URL is shared
  by design.)

A study stored before these attributes existed is compared through its trials' parameter distributions
(Optuna's own record of each asked range and choice list). `storage_errors` turns a damaged, deleted or locked
storage into one line naming it and the fix.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from unfreeze.config.schema import RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError, UnfreezeError
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.study.search_space import encode, import_optuna, planned, storage_url

SEARCH_ATTR, FOLDER_ATTR = "unfreeze_search", "unfreeze_folder"


def selection(study: StudyConfig) -> tuple[str, str]:
    """(the validation metric every trial is told, Optuna's direction for it)."""
    metric = RunConfig.model_validate({**study.base, "seed": study.seeds[0]}).selection_metric
    return metric, "minimize" if metric in LOWER_IS_BETTER else "maximize"


def identity(study: StudyConfig) -> dict:
    s = study.search
    space = {k: [encode(v) for v in spec] if isinstance(spec, list) else
             {"low": spec["low"], "high": spec["high"], "log": bool(spec.get("log"))} for k, spec in s.space.items()}
    metric, direction = selection(study)
    return {"space": space, "sampler": s.sampler, "pruner": s.pruner,
            "startup_trials": s.startup_trials if s.pruner == "median" else None, "metric": metric,
            "direction": direction, "base": planned(study, {}, study.seeds[0]).run_id}


def _shown(spec) -> str:
    if isinstance(spec, dict) and "low" in spec:
        return f"[{spec['low']}, {spec['high']}]" + (" (log)" if spec.get("log") else "")
    return json.dumps(spec)


def differences(stored: dict, now: dict) -> list[str]:
    """One phrase per changed key: `search.space.optim.lr: [1e-05, 0.001] (log) → [0.002, 0.005] (log)`."""
    out = []
    for key in sorted(set(stored["space"]) | set(now["space"])):
        old, new = stored["space"].get(key), now["space"].get(key)
        if old != new:
            out.append(f"search.space.{key}: " + ("added" if old is None else "removed" if new is None else
                                                  f"{_shown(old)} → {_shown(new)}"))
    names = {"metric": "train.metric (as resolved)", "direction": "the metric's direction",
             "base": "base (the run config every trial starts from, first seed included; run id)"}
    for key in ("sampler", "pruner", "startup_trials", "metric", "direction", "base"):
        if stored.get(key) != now.get(key):
            out.append(f"{names.get(key, 'search.' + key)}: {stored.get(key)} → {now.get(key)}")
    return out


def _legacy_differences(optuna, opt, study: StudyConfig) -> list[str]:
    """A study stored without `unfreeze_search`: its trials' distributions against the space's."""
    expected = {}
    for key, spec in study.search.space.items():
        if isinstance(spec, list):
            expected[key] = optuna.distributions.CategoricalDistribution([encode(v) for v in spec])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            expected[key] = optuna.distributions.IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            expected[key] = optuna.distributions.FloatDistribution(float(spec["low"]), float(spec["high"]),
                                                                   log=bool(spec.get("log")))
    for trial in opt.get_trials(deepcopy=False):
        for key, dist in trial.distributions.items():
            if key not in expected:
                return [f"search.space.{key}: removed (trial {trial.number} ran it)"]
            if dist != expected[key]:
                return [f"search.space.{key}: {dist} in trial {trial.number} → {expected[key]}"]
    return []


def check_resume(study: StudyConfig, study_dir: Path) -> None:
    """Refuse, before anything is written, to resume a stored search with a different identity, or a study name
    in a `storage:` SQLite file owned by another folder. Nothing stored yet: nothing to compare."""
    url = storage_url(study, study_dir)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return  # nothing stored yet (and opening it would create the file)
    optuna = import_optuna()
    with storage_errors(study, study_dir):
        try:
            opt = optuna.load_study(study_name=study.name, storage=url)
        except KeyError:
            return
        attrs = opt.user_attrs
        owner = attrs.get(FOLDER_ATTR)
        if owner is not None and owner_matters(study) and owner != str(Path(study_dir).resolve()):
            raise ConfigError(f"search.storage {url}: study {study.name!r} in it belongs to the study folder {owner}"
                              f"; a second folder on it would fail the first one's running trials and retrain its "
                              f"values: give this search another `name:` or another `storage:`, or run it with "
                              f"--out {owner}")
        stored = attrs.get(SEARCH_ATTR)
        found = differences(stored, identity(study)) if stored else _legacy_differences(optuna, opt, study)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(f"{url.removeprefix('sqlite:///')}: the search stored there was run with another "
                          f"definition: {found[0]}{more}; a changed search is a new search, never merged into the "
                          "old one: run it with another --out (or another `name:` in a shared storage), or restore "
                          "the old value")


def owner_matters(study: StudyConfig) -> bool:
    """A `storage:` SQLite file named in the study file: one folder's (the default file is inside its folder)."""
    return study.search.storage is not None and study.search.storage.startswith("sqlite")


def record(opt, study: StudyConfig, study_dir: Path) -> None:
    """Store the identity (and owner folder) with a study that has none yet: new, or stored by an older version
    and checked through its distributions by `check_resume`."""
    attrs = opt.user_attrs
    if SEARCH_ATTR not in attrs:
        opt.set_user_attr(SEARCH_ATTR, identity(study))
    if owner_matters(study):
        folder = str(Path(study_dir).resolve())
        if FOLDER_ATTR not in attrs:
            opt.set_user_attr(FOLDER_ATTR, folder)
        owner = opt.user_attrs[FOLDER_ATTR]  # read back: of two folders that created it together, one wins
        if owner != folder:
            raise ConfigError(f"search.storage {study.search.storage}: study {study.name!r} in it belongs to the "
                              f"study folder {owner}; give this search another `name:` or another `storage:`")


@contextlib.contextmanager
def storage_errors(study: StudyConfig, study_dir: Path):
    """A storage that cannot be read or written (a damaged file, one deleted while the search ran, a database
    that went away) as one line naming it and the fix; finished run folders are untouched either way."""
    optuna = import_optuna()
    try:
        import sqlalchemy.exc

        errors: tuple = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)
    except ImportError:  # pragma: no cover — Optuna's RDB storage needs SQLAlchemy
        errors = (optuna.exceptions.StorageInternalError,)
    try:
        yield
    except ImportError as exc:
        if "DB access module" not in str(exc):
            raise
        scheme = storage_url(study, study_dir).split(":", 1)[0]
        raise UnfreezeError(f"search.storage: no database driver for {scheme!r} is installed (SQLAlchemy needs one, "
                            "e.g. `pip install psycopg2-binary` for postgresql, `pymysql` for mysql+pymysql)") from None
    except errors as exc:
        url = storage_url(study, study_dir)
        cause = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        if study.search.storage is None:
            db = study_dir / "optuna.db"
            raise UnfreezeError(
                f"{db}: the search's Optuna storage failed ({cause}); it was damaged, or deleted or replaced while the "
                f"search ran: move it away (`mv {db} {db}.bad`) and run the study again — finished runs in "
                f"{study_dir / 'runs'} are reused, not retrained") from None
        raise UnfreezeError(f"search.storage {url}: the Optuna storage failed ({cause}); check that the database "
                            "is reachable and not damaged, then run the study again (finished runs are kept)") from None
