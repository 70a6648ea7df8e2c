"""Grid expansion and run identity (pure): arms from the grid and named arms, readable arm names, and a stable
hash of each run's non-default config values + fold that names its folder.
"""
from __future__ import annotations

import hashlib

import itertools

import json

import logging

import unicodedata



from dataclasses import dataclass
from pathlib import Path


from typing import Any



from unfreeze.config.schema import FreezeConfig, RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.config.load import apply_overrides, describe_validation_error

from unfreeze.errors import ConfigError
from unfreeze.io.paths import overrides_hash



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



def display_value(key: str, value: Any) -> str:
    if key == "freeze":
        return FreezeConfig.model_validate(value).label
    if key == "data.train_size" and value is None:
        return "full"  # null: the whole training split
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)



def arm_name(overrides: dict[str, Any]) -> str:
    """Readable arm name from the grid values, e.g. `top-2 · train_size=500`, `model=bilstm · optim=adam` (a model
    folder by its last part)."""
    if not overrides:
        return "base"
    parts = []
    for key, value in overrides.items():
        shown = display_value(key, value)
        section, _, field = key.rpartition(".")
        if field == "name" and section:  # `model=bilstm`, `optim=adam`: "name=…" alone would not say of what
            parts.append(f"{section}={Path(shown).name or shown if section == 'model' else shown}")
            continue
        parts.append(shown if key == "freeze" else f"{field}={shown}")
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
    return unique_arm_names(arms)



def unique_arm_names(arms: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """One display name per distinct config: arms whose readable names collide (`model.name: [A/best, B/best]`
    both read `model=best`) get what tells them apart appended (`model=best (A/best)`), and where even that
    collides, a short hash of their overrides (`#1a2b3c4d`). The report groups runs by arm name, so two configs
    under one name would be pooled as if they were seeds. Arm names with control characters are refused."""
    for name, _ in arms:
        check_arm_name(name)
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, overrides in arms:
        groups.setdefault(name, []).append(overrides)
    named = []
    for name, overrides in arms:
        group = groups[name]
        extra = _difference(overrides, group) if len(group) > 1 else ""
        named.append((f"{name} ({extra})" if extra else name, overrides))
    counts: dict[str, set[str]] = {}
    for name, overrides in named:
        counts.setdefault(name, set()).add(overrides_hash(overrides))
    return [(f"{name} #{overrides_hash(overrides)}" if len(counts[name]) > 1 else name, overrides)
            for name, overrides in named]


def check_arm_name(name: str) -> None:
    """Refuse control characters (newline, tab, NUL…) and line separators in an arm name: they break the report's
    tables and the one-line progress output, and no display needs them."""
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    if bad:
        raise ConfigError(f"study arm {name!r}: contains the control character {bad[0]!r}; arm names (named arms and "
                          "grid values) must be one line of printable text: rename it")


def _difference(overrides: dict[str, Any], group: list[dict[str, Any]]) -> str:
    """What tells `overrides` apart from the other arms of `group` (same display name), readably: for paths (a
    model folder) the shortest trailing part that differs, else the value as written."""
    parts = []
    for key in sorted({k for other in group for k in other}):
        values = [other.get(key) for other in group]
        if all(json.dumps(v, sort_keys=True, default=str) == json.dumps(values[0], sort_keys=True, default=str)
               for v in values):
            continue
        value = overrides.get(key)
        if isinstance(value, str) and "/" in value:
            parts.append(_path_suffix(value, [v for v in values if isinstance(v, str)]))
        else:
            parts.append(f"{key}={json.dumps(value, sort_keys=True, default=str)}")
    return ", ".join(parts)


def _path_suffix(value: str, values: list[str]) -> str:
    """The shortest trailing run of `value`'s path parts that no other of `values` ends with."""
    split = [Path(v).parts for v in values]
    mine = Path(value).parts
    for k in range(1, len(mine) + 1):
        tail = mine[-k:]
        if sum(1 for other in split if other[-k:] == tail) == 1:
            return "/".join(tail)
    return value


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
    the hash, as it may change the results. `tracking` only says where results are sent: never part of it."""
    values = config.model_dump(mode="json", exclude_defaults=True, exclude={"tracking"})
    text = json.dumps({"config": values, "fold": fold}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]



def run_config_of(study, overrides: dict[str, Any], seed: int, source: str) -> RunConfig:
    """The run config of one arm (or search trial) and seed: the study's base with `overrides` set at their
    dotted keys; a config the overrides make invalid is one line naming `source`."""
    from unfreeze.config.load import set_dotted

    data = apply_overrides(study.base, [])
    for key, value in overrides.items():
        set_dotted(data, key, value)
    data["seed"] = seed
    try:
        return RunConfig.model_validate(data)
    except Exception as exc:  # pydantic ValidationError
        raise ConfigError(describe_validation_error(exc, RunConfig, source)) from None


def expand(study: StudyConfig) -> list[PlannedRun]:
    """Every planned run, breadth-first: each arm's first seed (all folds) before any arm's second seed, so a study
    stopped early (Ctrl-C, a time limit, seed racing) has one result for every arm instead of many for a few."""
    runs: list[PlannedRun] = []
    folds = range(study.cv.folds) if study.cv else [-1]
    seen: set[str] = set()
    for arm, overrides in arm_overrides(study):
        for seed in study.seeds:
            config = run_config_of(study, overrides, seed, f"study arm {arm!r}")
            for fold in folds:
                run_id = config_hash(config, fold)
                if run_id in seen:
                    raise ConfigError(f"study arm {arm!r} (seed {seed}) duplicates another arm's config")
                seen.add(run_id)
                runs.append(PlannedRun(run_id, arm, seed, fold, overrides, config))
    seed_rank = {seed: i for i, seed in enumerate(study.seeds)}
    return sorted(runs, key=lambda run: seed_rank[run.seed])  # stable: arm order, then folds, within a seed
