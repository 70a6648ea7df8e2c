"""`unfreeze study --data … --budget …` on the tiny model: a plan is printed, a study YAML written that validates
(and, without --dry-run, runs with its baseline row)."""
import pytest
from typer.testing import CliRunner

from unfreeze.cli import app
from unfreeze.config.load import load_study_config, validate_file
from unfreeze.errors import ConfigError
from unfreeze.study.grid import expand
from unfreeze.study.oneline import parse_budget

runner = CliRunner()


def test_parse_budget():
    assert parse_budget("20m") == 1200 and parse_budget("1h30m") == 5400 and parse_budget("90s") == 90
    assert parse_budget("2") == 120 and parse_budget("1.5h") == 5400
    for bad in ("", "soon", "0m"):
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)


def test_one_line_study_plans_writes_and_validates(tiny_bert, sentiment_csv, tmp_path):
    out = tmp_path / "plan"
    result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--budget", "2m", "--model", tiny_bert,
                                 "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "plan for a 2m budget" in result.output and "baseline: TF-IDF" in result.output
    assert "min per run" in result.output
    path = out / "study.yaml"
    kind, errors, _ = validate_file(path)
    assert kind == "study" and not errors
    study = load_study_config(path)
    assert study.baseline and "head" in study.grid["freeze"] and expand(study)
    assert study.base["data"]["path"] == str(sentiment_csv) and study.base["model"]["name"] == tiny_bert
    # the head trains at its own, larger LR (at the encoder's it barely moves in a few epochs)
    assert study.base["optim"]["head_lr"] > 10 * study.base["optim"]["lr"]
    assert not (out / "runs").exists()


def test_one_line_study_runs(tiny_bert, sentiment_csv, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--budget", "30s", "--model", tiny_bert,
                                 "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "study.yaml").exists() and (out / "report.md").exists()
    assert "baseline: TF-IDF" in (out / "report.md").read_text()


def test_one_line_needs_data_and_budget(tmp_path):
    result = runner.invoke(app, ["study", "--budget", "2m"])
    assert result.exit_code == 2 and "--data" in result.output


def test_unknown_data_names_the_built_in_sets(tmp_path):
    result = runner.invoke(app, ["study", "--data", "no_such_set", "--budget", "2m", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "file not found" in result.output and "rotten_tomatoes" in result.output


@pytest.mark.assets
def test_one_line_study_takes_a_built_in_data_set_by_name(tiny_bert, tmp_path):
    out = tmp_path / "plan"
    result = runner.invoke(app, ["study", "--data", "rotten_tomatoes", "--budget", "2m", "--model", tiny_bert,
                                 "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert load_study_config(out / "study.yaml").base["data"]["dataset"] == "rotten_tomatoes"
