"""The strategy registry: one file adds a strategy, and nothing outside `strategies/` knows strategy names."""
from __future__ import annotations

import ast
from pathlib import Path

import layernorm_strategy  # noqa: F401 — registers `layernorm`
import pytest
from tiny import run_config

import unfreeze
from unfreeze.config.load import parse_run_config
from unfreeze.errors import ConfigError
from unfreeze.strategies import get_strategy, strategy_names

SRC = Path(unfreeze.__file__).parent


def test_a_strategy_in_one_file_runs_end_to_end(tiny_bert, sentiment_csv, tmp_path):
    """The toy strategy trains exactly the LayerNorm parameters, is labelled, refuses the cache and writes a run."""
    from tiny import run_parts

    config = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="layernorm", train={
        "epochs": 1, "batch_size": 16, "eval_batch_size": 32, "threads": 1, "save_model": False}))
    assert config.freeze.label == "layernorm-only"
    run = run_parts(config)
    trainable = {n for n, p in run.model.backbone.named_parameters() if p.requires_grad}
    assert trainable and all("LayerNorm" in n for n in trainable)
    metrics = unfreeze.train(config, tmp_path / "run", progress=False)
    assert metrics["cache"]["used"] is False
    assert metrics["trainable_params"] == run.trainable_params


def test_unknown_strategy_suggests_the_closest_name(tiny_bert, sentiment_csv):
    with pytest.raises(ConfigError, match="did you mean `bitfit`"):
        parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="bitfitt"))


def test_every_builtin_strategy_is_registered():
    assert {"head", "top_k", "all", "bitfit", "llrd", "gradual", "lora"} <= set(strategy_names())
    assert get_strategy("head").cached_top(None) == 0


def test_no_module_outside_strategies_compares_strategy_names():
    """`freeze.strategy == "..."` or `in (...)` outside strategies/ is how the nine copies of the rules drifted."""
    names = set(strategy_names())
    offenders = []
    for path in SRC.rglob("*.py"):
        if "strategies" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            text = ast.unparse(node)
            if "strategy" not in text:
                continue
            constants = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant)}
            if constants & names:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {text}")
    assert not offenders, offenders
