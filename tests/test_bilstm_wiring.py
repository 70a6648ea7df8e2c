"""`model.name: bilstm` inside unfreeze: built over a chosen tokenizer and seeded by the run seed, refused with one
line under strategies that need pretrained layers, trained in the same study grid as a transformer (report built,
layers plot without it), saved and reloaded by `unfreeze predict`, and reproducible on CPU."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tiny import run_config
from unfreeze.cli import app
from unfreeze.config.load import load_study_config
from unfreeze.config.schema import ModelConfig, RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError
from unfreeze.model.backbone import load_backbone, weights_fingerprint
from unfreeze.model.bilstm import BiLSTMEncoder
from unfreeze.report.plots import metric_vs_layers
from unfreeze.strategies import REGISTRY
from unfreeze.study.grid import expand
from unfreeze.study.runner import run_study
from unfreeze.training.run import train

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transformer_vs_lstm.yaml"


def lstm_model(tokenizer: str, **extra) -> dict:
    return {"name": "bilstm", "tokenizer": tokenizer, "embedding_dim": 16, "lstm_hidden": 16, **extra}


def test_backbone_is_built_over_the_tokenizer_vocabulary_and_seeded(tiny_bert):
    model, tokenizer = load_backbone(ModelConfig(**lstm_model(tiny_bert, lstm_layers=2, hidden_dropout=0.3)), seed=3)
    assert isinstance(model, BiLSTMEncoder)
    assert model.config.vocab_size == len(tokenizer) and model.config.pad_token_id == tokenizer.pad_token_id
    assert (model.config.embedding_dim, model.config.hidden_size, model.config.num_layers) == (16, 16, 2)
    assert model.config.dropout == 0.3 and model.embeddings.dropout.p == 0.3  # model.hidden_dropout feeds it
    state = torch.get_rng_state()
    again, _ = load_backbone(ModelConfig(**lstm_model(tiny_bert, lstm_layers=2, hidden_dropout=0.3)), seed=3)
    assert torch.equal(state, torch.get_rng_state()), "building must not consume the global RNG"
    other, _ = load_backbone(ModelConfig(**lstm_model(tiny_bert, lstm_layers=2, hidden_dropout=0.3)), seed=4)
    assert weights_fingerprint(model) == weights_fingerprint(again) != weights_fingerprint(other)


def test_missing_tokenizer_is_one_line(tmp_path):
    with pytest.raises(Exception, match="model.tokenizer .*could not be loaded"):
        load_backbone(ModelConfig(**lstm_model(str(tmp_path / "nowhere"))))


def test_strategies_needing_pretrained_layers_are_refused_in_one_line(tiny_bert, sentiment_csv, tmp_path):
    refused = [name for name, s in REGISTRY.items() if s.needs_pretrained_layers]
    assert refused and "all" not in refused and "top_k" in refused and "lora" in refused
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run_config(tiny_bert, sentiment_csv, model=lstm_model(tiny_bert),
                                              freeze={"top_k": 1})))
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "x"), "--quiet"])
    assert result.exit_code == 2
    assert "model bilstm trains from scratch: use freeze: all" in result.output
    assert "top_k" in result.output and "lora" in result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
    RunConfig.model_validate(run_config(tiny_bert, sentiment_csv, freeze={"top_k": 1}))  # a transformer may


@pytest.mark.parametrize("extra, message", [({"pooling": "cls"}, "pooling: mean"),
                                            ({"attention_dropout": 0.1}, "no attention"),
                                            ({"lstm_hidden": 15}, "even")])
def test_settings_that_make_no_sense_on_an_lstm_are_refused(tiny_bert, extra, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**lstm_model(tiny_bert, **extra))


def test_same_config_and_seed_give_identical_metrics_and_predict_reloads(tiny_bert, sentiment_csv, tmp_path):
    cfg = RunConfig.model_validate(run_config(tiny_bert, sentiment_csv, model=lstm_model(tiny_bert),
                                              train={"epochs": 2, "threads": 1}, optim={"lr": 1e-2}))
    first = train(cfg, tmp_path / "a", progress=False)
    second = train(cfg, tmp_path / "b", progress=False)
    assert first["test"] == second["test"] and first["val"] == second["val"]
    losses = [[h["train_loss"] for h in m["history"] if "train_loss" in h] for m in (first, second)]
    assert losses[0] and losses[0] == losses[1]
    assert first["test"]["f1_macro"] > 0.6, first["test"]  # it learns the cue word
    assert json.loads((tmp_path / "a" / "best" / "encoder" / "config.json").read_text())["model_type"] == "bilstm"
    result = runner.invoke(app, ["predict", str(tmp_path / "a" / "best"), str(tmp_path / "a" / "predictions_test.csv"),
                                 "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    got, expected = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "a" / "predictions_test.csv")
    assert got["pred"].tolist() == expected["pred"].tolist()
    assert (got["prob_pos"] - expected["prob_pos"]).abs().max() < 1e-5


def test_study_grid_over_model_name_runs_and_reports(tiny_bert, sentiment_csv, tmp_path):
    base = run_config(tiny_bert, sentiment_csv, model={"name": tiny_bert, "tokenizer": tiny_bert, "embedding_dim": 16,
                                                       "lstm_hidden": 16},
                      train={"epochs": 2, "threads": 1, "save_model": False})  # 2: a 1-epoch study draws no curve
    study = StudyConfig.model_validate({"name": "families", "base": base, "baseline": False, "seeds": [0],
                                        "grid": {"model.name": [tiny_bert, "bilstm"], "freeze": ["all"]}})
    out = tmp_path / "study"
    results = run_study(study, out, progress=False, echo=lambda *_: None)
    assert sorted(results["model_family"]) == ["bilstm", "transformer"]
    assert sorted(results["arm"]) == ["model=bert · all", "model=bilstm · all"]
    md = (out / "report.md").read_text()
    assert "model=bilstm · all" in md and "model=bert · all" in md
    assert (out / "plots" / "learning_curves.png").exists()
    # the layers plot is about unfreezing pretrained layers: the LSTM rows never reach it
    lstm = results[results["model_family"] == "bilstm"]
    deeper = pd.concat([lstm, lstm.assign(unfrozen_layers=lstm["unfrozen_layers"] + 1)])  # two depths to plot
    assert metric_vs_layers(deeper, "f1_macro", None) is None
    assert metric_vs_layers(deeper.assign(model_family="transformer"), "f1_macro", None) is not None  # control
    # a grid that puts bilstm under top_k stops at expansion, naming the fix
    bad = StudyConfig.model_validate({**study.model_dump(), "grid": {"model.name": ["bilstm"], "freeze": ["top_1"]}})
    with pytest.raises(ConfigError, match="use freeze: all"):
        expand(bad)


def test_example_study_expands_with_each_family_at_its_own_learning_rates():
    study = load_study_config(EXAMPLE)
    runs = expand(study)
    lrs = {}
    for run in runs:
        lrs.setdefault(run.config.model.name, set()).add(run.config.optim.lr)
    assert set(lrs) == {"minilm", "bilstm"}
    assert max(lrs["minilm"]) <= 1e-4 and min(lrs["bilstm"]) >= 1e-3
    assert {r.config.optim.name for r in runs} == {"sgd", "rmsprop", "adam", "adamw"}
    assert all(r.config.freeze.strategy == "all" for r in runs if r.config.model.name == "bilstm")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_example_file_expands(path):
    """Every shipped example parses and expands (without loading a model or data)."""
    text = yaml.safe_load(path.read_text())
    if "base" in text:
        assert expand(load_study_config(path))
    else:
        from unfreeze.config.load import load_run_config

        load_run_config(path)


def test_token_task_trains_with_windows_and_reloads_for_prediction(tiny_bert, tmp_path):
    """NER word alignment and windowing are the transformers' own: the LSTM tags entity words, windows included."""
    from tiny import write_entity_conll
    from unfreeze.model.checkpoint import load_model
    from unfreeze.model.predict_tokens import predict_token_file

    write_entity_conll(tmp_path / "d.conll", {"paris": "B-LOC", "london": "B-LOC", "alice": "B-PER", "bob": "B-PER"},
                       ["the", "a", "movie", "was", "and", "it"], max_words=8, numbered=True)
    cfg = RunConfig.model_validate(run_config(
        tiny_bert, tmp_path / "d.conll", task="token", model=lstm_model(tiny_bert, embedding_dim=32, lstm_hidden=32),
        data={"path": str(tmp_path / "d.conll"), "ignore_labels": ["O"], "max_length": 10, "stride": 4},
        optim={"name": "adam", "lr": 2e-2}, train={"epochs": 12, "batch_size": 16, "threads": 1}))
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["token_lengths"]["windowed_sentences"]["train"] > 0
    assert result["test"]["entity_f1_micro"] > 0.8, result["test"]["entity_f1_micro"]
    model, tok, meta = load_model(tmp_path / "run" / "best")
    (tmp_path / "in.conll").write_text("alice\nlives\nin\nparis\n\n", encoding="utf-8")
    frame = predict_token_file(model, tok, meta, tmp_path / "in.conll", tmp_path / "out.conll")
    assert frame["pred"][0] == ["B-PER", "O", "O", "B-LOC"]
