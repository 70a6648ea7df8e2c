"""Reading configs: YAML (`yaml.safe_load` semantics, duplicate keys refused: `ConfigLoader`), `--set key=value` overrides,
and pydantic errors turned into one line that names the key and suggests the closest valid one.
"""
from __future__ import annotations

import copy

import difflib

from pathlib import Path

from typing import Any

import yaml

from pydantic import BaseModel, ValidationError

from unfreeze.errors import ConfigError
from unfreeze.config.schema import RunConfig
from unfreeze.config.study import StudyConfig



class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names one key twice (YAML keeps the last silently)."""


class ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (safe tags only), except that a key given twice in one mapping is an error naming the key
    and both lines, instead of the last one silently winning. (YAML 1.1 scalars are kept: `1e-5` without a dot is
    text, which every number field converts, and a search range's ends too; reading it as a float here would
    rename the arms of grids written that way, e.g. `lr=1e-5` → `lr=1e-05`, under studies already run.)"""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in lines:
                        raise DuplicateKeyError(problem=f"key `{key}` appears twice in one mapping (lines "
                                                        f"{lines[key]} and {line}): YAML would keep the last one "
                                                        "silently; keep one")
                    lines[key] = line
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str):
    """`yaml.safe_load` semantics, duplicate keys refused (every config and `--set` value goes through it)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 — ConfigLoader is a SafeLoader


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data



def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply `key.sub=value` overrides; values are parsed as YAML (`2`, `1e-3`, `[a, b]`, `{top_k: 2}`)."""
    data = copy.deepcopy(data)
    for item in overrides or []:
        key, raw = _set_item(item)
        try:
            value = load_yaml(raw)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({first}); quote text values, e.g. "
                              f"--set '{key.strip()}=\"{raw}\"'") from None
        set_dotted(data, key.strip(), value)
    return data



def _set_item(item: str) -> tuple[str, str]:
    """(key, raw value) of one `--set key=value`; a missing `=` or an empty key (`=3`, `train..epochs=2`) is one line."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
    key, raw = item.split("=", 1)
    if not all(part.strip() for part in key.strip().split(".")):
        raise ConfigError(f"--set {item!r}: the key before `=` is empty or has an empty part; write key=value, e.g. "
                          "train.epochs=2")
    return key, raw


def set_dotted(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value



def _validated(model, data: dict, source: str):
    """`model` validated from plain data; the first problem as one ConfigError line naming `source`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, model, source)) from None


def parse_run_config(data: dict, source: str = "config") -> RunConfig:
    return _validated(RunConfig, data, source)



def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    return parse_run_config(apply_overrides(read_yaml(path), overrides), str(path))



def parse_study_config(data: dict, source: str = "study") -> StudyConfig:
    """A study config from plain data (what a study YAML holds); errors name `source`."""
    return _validated(StudyConfig, data, source)


def load_study_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    return parse_study_config(apply_overrides(read_yaml(path), study_overrides(overrides)), str(path))


def study_overrides(overrides: list[str] | None) -> list[str]:
    """`--set` on a study: a study key (`seeds=[0,1]`, `grid.freeze=[head]`) applies as written; a run key
    (`train.epochs=1`) goes under `base.` — what a user means, since a study has no `train:` of its own. A key
    that is neither is an error suggesting the closest study or run key."""
    out = []
    for item in overrides or []:
        key, raw = _set_item(item)
        top = key.strip().split(".")[0]
        if top in StudyConfig.model_fields:
            out.append(item)
        elif top in RunConfig.model_fields:
            _check_run_key(key.strip(), item)
            out.append(f"base.{key.strip()}={raw}")
        else:
            candidates = list(StudyConfig.model_fields) + list(RunConfig.model_fields)
            close = difflib.get_close_matches(top, candidates, n=1, cutoff=0.5)
            rest = key.strip()[len(top):]
            hint = (f"did you mean `{close[0]}{rest}`?" if close else
                    f"study keys: {', '.join(StudyConfig.model_fields)}; run keys (applied to base): "
                    f"{', '.join(RunConfig.model_fields)}")
            raise ConfigError(f"--set {item!r}: `{top}` is neither a study key nor a run key; {hint}")
    return out


def validate_file(path: str | Path) -> tuple[str, list[str], RunConfig | StudyConfig | None]:
    """("run" | "study", every problem of the file as one line each, the config when there is none): all of
    pydantic's errors at once, and for a study whose own keys are wrong, its `base`'s errors as well. A file with a
    top-level `base:` is a study (its arms are checked by the caller, with `unfreeze.study.preflight.problems`).
    Loads no model."""
    data = read_yaml(path)
    kind, model = ("study", StudyConfig) if "base" in data else ("run", RunConfig)
    try:
        return kind, [], model.model_validate(data)
    except ValidationError as exc:
        errors = describe_validation_errors(exc, model, str(path))
    if kind == "study" and isinstance(data["base"], dict):
        try:
            RunConfig.model_validate(data["base"])
        except ValidationError as exc:
            errors += describe_validation_errors(exc, RunConfig, f"{path}: base")
        except ConfigError as exc:
            errors.append(f"{path}: base: {exc}")
    return kind, errors, None



def _check_run_key(key: str, item: str) -> None:
    """Catch `train.epocs` at the command line (a study's `base` is free-form until its arms are expanded)."""
    parts = key.split(".")
    for depth in range(1, len(parts)):
        parent = _model_at(RunConfig, parts[:depth])
        if parent is None or getattr(parent, "model_config", {}).get("extra") != "forbid":
            return
        if parts[depth] not in parent.model_fields:
            close = difflib.get_close_matches(parts[depth], list(parent.model_fields), n=1, cutoff=0.5)
            hint = (f"did you mean `{'.'.join(parts[:depth] + close)}`?" if close
                    else f"valid keys here: {', '.join(parent.model_fields)}")
            raise ConfigError(f"--set {item!r}: unknown run key `{key}` (applied to the study's base); {hint}")


def run_config_dict(config: RunConfig) -> dict:
    """The fully resolved config as plain data (defaults filled in): what `config.yaml` holds and hashes see."""
    return config.model_dump(mode="json")



def describe_validation_error(exc: ValidationError, root: type[BaseModel], source: str) -> str:
    """One line for the first problem, naming the dotted key and suggesting the closest valid key."""
    return _describe(exc.errors()[0], root, source)


def describe_validation_errors(exc: ValidationError, root: type[BaseModel], source: str) -> list[str]:
    """One line per problem (same wording as `describe_validation_error`), so a file is fixed in one pass."""
    return [_describe(err, root, source) for err in exc.errors()]


def describe_error(err: dict, root: type[BaseModel], source: str) -> str:
    """One of pydantic's `exc.errors()` as the one line `describe_validation_errors` gives it."""
    return _describe(err, root, source)


def _describe(err: dict, root: type[BaseModel], source: str) -> str:
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(loc[-1], list(parent.model_fields), n=1, cutoff=0.5)
            hint = f"; did you mean `{'.'.join(loc[:-1] + close)}`?" if close else (
                f"; valid keys here: {', '.join(parent.model_fields)}"
            )
        return f"{source}: unknown key `{key}`{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
    return f"{source}: `{key}`: {msg}{shown}" if loc else f"{source}: {msg}{shown}"



def _model_at(root: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    model: Any = root
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            args = [a for a in getattr(model, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
            model = args[0] if args else None
        if model is None:
            return None
    return model
