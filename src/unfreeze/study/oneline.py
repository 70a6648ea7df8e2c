"""`unfreeze study --data train.csv --budget 20m`: inspect the data, measure throughput, plan, write, run.

The facts the planner (`study.plan`, pure) needs are gathered here: the splits exactly as a run will see them
(`training.prepare.load_data`, so de-duplication and the val/test carving are the real ones), every training
text's token length under the chosen model's tokenizer, the model's depth and width, and this machine's measured
throughput (`study.throughput`, cached). The plan is written as an ordinary study YAML into the out folder, so
the study can be re-run, resumed or edited like any other.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from unfreeze.errors import ConfigError
from unfreeze.study.plan import DataFacts, Plan, plan_study

_BUDGET = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def parse_budget(text: str) -> float:
    """Seconds in "20m", "1h", "1h30m", "90s" or a bare number of minutes ("20")."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) * 60
    m = _BUDGET.match(text)
    if not text or not m or not any(m.groups()):
        raise ConfigError(f"--budget {text!r}: expected a duration such as 20m, 1h, 1h30m or 90s")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"--budget {text!r}: must be more than zero")
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
    else:
        source = {"train": str(data), "test": str(test)} if test else {"path": str(data)}
    columns = {k: v for k, v in (("text_column", text_column), ("label_column", label_column)) if v}
    task = detect_task(DataConfig(**source))
    # The head needs a far larger step than the encoder: at the encoder's LR a head on a frozen encoder barely
    # moves in a few epochs (measured: Rotten Tomatoes, head at 5e-5, val macro F1 0.47-0.51, below TF-IDF's
    # 0.76). These are the demo's settings for MiniLM-size encoders; edit the written study.yaml to change them.
    return {"task": task, "data": {**source, **columns}, "model": {"name": model},
            "optim": {"lr": 1.0e-4, "head_lr": 1.0e-2}}


def gather_facts(base: dict) -> tuple[DataFacts, dict | None, int, int]:
    from unfreeze.config.load import parse_run_config
    from unfreeze.data.encode import model_max_positions, split_token_lengths
    from unfreeze.model.backbone import load_backbone
    from unfreeze.study.throughput import measure_throughput
    from unfreeze.training.prepare import load_data

    cfg = parse_run_config(base, "--data")
    data = load_data(cfg)
    backbone, tokenizer = load_backbone(cfg.model)
    train = data.train
    texts = list(train.texts) if hasattr(train, "texts") else [" ".join(words) for words in train.words]
    lengths = split_token_lengths(tokenizer, train)
    limit = model_max_positions(tokenizer, backbone)
    throughput = measure_throughput(cfg.model, texts[:64], max_length=min(limit, 512), threads=cfg.train.threads,
                                    mean_tokens=float(np.minimum(lengths, 512).mean()) if len(lengths) else None)
    config = backbone.config
    facts = DataFacts(n_train=len(train), n_eval=len(data.val) + len(data.test), lengths=np.asarray(lengths),
                      max_positions=limit)
    return facts, throughput, int(config.num_hidden_layers), int(config.hidden_size)


def plan_from_data(data: Path, test: Path | None, text_column: str | None, label_column: str | None,
                   model: str, budget: str, name: str) -> Plan:
    seconds = parse_budget(budget)
    base = base_config(data, test, text_column, label_column, model)
    facts, throughput, layers, hidden = gather_facts(base)
    return plan_study(facts, throughput, seconds, base, layers, hidden, name=name)


def print_one_line_plan(plan: Plan, budget: str, console) -> None:
    from rich.table import Table

    study = plan.study
    table = Table(title=f"plan for a {budget} budget: {len(study['seeds'])} seed(s), "
                        f"{study['base']['train']['epochs']} epoch(s), max_length {study['base']['data']['max_length']}"
                        + (f", {study['base']['data']['train_size']:,} training examples"
                           if "train_size" in study["base"]["data"] else ""))
    for col in ("arm", "runs", "min per run", "total min"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, runs, seconds in plan.arms:
        table.add_row(arm, str(runs), f"{seconds / 60:.1f}", f"{runs * seconds / 60:.1f}")
    table.add_row("baseline: TF-IDF", "1", "<0.1", "<0.1")
    console.print(table)
    console.print(f"estimated {plan.total_seconds / 60:.1f} min of runs (plus the baseline row and the report)",
                  highlight=False)
    for note in plan.traded:
        console.print(f"traded away: {note}", highlight=False, soft_wrap=True)
