"""Every check a study makes on its file before the first run, as one list of one-line problems: the base's run
config, each arm × seed of a grid (or each value, range end and list combination of a search space), and
configs that collide. `unfreeze validate` prints them all at once; a study (and its dry run) refuses on the same
list (`check`), so a file `validate` passes never stops a study before training, and the other way round.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

from pydantic import ValidationError

from unfreeze.config.load import apply_overrides, describe_validation_errors, set_dotted
from unfreeze.config.schema import RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError
from unfreeze.study.grid import arm_overrides, config_hash

CHECKED_COMBINATIONS = 5000  # search spaces with more combinations of their lists are checked value by value only


def check(study: StudyConfig) -> None:
    """Refuse a study with any problem `problems` finds: the first, and how many more there are."""
    found = problems(study)
    if found:
        more = f" (and {len(found) - 1} more: `unfreeze validate FILE` lists every one)" if len(found) > 1 else ""
        raise ConfigError(found[0] + more)


def problems(study: StudyConfig, source: str | None = None) -> list[str]:
    """Every problem, once each: an error of the base is listed once (not once per arm), an arm's own error once
    for the first arm × seed that has it. `source` (the file) prefixes each line."""
    lead = f"{source}: " if source else ""
    seen: set[tuple] = set()
    lines, _ = _config_problems(study, {}, study.seeds[0], f"{lead}base", seen)
    if study.search is None:  # each grid value alone first: an arm is named from valid values only
        for label, overrides, seed, _ in _values(study.grid, "grid", study.seeds[0]):
            lines += _config_problems(study, overrides, seed, f"{lead}{label}", seen)[0]
        if lines:
            return lines
    runs = _values(study.search.space, "search.space", study.seeds[0]) if study.search else _grid_runs(study)
    ids: dict[str, str] = {}
    for label, overrides, seed, fold in runs:
        found, config = _config_problems(study, overrides, seed, f"{lead}{label}", seen)
        lines += found
        if config is None or study.search is not None:
            continue
        run_id = config_hash(config, fold)
        if run_id in ids:
            lines.append(f"{lead}{label} (seed {seed}) duplicates the config of {ids[run_id]}; drop one of them")
        ids.setdefault(run_id, label)
    if study.search is not None and not lines:
        lines += _combination_problems(study, lead, seen)
    return lines


def _grid_runs(study: StudyConfig) -> Iterator[tuple[str, dict, int, int]]:
    for arm, overrides in arm_overrides(study):
        for seed in study.seeds:
            yield f"study arm {arm!r}", overrides, seed, -1


def _values(space: dict[str, Any], section: str, seed: int) -> Iterator[tuple[str, dict, int, int]]:
    """Each list value and both ends of each range, alone (a search trial runs the first seed)."""
    for key, spec in space.items():
        for value in spec if isinstance(spec, list) else [spec["low"], spec["high"]]:
            yield f"{section}.{key} value {value!r}", {key: value}, seed, -1


def _combination_problems(study: StudyConfig, lead: str, seen: set) -> list[str]:
    """Values valid alone can clash (two split fractions): every combination of the lists, in spaces of up to
    `CHECKED_COMBINATIONS`."""
    from unfreeze.study.search_space import list_combinations

    lists = [v for v in study.search.space.values() if isinstance(v, list)]
    if len(lists) < 2 or math.prod(len(v) for v in lists) > CHECKED_COMBINATIONS:
        return []
    lines = []
    for values in list_combinations(study):
        found, _ = _config_problems(study, values, study.seeds[0], "", set())
        if found:
            lines.append(f"{lead}search.space: the combination {values} is not a valid run ({found[0][2:]}); drop "
                         "one of these values, or split the search in two")
    return lines


def _data(study: StudyConfig, overrides: dict[str, Any], seed: int) -> dict:
    data = apply_overrides(study.base, [])
    for key, value in overrides.items():
        set_dotted(data, key, value)
    data["seed"] = seed
    return data


def _config_problems(study: StudyConfig, overrides: dict[str, Any], seed: int, source: str,
                     seen: set) -> tuple[list[str], RunConfig | None]:
    """(the run config's errors not reported yet, the config when it is valid). `seen` holds (key, message,
    value) of the errors reported already."""
    try:
        return [], RunConfig.model_validate(_data(study, overrides, seed))
    except ConfigError as exc:  # raised inside a validator (e.g. an unknown strategy)
        return _unseen(([((), str(exc), None)], [f"{source}: {exc}"]), seen), None
    except ValidationError as exc:
        keys = [(tuple(map(str, e["loc"])), e["msg"],
                 None if e["type"] == "extra_forbidden" else repr(e.get("input"))[:200]) for e in exc.errors()]
        return _unseen((keys, describe_validation_errors(exc, RunConfig, source)), seen), None


def _unseen(errors: tuple[list, list[str]], seen: set) -> list[str]:
    out = []
    for key, line in zip(*errors):
        if key not in seen:
            seen.add(key)
            out.append(line)
    return out
