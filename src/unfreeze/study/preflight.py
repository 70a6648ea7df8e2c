"""Every check a study makes on its file before the first run, as one list of one-line problems: the base's run
config, each arm × seed of a grid (or each value, range end and list combination of a search space), and
configs that collide. `unfreeze validate` prints them all at once; a study (and its dry run) refuses on the same
list (`check`), so a file `validate` passes never stops a study before training, and the other way round.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

from pydantic import ValidationError

from unfreeze.config.load import apply_overrides, describe_error, describe_validation_errors, set_dotted
from unfreeze.config.schema import FreezeConfig, RunConfig
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
    """Every problem, once each: an error that every arm shares with the base is listed once, as the base's; an
    arm's own error once, for the first arm × seed that has it. `source` (the file) prefixes each line."""
    lead = f"{source}: " if source else ""
    if study.search is not None:
        return _search_problems(study, lead)
    lines, study = _freeze_values(study, lead)  # an arm is named from its freeze value: bad ones are left out
    base_errors, _ = _errors(study, {}, study.seeds[0])
    base_keys = {key for key, _ in base_errors}
    seen: set[tuple] = set()
    ids: dict[str, str] = {}
    for arm, overrides in arm_overrides(study):
        for seed in study.seeds:
            errors, config = _errors(study, overrides, seed)
            for key, describe in errors:  # the base's own error (not one of the arm's values): named as the base's
                if key not in seen:
                    seen.add(key)
                    lines.append(describe(f"{lead}base" if key in base_keys else f"{lead}study arm {arm!r}"))
            if config is None:
                continue
            run_id = config_hash(config, -1)
            if run_id in ids:
                lines.append(f"{lead}study arm {arm!r} (seed {seed}) duplicates the config of study arm "
                             f"{ids[run_id]!r}; drop one of them")
            ids.setdefault(run_id, arm)
    return lines


def _search_problems(study: StudyConfig, lead: str) -> list[str]:
    """A search: the base alone (every trial starts from it), each value and range end with it, then every
    combination of the lists."""
    seen: set[tuple] = set()
    lines = _lines(_errors(study, {}, study.seeds[0])[0], f"{lead}base", seen)
    for label, overrides in _values(study.search.space, "search.space"):
        lines += _lines(_errors(study, overrides, study.seeds[0])[0], f"{lead}{label}", seen)
    return lines or _duplicate_choices(study, lead) or _combination_problems(study, lead)


def _duplicate_choices(study: StudyConfig, lead: str) -> list[str]:
    """Two choices of one list that give the same run config (`1.0e-3` and `0.001`, `all` and `"all"`): the grid's
    rule (`grid.expand`, configs told apart by `config_hash`), so a search never spends trials on one config twice."""
    lines = []
    for key, spec in study.search.space.items():
        ids: dict[str, Any] = {}
        for value in spec if isinstance(spec, list) else []:
            config = _errors(study, {key: value}, study.seeds[0])[1]
            run_id = config_hash(config, -1) if config is not None else None
            if run_id in ids:
                lines.append(f"{lead}search.space.{key}: value {value!r} duplicates value {ids[run_id]!r} (the "
                             "same run config); drop one of them")
            elif run_id is not None:
                ids[run_id] = value
    return lines


def _freeze_values(study: StudyConfig, lead: str) -> tuple[list[str], StudyConfig]:
    """(the problems of the grid's `freeze` values, valid alone or not at all, the study with the valid ones)."""
    lines, valid = [], []
    for value in study.grid.get("freeze", []):
        try:
            FreezeConfig.model_validate(value)
            valid.append(value)
        except ValidationError as exc:
            lines += describe_validation_errors(exc, FreezeConfig, f"{lead}grid.freeze value {value!r}")
        except ConfigError as exc:
            lines.append(f"{lead}grid.freeze value {value!r}: {exc}")
    if not lines:
        return lines, study
    grid = {k: v for k, v in study.grid.items() if k != "freeze"} | ({"freeze": valid} if valid else {})
    return lines, study.model_copy(update={"grid": grid})


def _values(space: dict[str, Any], section: str) -> Iterator[tuple[str, dict]]:
    """Each list value and both ends of each range, alone."""
    for key, spec in space.items():
        for value in spec if isinstance(spec, list) else [spec["low"], spec["high"]]:
            yield f"{section}.{key} value {value!r}", {key: value}


def _combination_problems(study: StudyConfig, lead: str) -> list[str]:
    """Values valid alone can clash (two split fractions): every combination of the lists, in spaces of up to
    `CHECKED_COMBINATIONS`."""
    from unfreeze.study.search_space import list_combinations

    lists = [v for v in study.search.space.values() if isinstance(v, list)]
    if len(lists) < 2 or math.prod(len(v) for v in lists) > CHECKED_COMBINATIONS:
        return []
    lines = []
    for values in list_combinations(study):
        errors, _ = _errors(study, values, study.seeds[0])
        if errors:
            lines.append(f"{lead}search.space: the combination {values} is not a valid run "
                         f"({errors[0][1]('')[2:]}); drop one of these values, or split the search in two")
    return lines


def _data(study: StudyConfig, overrides: dict[str, Any], seed: int) -> dict:
    data = apply_overrides(study.base, [])
    for key, value in overrides.items():
        set_dotted(data, key, value)
    data["seed"] = seed
    return data


def _errors(study: StudyConfig, overrides: dict[str, Any], seed: int) -> tuple[list[tuple], RunConfig | None]:
    """([(identity of an error, source → its one line)], the config when it is valid). An error's identity is its
    key, message and value (an unknown key: key and message), so the same mistake met in many arms is one."""
    try:
        return [], RunConfig.model_validate(_data(study, overrides, seed))
    except ConfigError as exc:  # raised inside a validator
        return [(((), str(exc), None), lambda source, exc=exc: f"{source}: {exc}")], None
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            value = None if err["type"] == "extra_forbidden" else repr(err.get("input"))[:200]
            out.append(((tuple(map(str, err["loc"])), err["msg"], value),
                        lambda source, err=err: describe_error(err, RunConfig, source)))
        return out, None


def _lines(errors: list[tuple], source: str, seen: set) -> list[str]:
    out = []
    for key, describe in errors:
        if key not in seen:
            seen.add(key)
            out.append(describe(source))
    return out
