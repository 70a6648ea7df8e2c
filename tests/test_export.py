"""Using a saved model outside unfreeze: plain transformers checkpoints (token heads, pooler heads), label maps
in every `best/` config.json, and ONNX export checked with onnxruntime against the run's own predictions."""
import json
from pathlib import Path

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


@pytest.fixture(scope="module")
def mean_run(tmp_path_factory, tiny_models):
    """A default run (`pooling: mean`): no transformers class computes its head."""
    from tiny import synthetic_frame

    root = tmp_path_factory.mktemp("meanrun")
    synthetic_frame(240, seed=0).to_csv(root / "s.csv", index=False)
    cfg = parse_run_config(run_config(tiny_models["bert"], root / "s.csv", train={"epochs": 1, "threads": 1}))
    assert cfg.model.pooling == "mean"
    train(cfg, root / "run", progress=False)
    return root / "run"


def test_mean_pooling_folder_is_refused_by_transformers_auto_classes(mean_run):
    """The silent trap: a mean-pooling best/ used to hold the backbone's config.json (BertModel + id2label), so
    AutoModelForSequenceClassification loaded it with a randomly initialised classifier and predicted at chance.
    Now every Auto class and pipeline() raise, naming unfreeze.load; the encoder loads from encoder/."""
    from transformers import AutoModel, AutoModelForSequenceClassification, pipeline

    from unfreeze.model.checkpoint import load_model

    best = mean_run / "best"
    for load in (lambda: AutoModelForSequenceClassification.from_pretrained(best),
                 lambda: AutoModel.from_pretrained(best),
                 lambda: pipeline("text-classification", model=str(best))):
        with pytest.raises(ValueError, match=r"mean pooling: not a transformers class; load the folder with "
                                             r"unfreeze\.load"):
            load()
    config = json.loads((best / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["label2id"] == {"neg": 0, "pos": 1}
    encoder = AutoModel.from_pretrained(best, subfolder="encoder").eval()
    ours, tokenizer, _ = load_model(best)
    enc = tokenizer(["the film was great"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(encoder(**enc).last_hidden_state, ours.backbone(**enc).last_hidden_state)
    card = (best / "README.md").read_text()
    for fact in ("`neg`, `pos`", "mean pooling", "unfreeze.load", 'subfolder="encoder"', "| f1_macro |"):
        assert fact in card


def test_unfreeze_model_reproduces_the_runs_test_predictions(mean_run, tmp_path):
    import unfreeze
    from unfreeze.model.unfreeze_model import UnfreezeModel

    expected = pd.read_csv(mean_run / "predictions_test.csv")
    model = UnfreezeModel.from_pretrained(mean_run / "best")
    assert model.labels == ["neg", "pos"] and model.task == "sequence" and model.max_length > 0
    assert model.predict(expected["text"].tolist()) == expected["pred"].tolist()
    probs = model.predict_proba(expected["text"].tolist())
    assert np.abs(probs - expected[["prob_neg", "prob_pos"]].to_numpy()).max() < 1e-6
    again = unfreeze.load(mean_run)  # a run folder works too
    assert again.predict(expected["text"].tolist()[:3]) == expected["pred"].tolist()[:3]
    # saved again (save_pretrained) and reloaded: the same predictions, the same layout
    copy = model.save_pretrained(tmp_path / "copy")
    assert (copy / "encoder" / "model.safetensors").is_file() and (copy / "README.md").is_file()
    assert np.array_equal(UnfreezeModel.from_pretrained(copy).predict_proba(expected["text"].tolist()), probs)


def test_a_study_arm_loads_as_one_model_averaging_its_runs(mean_run, tmp_path):
    """`from_pretrained(study, arm=…)`: the arm's fold/seed models, probabilities averaged (here two copies of one
    run: the average is that run); one model's operations (save_pretrained) are refused for an arm."""
    import shutil

    from unfreeze.errors import UnfreezeError
    from unfreeze.model.unfreeze_model import UnfreezeModel

    study = tmp_path / "study"
    for run_id, arm in (("r1", "a"), ("r2", "a"), ("r3", "b")):
        shutil.copytree(mean_run / "best", study / "runs" / run_id / "best")
        (study / "runs" / run_id / "run.json").write_text(json.dumps({"run_id": run_id, "arm": arm}))
    (study / "study.json").write_text("{}")
    with pytest.raises(UnfreezeError, match=r"pass --arm NAME \(arms: \['a', 'b'\]\)"):
        UnfreezeModel.from_pretrained(study)
    arm = UnfreezeModel.from_pretrained(study, arm="a")
    texts = pd.read_csv(mean_run / "predictions_test.csv")["text"].tolist()
    single = UnfreezeModel.from_pretrained(mean_run).predict_proba(texts)
    assert "2 models" in repr(arm) and np.abs(arm.predict_proba(texts) - single).max() < 1e-6
    with pytest.raises(UnfreezeError, match="study arm of 2 models"):
        arm.save_pretrained(tmp_path / "one")


def test_model_card_names_a_hub_base_model_only_for_hub_ids(tmp_path, monkeypatch):
    from unfreeze.model.card import base_model_id

    assert base_model_id("minilm") == "sentence-transformers/all-MiniLM-L6-v2"  # a built-in alias's source
    assert base_model_id("org/name") == "org/name"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)  # a local folder of that name is not a hub id
    assert base_model_id("org/name") is None and base_model_id(str(tmp_path)) is None
    assert base_model_id("bilstm") is None


OLD_LAYOUT = Path(__file__).parent / "fixtures" / "old_best_mean"


def test_a_best_folder_in_the_old_layout_still_loads(tmp_path):
    """tests/fixtures/old_best_mean/best was written by unfreeze before the encoder/ sub-folder (commit c30f723:
    the BertModel config.json + model.safetensors at the top), with that run's predictions_test.csv."""
    from typer.testing import CliRunner

    from unfreeze.cli import app
    from unfreeze.model.unfreeze_model import UnfreezeModel

    best = OLD_LAYOUT / "best"
    assert not (best / "encoder").exists() and json.loads((best / "config.json").read_text())["architectures"] == [
        "BertModel"]
    expected = pd.read_csv(OLD_LAYOUT / "predictions_test.csv")
    model = UnfreezeModel.from_pretrained(best)
    assert model.predict(expected["text"].tolist()) == expected["pred"].tolist()
    assert np.abs(model.predict_proba(expected["text"].tolist()) - expected[["prob_neg", "prob_pos"]].to_numpy()
                  ).max() < 1e-6
    done = CliRunner().invoke(app, ["predict", str(best), str(OLD_LAYOUT / "predictions_test.csv"), "-o",
                                    str(tmp_path / "p.csv")])
    assert done.exit_code == 0, done.output
    assert pd.read_csv(tmp_path / "p.csv")["pred"].tolist() == expected["pred"].tolist()
    moved = model.save_pretrained(tmp_path / "new")  # re-saving writes the new layout
    assert (moved / "encoder").is_dir() and UnfreezeModel.from_pretrained(moved).predict(
        expected["text"].tolist()) == expected["pred"].tolist()


def test_pooler_head_loads_in_a_text_classification_pipeline(tiny_bert, sentiment_csv, tmp_path):
    from transformers import pipeline

    from unfreeze.model.unfreeze_model import UnfreezeModel

    model = {"name": tiny_bert, "pooling": "pooler"}
    train(parse_run_config(run_config(tiny_bert, sentiment_csv, model=model, train={"epochs": 1, "threads": 1})),
          tmp_path / "run", progress=False)
    expected = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    texts = expected["text"].tolist()
    classifier = pipeline("text-classification", model=str(tmp_path / "run" / "best"), top_k=None)
    got = [{d["label"]: d["score"] for d in row} for row in classifier(texts)]
    assert [max(row, key=row.get) for row in got] == expected["pred"].tolist()
    assert max(abs(row["pos"] - p) for row, p in zip(got, expected["prob_pos"])) < 1e-5
    ours = UnfreezeModel.from_pretrained(tmp_path / "run")
    assert ours.predict(texts) == expected["pred"].tolist()
    card = (tmp_path / "run" / "best" / "README.md").read_text()
    assert 'pipeline("text-classification", model="PATH")' in card and "subfolder" not in card
    out = ours.export("transformers", tmp_path / "hf")  # the object's export is `unfreeze export`
    assert (out / "model.safetensors").is_file() and not (out / "unfreeze.json").exists()


def test_token_model_object_tags_words_as_predict_does(token_best, tmp_path):
    import unfreeze
    from unfreeze.model.predict import predict_file

    sentences = [["alice", "lives", "in", "paris"], ["the", "acme", "film", "was", "boring"]]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"tokens": s}) + "\n" for s in sentences))
    frame = predict_file(token_best, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    model = unfreeze.load(token_best)
    assert model.task == "token" and model.predict(sentences) == frame["pred"].tolist()
    assert model.predict(["alice lives in paris"]) == frame["pred"].tolist()[:1]  # a string is split on spaces
    probs = model.predict_proba(sentences)
    assert [[model.labels[i] for i in p.argmax(-1)] for p in probs] == frame["pred"].tolist()
    assert all(np.allclose(p.sum(-1), 1.0) for p in probs)


def onnx_probabilities(folder, texts):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    info = json.loads((folder / "unfreeze_export.json").read_text())
    enc = AutoTokenizer.from_pretrained(folder)(texts, truncation=True, max_length=info["max_length"],
                                                padding=True, return_tensors="np")
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {n: enc[n].astype(np.int64) if n in enc else np.zeros_like(enc["input_ids"], dtype=np.int64)
             for n in info["inputs"]}
    (logits,) = session.run(["logits"], feeds)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return info, e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_onnx_export_reproduces_the_test_predictions(arch, tiny_models, sentiment_csv, tmp_path):
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from unfreeze.cli import app

    model = {"name": tiny_models[arch], "pooling": "mean", "hidden": [16]}  # no transformers class computes this
    train(parse_run_config(run_config(tiny_models[arch], sentiment_csv, model=model, train={"epochs": 1, "threads": 1})),
          tmp_path / "run", progress=False)
    refused = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "transformers", "-o",
                                       str(tmp_path / "hf")])
    assert refused.exit_code == 2 and "pooling: pooler" in refused.output and "--format onnx" in refused.output
    assert not (tmp_path / "hf").exists()
    done = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "onnx")])
    assert done.exit_code == 0, done.output
    preds = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    texts = preds["text"].tolist() + ["the movie was " + "very " * 60 + "good"]  # longer than the traced sample
    info, probs = onnx_probabilities(tmp_path / "onnx", texts)
    assert info["labels"] == ["neg", "pos"] and info["task"] == "sequence"
    assert np.abs(probs[:-1] - preds[["prob_neg", "prob_pos"]].to_numpy()).max() < 1e-4
    from unfreeze.model.predict import predict_file

    extra = tmp_path / "extra.csv"
    pd.DataFrame({"text": texts[-1:]}).to_csv(extra, index=False)
    ours = predict_file(tmp_path / "run", extra, tmp_path / "extra_pred.csv")
    assert np.abs(probs[-1] - ours[["prob_neg", "prob_pos"]].to_numpy()[0]).max() < 1e-4


def test_onnx_export_of_a_token_model_gives_its_subword_logits(token_best, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from unfreeze.model.checkpoint import load_model
    from unfreeze.model.export import export_model

    export_model(token_best, tmp_path / "onnx")
    info = json.loads((tmp_path / "onnx" / "unfreeze_export.json").read_text())
    enc = AutoTokenizer.from_pretrained(tmp_path / "onnx")(["alice lives in paris", "bob"], padding=True,
                                                           return_tensors="pt")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {n: enc[n].numpy() for n in info["inputs"]})
    ours, _, meta = load_model(token_best)
    with torch.no_grad():
        expected = ours(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).numpy()
    assert info["task"] == "token" and info["labels"] == meta["labels"]
    assert logits.shape == expected.shape and np.abs(logits - expected).max() < 1e-4
    export_model(token_best, tmp_path / "hf", "transformers")  # a token head is a transformers class
    assert (tmp_path / "hf" / "model.safetensors").is_file() and not (tmp_path / "hf" / "head.safetensors").exists()
