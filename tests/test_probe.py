"""The per-layer linear probe finds the layer that carries the signal: on a cue-word task, a tiny encoder whose
layer i is made to output a constant (its output LayerNorm scaled to 0) must read at chance from depth i + 1 up
and well above it below — so the probe cannot pass by accident, and an off-by-one in layer indexing fails."""
import json

import pytest
import torch

from tiny import run_config, synthetic_frame
from unfreeze.probe import sequence as probe
from unfreeze.config.load import parse_run_config


@pytest.fixture(scope="module")
def cue_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe-data") / "cues.csv"
    synthetic_frame(600, seed=3).to_csv(path, index=False)
    return path


def constant_after(model_dir: str, layer: int, folder) -> str:
    """A copy of the tiny BERT whose layer `layer` outputs one constant vector for every token and text."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_dir)
    norm = model.encoder.layer[layer].output.LayerNorm
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        norm.weight.zero_()
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=generator))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("constant_layer, readable, top_ks", [
    (None, {0, 1, 2}, [0, 1, 2]),  # intact: the top reads as well as any layer → head / top 1–2
    (1, {0, 1}, [1, 2]),  # the last layer destroys the signal → retrain it (+1 margin)
    (0, {0}, [2]),  # only the embeddings carry it → retrain every layer
])
def test_probe_finds_where_the_signal_is(constant_layer, readable, top_ks, tiny_bert, cue_csv, tmp_path,
                                         monkeypatch):
    monkeypatch.setattr(probe, "baseline_val_metric", lambda *args: None)  # judged separately below
    model = tiny_bert if constant_layer is None else constant_after(tiny_bert, constant_layer, tmp_path / "m")
    cfg = parse_run_config(run_config(model, cue_csv, data={"path": str(cue_csv), "train_size": 400},
                                      model={"name": model, "pooling": "mean"}))
    result = probe.run_probe(cfg, tmp_path / "probe")
    assert [x["index"] for x in result["layers"]] == [0, 1, 2] and result["n_train"] == 400
    for layer in result["layers"]:
        if layer["index"] in readable:
            assert layer["val_metric"] > 0.85, result["layers"]
        else:  # constant features: one predicted class, macro F1 of a balanced binary task ≈ 1/3
            assert layer["val_metric"] < 0.4, result["layers"]
    assert result["suggested_top_k"] == top_ks
    assert result["metric"] == "f1_macro" and "top_k" in result["suggestion"]
    assert json.loads((tmp_path / "probe" / "probe.json").read_text()) == json.loads(json.dumps(result))
    assert (tmp_path / "probe" / "probe.png").read_bytes()[:4] == b"\x89PNG"


def test_cls_pooling_probes_the_cls_state(tiny_bert, cue_csv, tmp_path, monkeypatch):
    """At the embeddings the [CLS] state is the same for every text (token + position 0): nothing to read."""
    monkeypatch.setattr(probe, "baseline_val_metric", lambda *args: None)
    cfg = parse_run_config(run_config(tiny_bert, cue_csv, model={"name": tiny_bert, "pooling": "cls"}))
    result = probe.run_probe(cfg, tmp_path / "probe")
    assert result["layers"][0]["val_metric"] < 0.4 < 0.85 < result["layers"][1]["val_metric"]


def test_probe_tfidf_baseline_is_the_study_one(tiny_bert, cue_csv, monkeypatch):
    from unfreeze.study import baselines
    from unfreeze.training.prepare import load_data

    cfg = parse_run_config(run_config(tiny_bert, cue_csv, seed=7))
    data = load_data(cfg)
    assert probe.baseline_val_metric(data, cfg, "f1_macro") > 0.95  # the cue words are perfectly lexical
    calls = []

    def tfidf_logreg(*args, positive_label=None, seed=0, pairs=None, analyzer="auto"):
        calls.append((len(args), positive_label, seed, pairs, analyzer))
        return {"val": {"f1_macro": 0.123}, "test": {}}

    monkeypatch.setattr(baselines, "tfidf_logreg", tfidf_logreg)
    assert probe.baseline_val_metric(data, cfg, "f1_macro") == 0.123
    assert calls == [(7, None, 7, None, "auto")]


@pytest.mark.parametrize("scores, metric, baseline, n_val, expected", [
    ([0.60, 0.70, 0.80, 0.85], "f1_macro", None, 1000, [0, 1, 2]),  # still rising at the top
    ([0.80, 0.82, 0.81], "f1_macro", None, 100, [0, 1, 2]),  # top within one standard error of the peak
    ([0.70, 0.90, 0.80, 0.75, 0.70], "f1_macro", None, 1000, [3, 4]),  # peak at 1 of 4: retrain layers 2–4
    ([0.70, 0.88, 0.90, 0.60], "accuracy", 0.80, 1000, [1, 2]),  # deepest layer within noise of the peak: 2
    ([0.60, 0.62, 0.63, 0.64, 0.65], "f1_macro", 0.80, 1000, [0, 1, 2, 4]),  # all below TF-IDF: + all layers
    ([0.50, 0.30, 0.60], "loss", None, 1000, [1, 2]),  # lower is better
])
def test_suggestion_rule(scores, metric, baseline, n_val, expected):
    top_ks, text = probe.suggest_top_k(scores, baseline, metric, n_val)
    assert top_ks == expected
    assert ("TF-IDF" in text) == (baseline is not None)
    if baseline is not None and max(scores) < baseline:
        assert "No layer beats the TF-IDF baseline" in text


@pytest.mark.parametrize("constant_layer, readable", [(None, {0, 1, 2}), (1, {0, 1})])
def test_token_probe_finds_where_the_signal_is(constant_layer, readable, tiny_bert, tmp_path):
    """Per-word probes on a tagging task: where the last layer outputs a constant for every token, the top
    layer's probe can only predict `O` (entity F1 0) while lower layers read the entities."""
    from test_tokens import tagged_sentences, write_conll

    data = write_conll(tmp_path / "ner.conll", tagged_sentences(300, seed=2))
    model = tiny_bert if constant_layer is None else constant_after(tiny_bert, constant_layer, tmp_path / "m")
    cfg = parse_run_config(run_config(model, data, task="token", data={"path": str(data), "ignore_labels": ["O"]},
                                      model={"name": model}))
    result = probe.run_probe(cfg, tmp_path / "probe")
    assert result["task"] == "token" and result["metric"] == "entity_f1_micro"
    assert [x["index"] for x in result["layers"]] == [0, 1, 2] and result["n_val_words"] > 0
    for layer in result["layers"]:
        if layer["index"] in readable:
            assert layer["val_metric"] > 0.8, result["layers"]
        else:
            assert layer["val_metric"] < 0.1, result["layers"]
    assert "most-frequent-tag baseline" in result["suggestion"]
    assert (tmp_path / "probe" / "probe.png").read_bytes()[:4] == b"\x89PNG"
