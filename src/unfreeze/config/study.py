"""The study file's typed model: a run config under `base:` plus the design — grid, named arms, seeds, CV folds,
racing, an Optuna search, the executor and its Ray resources, tracking."""
from __future__ import annotations

import math
import unicodedata
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from unfreeze.config.schema import ReportConfig, StrictModel, TrackingConfig


MAX_RUNS = 5000  # planned runs of one study (grid × named arms × seeds × folds; a grid search's points): more is refused


def _number(value: Any) -> Any:
    """A range end written as text that reads as a number (`"1e-5"`) is that number; anything else as given."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class CVConfig(StrictModel):
    folds: int = Field(5, ge=2)
    stratified: bool = True



class RayConfig(StrictModel):
    address: str | None = None
    num_cpus: float = Field(1, gt=0)
    num_gpus: float = Field(0, ge=0)
    memory_mb: int | None = None
    max_retries: int = Field(2, ge=0)
    init_num_cpus: int | None = None



class SearchConfig(StrictModel):
    """`search:` in a study file: an Optuna search instead of a grid (study/search.py). `space` is written like
    the grid: a list is a categorical choice, `{low, high, log}` a continuous (or integer, when both ends are
    integers) range. Each trial runs the study's first seed; `seeds` re-runs the `top` best trials with more."""

    sampler: Literal["grid", "random", "tpe"] = "tpe"
    trials: int = Field(20, gt=0)
    space: dict[str, Any]
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    seed: int = Field(0, ge=0)
    storage: str | None = None  # default: sqlite:///<study folder>/optuna.db; a database URL shares one search
    seeds: list[int] = []
    top: int = Field(1, gt=0)
    startup_trials: int = Field(5, ge=0)  # median pruner: trials finished before it prunes anything (Optuna's 5)
    order: Literal["sampler", "costly_first"] = "sampler"  # grid sampler: the trials' order (study/search_order.py)

    @field_validator("space")
    @classmethod
    def _ranges(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise ValueError("search.space is empty: give at least one key, e.g. `optim.lr: {low: 1e-5, high: "
                             "1e-3, log: true}`")
        for key, value in space.items():
            if isinstance(value, list):
                if not value:
                    raise ValueError(f"search.space.{key} is an empty list")
                continue
            if not isinstance(value, dict) or not {"low", "high"} <= set(value) or set(value) - {"low", "high", "log"}:
                raise ValueError(f"search.space.{key}: write a list of choices or {{low, high, log}}, got {value!r}")
            space[key] = value = {**value, "low": _number(value["low"]), "high": _number(value["high"])}
            low, high = value["low"], value["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in (low, high)) or low >= high:
                raise ValueError(f"search.space.{key}: low and high must be finite numbers with low < high, got "
                                 f"{value!r}")
            if not isinstance(value.get("log", False), bool):
                raise ValueError(f"search.space.{key}.log: write true or false, got {value['log']!r}")
            if value.get("log") and low <= 0:
                raise ValueError(f"search.space.{key}: log: true needs low > 0, got low={low}")
        return space

    @model_validator(mode="after")
    def _grid_is_categorical(self) -> "SearchConfig":
        ranges = [k for k, v in self.space.items() if not isinstance(v, list)]
        if self.sampler == "grid" and ranges:
            raise ValueError(f"search.sampler: grid takes lists only; {ranges} are ranges (use random or tpe)")
        points = math.prod(len(v) for v in self.space.values())
        if self.sampler == "grid" and points > MAX_RUNS:
            raise ValueError(f"search.space: the grid has {points:,} points, over the limit of {MAX_RUNS:,} (docs/"
                             "config.md); use sampler: random or tpe, or shorten the lists")
        if self.order == "costly_first" and self.sampler != "grid":
            raise ValueError(f"search.order: costly_first orders a grid; sampler {self.sampler} asks its own "
                             "trials (use sampler: grid, or drop order)")
        if self.order == "costly_first" and self.storage and not self.storage.startswith("sqlite"):
            raise ValueError("search.order: costly_first is claimed through a lock in the study folder; a database "
                             f"URL ({self.storage.split(':', 1)[0]}) lets processes on other machines ask too: drop "
                             "order there")
        return self


class RacingConfig(StrictModel):
    """Seed racing (`study.racing`): more seeds only for arms not yet decisively worse than the leader on *val*."""
    alpha: float = Field(0.05, gt=0, lt=1)  # family-wise, split over the looks (Bonferroni) and arms (Holm)
    min_seeds: int = Field(3, ge=2)  # seeds an arm has before it can be stopped (the seed-aware test needs ≥ 3)
    n_boot: int = Field(2000, ge=100)  # example bootstraps behind each racing comparison's test-set variance


class StudyConfig(StrictModel):
    name: str = "study"
    base: dict[str, Any]
    grid: dict[str, list[Any]] = {}
    arms: dict[str, dict[str, Any]] = {}
    seeds: list[int] = [0]
    cv: CVConfig | None = None
    baseline: bool = True
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()
    search: SearchConfig | None = None
    racing: bool | RacingConfig = False
    report: ReportConfig = ReportConfig()

    @field_validator("racing")
    @classmethod
    def _racing_settings(cls, value: bool | RacingConfig) -> RacingConfig | None:
        """`racing: true` → the default settings; `racing: {alpha: 0.01}` → those; false → None."""
        if value is True:
            return RacingConfig()
        return value or None

    @model_validator(mode="after")
    def _racing_without_cv(self):
        if self.racing and self.cv:
            raise ValueError("racing: true cannot be combined with cv: every fold has a different validation set, "
                             "so the racing comparison has no shared examples; drop one of the two")
        return self

    @model_validator(mode="after")
    def _search_alone(self) -> "StudyConfig":
        """A search explores its own space: a grid, named arms or CV folds beside it would be a second design."""
        if self.search is not None:
            extra = [k for k, v in (("grid", self.grid), ("arms", self.arms), ("cv", self.cv),
                                    ("racing", self.racing)) if v]
            if extra:
                raise ValueError(f"search: cannot be combined with {'/'.join(extra)}; move those keys into "
                                 "search.space or base")
        return self

    def planned_runs(self) -> int:
        """How many runs the grid × named arms × seeds × folds plan, from their lengths alone (nothing expanded)."""
        return (math.prod(len(v) for v in self.grid.values()) * max(1, len(self.arms)) * len(self.seeds)
                * (self.cv.folds if self.cv else 1))

    @model_validator(mode="after")
    def _run_limit(self) -> "StudyConfig":
        """A grid of a million runs would take minutes and gigabytes just to list: refused from its shape."""
        if self.search is None and self.planned_runs() > MAX_RUNS:
            shape = " × ".join([f"{len(v)} {k}" for k, v in self.grid.items()]
                               + ([f"{len(self.arms)} arms"] if self.arms else []) + [f"{len(self.seeds)} seeds"]
                               + ([f"{self.cv.folds} folds"] if self.cv else []))
            raise ValueError(f"the study plans {self.planned_runs():,} runs ({shape}), over the limit of "
                             f"{MAX_RUNS:,} (docs/config.md): shorten the grid, or split it into several studies")
        return self

    @field_validator("grid")
    @classmethod
    def _nonempty_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid.{key} is an empty list")
        return grid

    @field_validator("arms")
    @classmethod
    def _printable_arm_names(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Control characters (newline, tab, NUL) in an arm name break the report's tables: refused, naming it."""
        for name in arms:
            bad = [c for c in str(name) if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
            if bad:
                raise ValueError(f"arm {name!r} contains the control character {bad[0]!r}; an arm name must be one "
                                 "line of printable text: rename it")
        return arms

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return seeds
