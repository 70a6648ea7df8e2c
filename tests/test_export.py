"""Using a saved model outside unfreeze: plain transformers checkpoints (token heads, pooler heads), label maps
in every `best/` config.json, and ONNX export checked with onnxruntime against the run's own predictions."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from test_tokens import tagged_sentences, token_run, write_conll
from tiny import run_config
from unfreeze.config.load import parse_run_config
from unfreeze.training.run import train


@pytest.fixture(scope="module")
def token_best(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("tokrun")
    path = write_conll(root / "ner.conll", tagged_sentences(120, seed=3))
    train(token_run(tiny_models["bert"], path, train__epochs=2), root / "run", progress=False)
    return root / "run" / "best"


def test_token_model_is_a_plain_token_classification_checkpoint(token_best):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from unfreeze.model.checkpoint import load_model

    ours, tokenizer, meta = load_model(token_best)
    plain = AutoModelForTokenClassification.from_pretrained(token_best).eval()
    labels = meta["labels"]
    assert plain.config.id2label == dict(enumerate(labels))
    assert plain.config.label2id == {name: i for i, name in enumerate(labels)}
    enc = AutoTokenizer.from_pretrained(token_best)(["alice lives in paris", "the acme film was boring"],
                                                     padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = ours(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        got = plain(**enc).logits
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
    assert expected.abs().max() > 0.1  # a trained head, not zeros on both sides
    # the pipeline (every subword, `O` included) tags as our model's argmax does, with the run's label names
    tagger = pipeline("token-classification", model=str(token_best), ignore_labels=[])
    tagged = tagger("alice lives in paris")
    ours_tags = [labels[i] for i in expected[0].argmax(-1).tolist()][1:enc["attention_mask"][0].sum() - 1]
    assert [e["entity"] for e in tagged] == ours_tags and tagged[0]["word"] == "alice"


def test_mean_pooling_folder_still_carries_the_label_maps(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1}))
    assert cfg.model.pooling == "mean"
    train(cfg, tmp_path / "run", progress=False)
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["label2id"] == {"neg": 0, "pos": 1}
    assert config["architectures"] == ["BertModel"]  # backbone only: no transformers class pools by mean
