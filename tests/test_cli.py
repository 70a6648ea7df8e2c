"""The CLI end to end on tiny data: train → predict reproduces the test predictions; user errors are one line
with exit code 2."""
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tiny import run_config
from unfreeze.cli import app

runner = CliRunner()


@pytest.fixture
def config_file(tiny_bert, sentiment_csv, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run_config(tiny_bert, sentiment_csv, train={"epochs": 2, "threads": 1})))
    return path


def test_train_then_predict_reproduces_test_predictions(config_file, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config_file), "--out", str(out), "--quiet", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "f1_macro" in result.output and "trainable parameters" in result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 1
    expected = pd.read_csv(out / "predictions_test.csv")
    result = runner.invoke(app, ["predict", str(out / "best"), str(out / "predictions_test.csv"),
                                 "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    got = pd.read_csv(tmp_path / "p.csv")
    assert got["pred"].tolist() == expected["pred"].tolist()
    assert (got["prob_pos"] - expected["prob_pos"]).abs().max() < 1e-5
    sub = tmp_path / "sub.csv"
    assert runner.invoke(app, ["predict", str(out), str(out / "predictions_test.csv"), "-o", str(sub),
                               "--submission"]).exit_code == 0
    assert list(pd.read_csv(sub).columns) == ["id", "label"]


def test_existing_run_folder_is_refused_without_overwrite(config_file, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["train", str(config_file), "--out", str(out), "--quiet"]).exit_code == 0
    first = (out / "metrics.json").read_text()
    result = runner.invoke(app, ["train", str(config_file), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "metrics.json").read_text() == first


def test_overwrite_with_bad_input_keeps_the_previous_run(config_file, tmp_path):
    """--overwrite replaces a run only once the new one is complete: a bad column destroys nothing."""
    out = tmp_path / "run"
    assert runner.invoke(app, ["train", str(config_file), "--out", str(out), "--quiet"]).exit_code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["train", str(config_file), "--out", str(out), "--quiet", "--overwrite",
                                 "--set", "data.text_column=review"])
    assert result.exit_code == 2 and "review" in result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    result = runner.invoke(app, ["train", str(config_file), "--out", str(out), "--quiet", "--overwrite",
                                 "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 1
    assert not (tmp_path / ".unfinished").exists()


def test_predict_refuses_a_file_without_the_pair_column(tmp_path):
    from unfreeze.errors import DataError
    from unfreeze.model.predict import _texts

    frame = pd.DataFrame({"text": ["a premise"]})
    with pytest.raises(DataError, match="trained on text pairs"):
        _texts(frame, {"text_column": "text", "text_pair_column": "hypothesis"}, None, "in.csv")
    pairs = pd.DataFrame({"text": ["a premise"], "hypothesis": ["a claim"]})
    assert _texts(pairs, {"text_column": "text", "text_pair_column": "hypothesis"}, None, "in.csv")[1] == ["a claim"]


@pytest.mark.parametrize("args, message", [
    (["--set", "optim.lerning_rate=1"], "optim.lerning_rate"),
    (["--set", "data.text_column=review"], "no column 'review'"),
    (["--set", "data.path=/nonexistent.csv"], "/nonexistent.csv: file not found"),
])
def test_bad_input_is_one_line_and_exit_2(config_file, tmp_path, args, message):
    result = runner.invoke(app, ["train", str(config_file), "--out", str(tmp_path / "x"), "--quiet", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().count("\n") <= 1 or "error:" in result.output
    assert "Traceback" not in result.output


def test_inspect_reports_lengths_and_suggestion(sentiment_csv, tiny_bert):
    result = runner.invoke(app, ["inspect", str(sentiment_csv), "--model", tiny_bert])
    assert result.exit_code == 0, result.output
    assert "suggested max_length" in result.output and "pos: 120" in result.output
