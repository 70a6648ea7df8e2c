"""`unfreeze study --data … --budget …` on the tiny model: a plan is printed (per arm and per part), a study YAML
written that validates (and, without --dry-run, runs with its baseline row, saves models and reports its plan);
a plan that cannot fit is refused before any training; the dry run samples token lengths."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from unfreeze.cli import app
from unfreeze.config.load import load_study_config, validate_file
from unfreeze.errors import ConfigError
from unfreeze.study.grid import expand
from unfreeze.study.oneline import SAMPLE, parse_budget

runner = CliRunner()
SLOW = {"forward_tokens_per_s": 40.0, "train_tokens_per_s": 10.0, "step_seconds": 0.01, "embedding_share": 0.5,
        "device": "cpu", "threads": 1}


def slow_machine(monkeypatch, rates=SLOW):
    from unfreeze.study import throughput

    monkeypatch.setattr(throughput, "measure_throughput", lambda *a, **k: dict(rates))


def test_parse_budget():
    assert parse_budget("20m") == 1200 and parse_budget("1h30m") == 5400 and parse_budget("90s") == 90
    assert parse_budget("2") == 120 and parse_budget("1.5h") == 5400
    for bad in ("", "soon", "0m", "0", "0s", "0.0"):  # #26: `--budget 0` was accepted while `0s` was refused
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)
    assert parse_budget("720h") == 30 * 86400
    for huge in ("99999999999999999999999h", "721h", "43201"):  # a 25-digit minute budget was printed as is
        with pytest.raises(ConfigError, match=r"--budget .*more than 30 days"):
            parse_budget(huge)


def test_one_line_study_plans_writes_and_validates(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    out = tmp_path / "plan"
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["study", "--data", sentiment_csv.name, "--budget", "2m", "--model", tiny_bert,
                                 "--out", str(out), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "plan for a 2m budget" in result.output and "baseline: TF-IDF" in result.output
    assert "min per run" in result.output and "share of budget" in result.output
    assert "cache fill + warm-up (once per study)" in result.output and "the test set alone costs" in result.output
    assert "measuring throughput" in result.output  # said before the measurement starts (#25: 7 silent minutes)
    path = out / "study.yaml"
    kind, errors, _ = validate_file(path)
    assert kind == "study" and not errors
    study = load_study_config(path)
    assert study.baseline and "head" in study.grid["freeze"] and expand(study)
    # #26: an absolute path, so the study file works from any folder
    assert study.base["data"]["path"] == str(sentiment_csv.resolve()) and study.base["model"]["name"] == tiny_bert
    assert study.base["train"].get("save_model", True)  # #25: models are saved
    # the head trains at its own, larger LR (at the encoder's it barely moves in a few epochs)
    assert study.base["optim"]["head_lr"] > 10 * study.base["optim"]["lr"]
    assert (out / "plan.json").exists() and not (out / "runs").exists()


def test_set_overrides_are_in_the_written_study_and_in_the_estimate(tiny_bert, sentiment_csv, tmp_path):
    """#25: with --set, study.yaml (and so the report's "Study file") said what the planner wrote, not what ran."""
    out = tmp_path / "plan"
    result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--budget", "2m", "--model", tiny_bert,
                                 "--out", str(out), "--dry-run", "--set", "train.epochs=1",
                                 "--set", "train.save_model=false"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out / "study.yaml").read_text())
    assert written["base"]["train"]["epochs"] == 1 and written["base"]["train"]["save_model"] is False
    assert "models: none saved" in result.output
    assert "1 epoch," in json.loads((out / "plan.json").read_text())["tried"]  # the estimate is of what runs


def test_smallest_plan_far_over_budget_is_refused_before_any_training(tiny_bert, sentiment_csv, tmp_path,
                                                                      monkeypatch):
    """#27: "98.7 min of runs for a 8.0 min budget" — and then it ran for 64 min. Now: rc 2, the breakdown, what
    evaluation costs, the choices, and nothing written or trained."""
    slow_machine(monkeypatch)
    out = tmp_path / "s"
    result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--budget", "30s", "--model", tiny_bert,
                                 "--out", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "the same estimate, per part" in result.output  # the breakdown came first
    assert "evaluation alone costs" in result.output and "the test set" in result.output
    assert "Choices: --budget" in result.output and "more than 20 % over the budget" in result.output
    assert not (out / "study.yaml").exists() and not (out / "runs").exists()


def test_a_running_study_is_not_rewritten_by_a_second_plan(tiny_bert, sentiment_csv, tmp_path):
    """#26: the planner rewrote <out>/study.yaml before taking the study lock."""
    from unfreeze.io.lock import StudyLock

    out = tmp_path / "s"
    out.mkdir()
    (out / "study.yaml").write_text("the running study's file\n")
    with StudyLock(out, command="the running study"):
        result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--budget", "2m", "--model", tiny_bert,
                                     "--out", str(out), "--dry-run"])
    assert result.exit_code == 2 and "in use" in result.output
    assert (out / "study.yaml").read_text() == "the running study's file\n"


@pytest.mark.parametrize("texts", [["good movie", "bad movie"], ["", " ", "", " "]])
def test_too_few_rows_or_an_empty_text_column_is_one_line(tiny_bert, tmp_path, texts):
    """#26: a 2-row CSV or an all-empty text column was an IndexError (rc 1) in the planner."""
    path = tmp_path / "small.csv"
    pd.DataFrame({"text": texts, "label": ["pos", "neg"] * (len(texts) // 2)}).to_csv(path, index=False)
    result = runner.invoke(app, ["study", "--data", str(path), "--budget", "2m", "--model", tiny_bert,
                                 "--out", str(tmp_path / "o"), "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "usable rows" in result.output and "at least 10 training rows" in result.output


def long_documents(path, n, seed, classes=5):
    """`n` documents of 300–700 words; the label is given by which cue word is repeated in it."""
    from tiny import ENTITIES, NEUTRAL, POSITIVE

    rng = np.random.default_rng(seed)
    cues = (POSITIVE + ENTITIES)[:classes]
    rows = []
    for i in range(n):
        c = i % classes
        words = list(rng.choice(NEUTRAL, size=rng.integers(300, 700)))
        for at in rng.integers(0, len(words), size=5):
            words[at] = cues[c]
        rows.append({"text": " ".join(words) + f" {i}", "label": f"c{c}"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_dry_run_on_many_long_documents_tokenises_a_sample_only(tiny_bert, tmp_path, monkeypatch):
    """#27: the dry run took 7 min on 10k long documents. 3,000 training and 4,000 test documents of 300–700
    words: token lengths come from a sample, not from all 7,000 texts (counted at the tokenizer)."""
    from transformers import PreTrainedTokenizerBase

    train = long_documents(tmp_path / "train.csv", 3000, 0)
    test = long_documents(tmp_path / "test.csv", 4000, 1)
    counted = {"texts": 0}
    call = PreTrainedTokenizerBase.__call__

    def counting(self, text=None, *args, **kwargs):
        counted["texts"] += len(text) if isinstance(text, list) else 1
        return call(self, text, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", counting)
    result = runner.invoke(app, ["study", "--data", str(train), "--test", str(test), "--budget", "4m", "--model",
                                 tiny_bert, "--out", str(tmp_path / "o"), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code in (0, 2), result.output
    assert "the test set alone costs" in result.output
    assert 0 < counted["texts"] <= 2 * SAMPLE + 200  # two samples + the throughput batches; not 7,000


def many_classes(path, n_classes=26, per_class=24, seed=0):
    """A 26-class set: each class's cue is one letter (one token in the tiny vocabulary) among neutral filler."""
    from tiny import LETTERS, NEUTRAL

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_classes * per_class):
        c = i % n_classes
        words = list(rng.choice(NEUTRAL, size=rng.integers(3, 8)))
        words.insert(int(rng.integers(0, len(words))), LETTERS[c])
        rows.append({"text": " ".join(words) + f" {i}", "label": f"class_{LETTERS[c]}"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_one_line_study_on_26_classes_saves_models_and_reports_its_plan(tiny_bert, tmp_path, monkeypatch):
    """#25: a one-line study saved no model, silently, and the report never said the plan was cut."""
    data = many_classes(tmp_path / "classes.csv")
    slow_machine(monkeypatch, {**SLOW, "forward_tokens_per_s": 4000.0, "train_tokens_per_s": 300.0})
    out = tmp_path / "study"
    result = runner.invoke(app, ["study", "--data", str(data), "--budget", "1m", "--model", tiny_bert,
                                 "--out", str(out), "--quiet", "--set", "train.threads=1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "plan vs actual (minutes)" in result.output
    report = (out / "report.md").read_text()
    assert "## Plan" in report and "Traded away to fit the budget" in report
    assert report.index("## Plan") < report.index("## Results")
    assert "estimated min" in report and "actual min" in report
    new = tmp_path / "new.csv"
    pd.DataFrame({"text": ["the movie a was", "it b story"]}).to_csv(new, index=False)
    arm = load_study_config(out / "study.yaml").grid["freeze"][0]
    predicted = runner.invoke(app, ["predict", str(out), str(new), "-o", str(tmp_path / "p.csv"), "--arm",
                                    arm if isinstance(arm, str) else "top-2"])
    assert predicted.exit_code == 0, predicted.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2


def test_one_line_needs_data_and_budget(tmp_path):
    result = runner.invoke(app, ["study", "--budget", "2m"])
    assert result.exit_code == 2 and "--data" in result.output


def test_unknown_data_names_the_built_in_sets(tmp_path):
    result = runner.invoke(app, ["study", "--data", "no_such_set", "--budget", "2m", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "file not found" in result.output and "rotten_tomatoes" in result.output


@pytest.mark.assets
def test_one_line_study_takes_a_built_in_data_set_by_name(tiny_bert, tmp_path):
    out = tmp_path / "plan"
    # a budget no machine refuses: 13,000 texts (the cache fill over val + test is minutes on a busy CPU)
    result = runner.invoke(app, ["study", "--data", "rotten_tomatoes", "--budget", "2h", "--model", tiny_bert,
                                 "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert load_study_config(out / "study.yaml").base["data"]["dataset"] == "rotten_tomatoes"


@pytest.mark.parametrize("limit, longest, timed", [(512, 900, [256, 512]), (512, 200, [256]), (128, 900, [128])])
def test_long_documents_are_timed_at_512_as_well_within_the_one_cap(monkeypatch, limit, longest, timed):
    """#27 item 8: a plan at 512 priced with a 256-token figure ran 35 % over; data with texts over 256 tokens and a
    model that takes 512 are timed at both lengths, each with half the cap (the dry run's ≤ 30 s)."""
    from types import SimpleNamespace

    from unfreeze.study import oneline, throughput

    calls = []

    def fake(_model, _texts, max_length, cap, **_):
        calls.append((max_length, cap))
        return {"forward_tokens_per_s": 1e4 / max_length, "max_length": max_length}

    monkeypatch.setattr(throughput, "measure_throughput", lambda m, t, max_length, cap, **k: fake(m, t, max_length, cap))
    cfg = SimpleNamespace(model=None, train=SimpleNamespace(threads=1))
    got = oneline._timed(cfg, ["x"], np.array([100, longest]), limit, None, None)
    assert [n for n, _ in calls] == timed
    assert sum(cap for _, cap in calls) == throughput.CAP_SECONDS
    assert got["max_length"] == timed[0] and (got.get("longer") or {}).get("max_length") == (
        512 if len(timed) == 2 else None)
