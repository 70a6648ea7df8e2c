"""`unfreeze study --data train.csv --budget 20m`: inspect the data, measure throughput, plan, write, run.

The facts the planner (`study.plan`, pure) needs are gathered here: the splits exactly as a run will see them
(`training.prepare.load_data`, so de-duplication and the val/test carving are the real ones), the token lengths of a
sample of the texts (`SAMPLE` per side: a dry run on 10,000 long documents must not tokenise them all), the model's
depth and width, and this machine's measured throughput (`study.throughput`, cached, capped in time). The plan is
written as an ordinary study YAML into the out folder (with `--set` overrides applied, so the file is what runs),
plus `plan.json` for the report's Plan section (`report.plan_section`) and the command's inputs: the same command
again resumes the written study instead of planning again (`study.plan_inputs`).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from unfreeze.errors import ConfigError, DataError
from unfreeze.tasks import get_task
from unfreeze.study.plan import DataFacts, Plan, val_floor
from unfreeze.study.plan_text import plan_study

_BUDGET = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")
SAMPLE = 1000  # texts per side (train; val + test) whose token lengths stand for the whole split
MIN_TRAIN = 10  # rows a plan needs in the training split (and 2 per class)
MAX_BUDGET_S = 30 * 86400  # the longest --budget (30 days): beyond it a typo, not a plan
MAX_VAL_SHARE = 0.3  # the most of the training file the planner carves into validation to reach `val_floor`


def parse_budget(text: str) -> float:
    """Seconds in "20m", "1h", "1h30m", "90s" or a bare number of minutes ("20"); zero is refused in every form."""
    text = str(text).strip().lower()
    m = _BUDGET.match(text)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        total = float(text) * 60
    elif not text or not m or not any(m.groups()):
        raise ConfigError(f"--budget {text!r}: expected a duration such as 20m, 1h, 1h30m or 90s")
    else:
        hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
        total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"--budget {text!r}: must be more than zero (e.g. 20m)")
    if total > MAX_BUDGET_S:
        raise ConfigError(f"--budget {text!r}: more than {MAX_BUDGET_S // 86400} days; give a budget a study can "
                          "use, e.g. 2h")
    return total


def base_config(data: Path, test: Path | None, text_column: str | None, label_column: str | None,
                model: str) -> dict:
    from unfreeze.assets import DATASETS
    from unfreeze.config.schema import DataConfig
    from unfreeze.data.inspect_tokens import detect_task

    if not data.exists() and str(data) in DATASETS:  # a built-in data set, by name (it has its own test split)
        if test is not None:
            raise ConfigError(f"--data {data} is a built-in data set with its own test split: drop --test {test}")
        source = {"dataset": str(data)}
    elif test is not None and not test.exists():
        raise ConfigError(f"--test {test}: file not found")
    elif not data.exists():
        raise ConfigError(f"--data {data}: file not found (or give a built-in data set: {', '.join(DATASETS)})")
    else:  # absolute: the study file works from any folder (#26)
        source = {"train": str(data.resolve()), "test": str(test.resolve())} if test else {"path": str(data.resolve())}
    columns = {k: v for k, v in (("text_column", text_column), ("label_column", label_column)) if v}
    task = detect_task(DataConfig(**source))
    # The head needs a far larger step than the encoder: at the encoder's LR a head on a frozen encoder barely
    # moves in a few epochs (measured: Rotten Tomatoes, head at 5e-5, val macro F1 0.47-0.51, below TF-IDF's
    # 0.76). These are the demo's settings for MiniLM-size encoders; edit the written study.yaml to change them.
    return {"task": task, "data": {**source, **columns}, "model": {"name": model},
            "optim": {"lr": 1.0e-4, "head_lr": 1.0e-2}}


def _texts(split, idx) -> list:
    """The examples at `idx`: texts, or a token task's word lists (the one place that tells them apart)."""
    if hasattr(split, "texts"):
        return [split.texts[i] for i in idx]
    return [split.words[i] for i in idx]


def sample_lengths(tokenizer, splits: list, n: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """Token lengths of at most `n` examples drawn evenly (seeded) from `splits` (pairs included)."""
    from unfreeze.data.encode import token_lengths

    sizes = [len(s) for s in splits]
    total = sum(sizes)
    if not total:
        return np.zeros(0, dtype=int)
    rng = np.random.default_rng(seed)
    out = []
    for split, size in zip(splits, sizes):
        take = min(size, max(1, round(n * size / total))) if size else 0
        idx = np.sort(rng.choice(size, take, replace=False)) if take < size else np.arange(size)
        chosen = _texts(split, idx)
        if hasattr(split, "words"):
            enc = tokenizer(chosen, is_split_into_words=True, truncation=False, verbose=False)
            out.append(np.array([len(ids) for ids in enc["input_ids"]]))
        else:
            pairs = getattr(split, "pairs", None)
            out.append(token_lengths(tokenizer, chosen, [pairs[i] for i in idx] if pairs is not None else None))
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def check_rows(data, source: str) -> None:
    """Enough rows per split to plan a study (one line, before any model is loaded)."""
    classes = len(data.label_names)
    need = {"train": max(MIN_TRAIN, 2 * classes), "val": 1, "test": 1}
    for name, minimum in need.items():
        n = len(getattr(data, name))
        if n < minimum:
            raise DataError(f"{source}: the {name} split has {n} usable rows; a one-line study needs at least "
                            f"{need['train']} training rows (2 per class, {MIN_TRAIN} at least) and 1 validation "
                            "and 1 test row — add rows, or check the text column is not empty")


def check_files(cfg, raw: dict) -> tuple[dict[str, int], int]:
    """({split: usable rows}, classes in the training file) of the files `raw` (`data.sequence.read_frames`),
    checked before the splits are carved: a 2-row file or an all-empty text column is one line here, not an error
    deep in the splitting."""
    from unfreeze.data.sequence import clean_frame

    counts, classes = {}, 2
    for name, (frame, source) in raw.items():
        clean = clean_frame(frame, cfg.data, source, {})
        counts[name] = len(clean)
        minimum = 1 if name in ("val", "test") else MIN_TRAIN
        if counts[name] < minimum:
            raise DataError(f"{source}: {counts[name]} usable rows (a non-empty {cfg.data.text_column!r} and a "
                            f"label); a one-line study needs at least {MIN_TRAIN} training rows and 1 row per "
                            "val/test file")
        if name in ("train", "all"):
            classes = int(clean["label"].nunique())
    return counts, classes


def _minority(data) -> tuple[str, float] | None:
    from unfreeze.data.inspect_tokens import MINORITY_OF_UNIFORM

    if hasattr(data.train, "words"):
        return None
    counts = np.bincount(np.asarray(data.train.labels), minlength=len(data.label_names))
    share = counts / max(counts.sum(), 1)
    i = int(share.argmin())
    # inspect's rule (under half the uniform share 1 / k): on 20 balanced classes every class is 5 %
    return (data.label_names[i], float(share[i])) if share[i] < MINORITY_OF_UNIFORM / len(counts) else None


def load_planned_data(base: dict):
    """The splits a run will see, each file read once; validation carved larger (up to `MAX_VAL_SHARE` of the
    training file) when the default carving would leave fewer than `val_floor` examples and no validation file was
    given."""
    from unfreeze.config.load import parse_run_config
    from unfreeze.data.sequence import load_sequence_data, read_frames
    from unfreeze.training.prepare import load_data

    cfg = parse_run_config(base, "--data")
    if not get_task(cfg.task).per_token and not cfg.data.dataset:
        raw = read_frames(cfg.data)
        rows, classes = check_files(cfg, raw)
        n = rows.get("train", rows.get("all", 0))  # split fractions are of this file's rows
        if "val" not in rows and n and n * cfg.data.split.val < val_floor(classes):  # carve once, larger
            share = min(MAX_VAL_SHARE, (val_floor(classes) + 1) / n)
            base["data"]["split"] = {"val": round(max(share, cfg.data.split.val), 3), "test": cfg.data.split.test}
            cfg = parse_run_config(base, "--data")
        data = load_sequence_data(cfg.data, raw)  # the frames read above: each file is read once
    else:
        data = load_data(cfg)
    check_rows(data, base["data"].get("path") or base["data"].get("train") or base["data"].get("dataset"))
    return cfg, data


def gather_facts(base: dict, announce=None) -> tuple[DataFacts, dict | None, int, int]:
    from unfreeze.data.encode import model_max_positions
    from unfreeze.data.near_duplicates import shared_passage_warning
    from unfreeze.model.backbone import load_backbone

    cfg, data = load_planned_data(base)
    backbone, tokenizer = load_backbone(cfg.model, training=data.train)
    train = data.train
    lengths = sample_lengths(tokenizer, [train])
    eval_lengths = sample_lengths(tokenizer, [data.val, data.test])
    limit = model_max_positions(tokenizer, backbone)
    first = _texts(train, range(min(len(train), 64)))
    texts = [t if isinstance(t, str) else " ".join(t) for t in first]
    throughput = _timed(cfg, texts, lengths, limit, announce, (backbone, tokenizer))
    config = backbone.config
    facts = DataFacts(n_train=len(train), n_eval=len(data.val) + len(data.test), n_val=len(data.val),
                      lengths=lengths, eval_lengths=eval_lengths, max_positions=limit,
                      classes=len(data.label_names), task=cfg.task, minority=_minority(data),
                      warnings=tuple(w for w in [shared_passage_warning(data.notes.get("shared_passages"))] if w))
    return facts, throughput, int(config.num_hidden_layers), int(config.hidden_size)


def _timed(cfg, texts: list[str], lengths: np.ndarray, limit: int, announce, loaded) -> dict | None:
    """This machine's throughput at ≤ 256 tokens, the lengths long documents are mostly planned at, and, when the
    data hold texts longer than 256 tokens and the model takes them, at 512 as well (`"longer"`): per token a
    512-token run cost 1.4× (forward) to 2× (training) the 256-token figure here (BENCHMARKS.md), so a plan at
    512 priced at 256 ran 35 % over. Two timings share the one cap."""
    from unfreeze.study.throughput import CAP_SECONDS, measure_throughput

    mean = float(np.minimum(lengths, 512).mean()) if len(lengths) else None
    longer = limit > 256 and len(lengths) > 0 and int(np.max(lengths)) > 256
    cap = CAP_SECONDS / (2 if longer else 1)

    def at(tokens: int) -> dict | None:
        return measure_throughput(cfg.model, texts, max_length=min(limit, tokens), threads=cfg.train.threads,
                                  mean_tokens=mean, announce=announce, loaded=loaded, cap=cap)

    short = at(256)
    if short is None or not longer:
        return short
    long = at(512)
    return {**short, "longer": long} if long is not None else short


#: `--set` keys the planner takes as fixed (the plan's estimate then matches what runs).
PINNABLE = {"data.max_length": "max_length", "train.epochs": "epochs", "data.train_size": "train_size"}


def planned_base(data: Path, test: Path | None, text_column: str | None, label_column: str | None, model: str,
                 overrides: list[str] | None) -> tuple[dict, dict]:
    """(the run config a plan starts from, with `--set`'s run keys applied; every `--set` applied once to
    `{"base": …}` as `load_study_config` applies it). Run keys shape what is measured too (columns, splits,
    threads); study keys (`seeds`) only what is pinned."""
    from unfreeze.config.load import apply_overrides, study_overrides

    base = base_config(data, test, text_column, label_column, model)
    applied = apply_overrides({"base": base}, study_overrides(overrides))
    return applied["base"], applied


def pinned_settings(applied: dict) -> dict:
    """The planner's fixed settings from `planned_base`'s applied `--set` (an integer `max_length`, `epochs`,
    `train_size`; the number of `seeds`), however the `--set` was written (`train.epochs=1`, `train={epochs: 1}`)."""
    base, pinned = applied.get("base") or {}, {}
    for key, name in PINNABLE.items():
        section, _, field = key.partition(".")
        value = base.get(section, {}).get(field) if isinstance(base.get(section), dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            pinned[name] = value
    seeds = applied.get("seeds")
    if isinstance(seeds, list) and seeds:
        pinned["seeds"] = len(seeds)
    return pinned


def plan_from_data(base: dict, applied: dict, budget: str, name: str, overrides: list[str] | None = None,
                   announce=None) -> Plan:
    """The plan for `planned_base`'s (`base`, `applied`) within `budget`, its study with `--set` applied."""
    seconds = parse_budget(budget)
    facts, throughput, layers, hidden = gather_facts(base, announce)
    plan = plan_study(facts, throughput, seconds, base, layers, hidden, name=name, pinned=pinned_settings(applied))
    from unfreeze.study.throughput import load_note

    note = load_note(throughput)
    if note:
        plan.notes.append(note)
    if throughput is None:
        plan.notes.append("throughput could not be measured: MiniLM-size constants for a 2-core CPU")
    plan.study = study_with_overrides(plan, overrides)
    return plan


def study_with_overrides(plan: Plan, overrides: list[str] | None) -> dict:
    """The plan's study dict with `--set` applied as `load_study_config` applies it: the file written is what runs."""
    import copy

    from unfreeze.config.load import apply_overrides, study_overrides

    return apply_overrides(copy.deepcopy(plan.study), study_overrides(overrides))


PART_LABELS = {"study": "loading + report"}


def print_one_line_plan(plan: Plan, budget: str, console) -> None:
    """The plan: per arm, the once-per-study parts, the parts with their share of the budget, what was traded
    away (each with what it saved), the further levers, notes. Every figure is `plan.parts` / `plan.arms`."""
    from rich.markup import escape
    from rich.table import Table

    from unfreeze.study.estimate import print_parts

    study = plan.study
    table = Table(title=escape(f"plan for a {budget} budget: {plan.tried}"))
    for col in ("arm", "runs", "min per run", "total min"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, runs, seconds in plan.arms:
        table.add_row(escape(arm), str(runs), f"{seconds / 60:.1f}", f"{runs * seconds / 60:.1f}")
    once = {"cache_fill": "cache fill + warm-up (once per study)", "baseline": f"baseline: {plan.baseline}",
            "study": "loading + report"}
    for part, name in once.items():
        seconds = plan.parts[part]  # a run's own fill is 0 in a planned study: the study fills the cache once
        table.add_row(name, "1", f"{seconds / 60:.1f}", f"{seconds / 60:.1f}")
    console.print(table)
    print_parts(plan.parts, console, "the same estimate, per part", budget=plan.budget_seconds, labels=PART_LABELS)
    total = plan.total_seconds
    console.print(f"estimated {total / 60:.1f} min for a {plan.budget_seconds / 60:.1f} min budget "
                  f"({100 * total / plan.budget_seconds:.0f} %); the test set alone costs {plan.test_seconds / 60:.1f}"
                  f" min (evaluated in full), evaluation in all {plan.eval_seconds / 60:.1f} min", highlight=False)
    for note in plan.traded:
        console.print(f"traded away: {escape(note)}", highlight=False, soft_wrap=True)
    for note in plan.levers:
        console.print(f"next lever: {escape(note)}", highlight=False, soft_wrap=True)
    for note in plan.notes:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if plan.refused:
        return
    if study["base"].get("train", {}).get("save_model", True):
        console.print("models: every run saves its best/ model; after the study, `unfreeze predict STUDY_DIR new.csv "
                      "-o out.csv --arm ARM` predicts with an arm's runs", highlight=False, soft_wrap=True)
    else:
        console.print("models: none saved (train.save_model: false); drop that --set to keep them", highlight=False)


def refusal(plan: Plan, budget: str) -> str:
    """The one error line of a plan that does not fit even at its smallest."""
    return (f"--budget {budget}: the smallest study this planner makes ({plan.tried}) is estimated at "
            f"{plan.total_seconds / 60:.1f} min, more than 20 % over the budget; evaluation alone costs "
            f"{plan.eval_seconds / 60:.1f} min (the test set {plan.test_seconds / 60:.1f} min, evaluated in full). "
            f"Choices: {'; '.join(plan.levers)}")


def write_plan(plan: Plan, out: Path, inputs: dict | None = None) -> Path:
    """`out/study.yaml` (the plan, `--set` applied by `plan_from_data`: what runs) and `out/plan.json` (with the
    command's `inputs`, `study.plan_inputs`: a rerun with the same ones resumes), under the study lock, so a study
    running in `out` is never changed by a second call (`LockedError`: rc 2, nothing written)."""
    import yaml

    from unfreeze.config.load import parse_study_config
    from unfreeze.io import write_json, write_text
    from unfreeze.errors import UnfreezeError
    from unfreeze.io.lock import StudyLock
    from unfreeze.io.paths import PLAN_MARKER, STUDY_MARKER

    parse_study_config(plan.study, "--set")  # an override that breaks the study: one line, nothing written
    config = out / "study.yaml"
    text = yaml.safe_dump(plan.study, sort_keys=False, allow_unicode=True)
    with StudyLock(out, command="unfreeze study --data (planning)"):
        if (out / STUDY_MARKER).is_file():  # a study ran here: its study.yaml / plan.json describe what ran
            if config.is_file() and config.read_text(encoding="utf-8") == text:
                return config  # the same plan again: resume it, the files stay as they are
            raise UnfreezeError(f"--out {out}: holds a study run from another plan (study.json); a one-line plan "
                                "never rewrites it: choose a new --out")
        write_text(out / PLAN_MARKER, "written by `unfreeze study --data`: study.yaml and plan.json are its plan\n")
        write_text(config, text)
        write_json(out / "plan.json", {**plan.to_json(), **({"inputs": inputs} if inputs is not None else {})})
    return config


def print_outcome(out: Path, wall_seconds: float, console, resumed: bool = False) -> None:
    """Planned vs actual per part after a one-line study, and a line when it went more than 20 % over its plan.
    `resumed`: the study ran before this session (interrupted, then rerun): the wall time of the sessions before
    is not known (a killed process records nothing), so the line says the figure is this session's only and the
    over-plan check uses the measured parts (every run's own time, whichever session ran it)."""
    from rich.table import Table

    from unfreeze.io import read_json, write_json
    from unfreeze.report.plan_section import OVER, actual_parts, comparison, load_plan
    from unfreeze.study.results import collect_results

    plan = load_plan(out)
    if plan is None:
        return
    rows, estimated, measured = comparison(plan, actual_parts(out, collect_results(out)))
    table = Table(title="plan vs actual (minutes)")
    for col in ("part", "estimated", "actual", "actual / estimated"):
        table.add_column(col, justify="left" if col == "part" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    planned = sum(plan["parts"].values())
    if resumed:
        line = (f"this session's wall time {wall_seconds / 60:.1f} min (the study was resumed: its earlier "
                f"sessions are not in this figure) for a plan of {planned / 60:.1f} min")
        if estimated and measured > OVER * estimated:
            line += (f"; the measured parts took {measured / 60:.1f} min, {100 * (measured / estimated - 1):.0f} % "
                     "over their estimate (see the table above)")
    else:
        line = f"study wall time {wall_seconds / 60:.1f} min for a plan of {planned / 60:.1f} min"
        if wall_seconds > OVER * planned:
            line += f": {100 * (wall_seconds / planned - 1):.0f} % over its plan (see the table above)"
    console.print(line, highlight=False)
    key = "resumed_session_wall_seconds" if resumed else "actual_wall_seconds"
    recorded = read_json(out / "plan.json")
    value = [*recorded.get(key, []), round(wall_seconds, 1)] if resumed else round(wall_seconds, 1)
    write_json(out / "plan.json", {**recorded, key: value})
