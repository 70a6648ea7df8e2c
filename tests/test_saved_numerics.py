"""The test split is scored with the numerics of the saved model: after a cached run (fp16 frozen prefix),
`predict RUN` on the test file reproduces predictions_test.csv — the final val/test pass reads val/test's float32
cache, which equals the full forward (bit for bit on the same batches: tests/test_cache_families.py).
`freeze: {layer: k}` stops the model at layer k in the cached and the uncached path and in the saved model."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from tiny import run_config
from unfreeze.config.load import parse_run_config
from unfreeze.config.schema import ModelConfig
from unfreeze.errors import ConfigError
from unfreeze.strategies import get_strategy
from unfreeze.model.predict import predict_file
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.run import train


def _train(model, data, out, freeze, cache="on", dtype="float16"):
    cfg = parse_run_config(run_config(model, data, freeze=freeze, train={
        "epochs": 2, "threads": 1, "cache": cache, "cache_dtype": dtype}))
    return train(cfg, out, progress=False, callbacks=RunCallbacks(cache_root=out.parent / "cache"))


def _assert_reproduced(run_dir, tmp_path):
    """`predict RUN` on the test split's texts gives predictions_test.csv again; returns the max |Δ prob|."""
    saved = pd.read_csv(run_dir / "predictions_test.csv")
    test_csv = tmp_path / f"{run_dir.name}-test.csv"
    saved[["text"]].to_csv(test_csv, index=False)
    again = predict_file(run_dir, test_csv, tmp_path / f"{run_dir.name}-again.csv")
    probs = [c for c in saved.columns if c.startswith("prob")]
    assert list(again["pred"].astype(str)) == list(saved["pred"].astype(str))
    diff = np.abs(again[probs].to_numpy() - saved[probs].to_numpy()).max()
    assert diff <= 1e-5, diff
    return diff


def test_predict_reproduces_a_cached_top_k_run(tiny_bert, sentiment_csv, tmp_path):
    result = _train(tiny_bert, sentiment_csv, tmp_path / "run", {"top_k": 1})
    assert result["cache"]["used"] and result["final_eval_seconds"] >= 0
    _assert_reproduced(tmp_path / "run", tmp_path)


def test_layer_k_stops_at_layer_k_cached_and_uncached(tiny_bert, sentiment_csv, tmp_path):
    """`layer: 1`: the head reads the states entering layer 1; the cached (fp32) and the full path agree, the
    stop is saved, and predict on best/ reproduces predictions_test.csv."""
    cached = _train(tiny_bert, sentiment_csv, tmp_path / "on", {"layer": 1}, dtype="float32")
    plain = _train(tiny_bert, sentiment_csv, tmp_path / "off", {"layer": 1}, cache="off")
    assert cached["cache"]["used"] and cached["cache"]["from_layer"] == 1 and not plain["cache"]["used"]
    assert cached["trainable_params"] == plain["trainable_params"]
    for split in ("val", "test"):
        assert cached[split]["loss"] == pytest.approx(plain[split]["loss"], abs=1e-5)
    on, off = (pd.read_csv(tmp_path / d / "predictions_test.csv") for d in ("on", "off"))
    probs = [c for c in on.columns if c.startswith("prob")]
    assert np.abs(on[probs].to_numpy() - off[probs].to_numpy()).max() <= 1e-5
    assert json.loads((tmp_path / "on" / "best" / "unfreeze.json").read_text())["stop_at"] == 1
    _assert_reproduced(tmp_path / "on", tmp_path)


def test_layer_k_reads_the_hidden_states_entering_layer_k(tiny_bert):
    model, _, _ = _tiny_classifier(tiny_bert)
    model.set_stop_layer(1)
    ids = torch.tensor([[2, 8, 20, 3, 0], [2, 9, 3, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        states = model.encode(ids, mask)
        expected = model.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1]
    assert torch.allclose(states, expected, atol=1e-6)
    assert not torch.allclose(states, model.backbone(input_ids=ids, attention_mask=mask).last_hidden_state)


def test_layer_k_sets_the_stop_through_the_models_api():
    """Issue 24: `layer: k` told the model where to stop by assigning `model.stop_at` from outside the class; it
    now calls `EncoderClassifier.set_stop_layer(k)`, which checks the bound itself."""
    from types import SimpleNamespace

    from unfreeze.model.heads import EncoderClassifier

    calls = []

    class Model:  # only the model's API: assigning its state from outside fails
        layout = SimpleNamespace(num_layers=3, pooler=None)

        def set_stop_layer(self, k):
            calls.append(k)

        def __setattr__(self, name, value):
            raise AttributeError(f"a strategy assigned model.{name}")

    get_strategy("layer").apply(Model(), SimpleNamespace(k=2, train_pooler=False))
    assert calls == [2]
    with pytest.raises(ValueError, match="layers 1 … 2"):
        EncoderClassifier.set_stop_layer(SimpleNamespace(layout=SimpleNamespace(num_layers=2)), 3)


def test_layer_k_label_and_bounds(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"layer": 2}))
    assert get_strategy("layer").label(cfg.freeze) == "layer-2"
    with pytest.raises(ConfigError, match="1 ≤ k"):
        parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"layer": 0}))
    with pytest.raises(ConfigError, match="only 2 layers"):
        _train(tiny_bert, sentiment_csv, tmp_path / "too-deep", {"layer": 3})


def _tiny_classifier(name):
    from unfreeze.model.backbone import discover_layout, load_backbone
    from unfreeze.model.heads import EncoderClassifier

    backbone, tok = load_backbone(ModelConfig(name=name))
    backbone.eval()
    return EncoderClassifier(backbone, discover_layout(backbone), 2, ModelConfig(name=name)).eval(), tok, None
