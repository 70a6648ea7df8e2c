"""Estimates from measured throughput: measured once per model + device + threads and cached; the dry run prints
a per-arm table; the study ETA charges each remaining run the measured time of its own arm kind."""
import json

import pytest
import yaml
from typer.testing import CliRunner

from unfreeze.cli import app
from unfreeze.config.schema import ModelConfig
from unfreeze.study import throughput
from unfreeze.study.execute import RunOutcome
from unfreeze.study.runner import ProgressReporter


def test_throughput_is_measured_once_and_cached(tiny_bert, monkeypatch):
    texts = ["the movie was good", "bad plot and boring story"] * 20
    first = throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=32, threads=1)
    assert first["forward_tokens_per_s"] > 0 and first["train_tokens_per_s"] > 0
    assert first["layers"] == 2 and first["hidden"] == 32
    stored = json.loads(throughput.cache_file().read_text())
    assert stored[first["key"]] == first and tiny_bert in first["key"] and "threads=1" in first["key"]

    def no_timing(*_):
        raise AssertionError("timed again instead of reading the cache")

    monkeypatch.setattr(throughput, "_time_model", no_timing)
    assert throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, threads=1) == first
    assert throughput.cached_throughput(tiny_bert, 1) == first
    assert throughput.measure_throughput(ModelConfig(name="/no/such/model"), texts, threads=1) is None


def test_dry_run_prints_per_arm_estimates_from_measured_throughput(tiny_bert, sentiment_csv, tmp_path):
    from tiny import run_config

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 2, "threads": 1})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"freeze": ["head", "all"]}, "seeds": [0, 1, 2]}))
    result = CliRunner().invoke(app, ["study", str(path), "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "per arm" in result.output and "min per run" in result.output
    assert "measured on this machine" in result.output
    assert throughput.cached_throughput(tiny_bert, 1) is not None


def test_eta_uses_measured_time_per_arm_kind():
    kinds = {"h0": ("head", "head"), "h1": ("head", "head"), "a0": ("all", "all"), "a1": ("all", "all"),
             "t0": ("top-2 lr=1e-3", "top-2")}
    reporter = ProgressReporter(5, 0, "f1_macro", echo=lambda *_: None, kinds=kinds)
    reporter.ran = 1
    # first: a 10 s head run; the rest are charged 10 s each (nothing else known yet); wall = summed run time
    assert reporter.eta(RunOutcome("h0", "head", True, seconds=10.0), elapsed=10.0) == pytest.approx(40.0)
    reporter.ran = 2
    # an `all` run took 100 s: head 10 + all 100 + top-2 (unknown arm and strategy: mean of all = 55)
    assert reporter.eta(RunOutcome("a0", "all", True, seconds=100.0), elapsed=110.0) == pytest.approx(165.0)
    reporter.ran = 3
    # wall time twice the summed run time (overheads): the rest scales by 2
    assert reporter.eta(RunOutcome("h1", "head", True, seconds=10.0), elapsed=240.0) == pytest.approx(
        (100.0 + 40.0) * 2)
