"""A run learns, is reproducible, reports global metrics equal to sklearn on its own predictions, selects on
validation, and refuses bad situations with one clear error."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tiny import run_config, synthetic_frame
from unfreeze.training import run as training
from unfreeze.config.load import parse_run_config
from unfreeze.errors import ConfigError, TrainingDivergedError, UnfreezeError
from unfreeze.training.loss import loss_fn


@pytest.fixture
def data_400(tmp_path):
    path = tmp_path / "d400.csv"
    synthetic_frame(400, seed=1).to_csv(path, index=False)
    return path


def metrics_without_time(result):
    timings = ("setup_seconds", "train_seconds", "final_eval_seconds", "epoch_eval_seconds", "run_seconds", "peak_rss_mb")
    return {k: v for k, v in result.items() if k not in timings} | {
        "history": [{k: v for k, v in row.items() if k not in ("seconds", "eval_seconds")} for row in result["history"]],
        "cache": {k: v for k, v in result["cache"].items() if k != "fill_seconds"}}


def test_tiny_model_learns_separable_task(tiny_bert, data_400, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, data_400, train={"epochs": 5, "threads": 1}))
    result = training.train(cfg, tmp_path / "run", progress=False)
    assert result["val"]["accuracy"] > 0.9
    assert result["test"]["accuracy"] > 0.85


def test_same_seed_same_metrics_different_seed_differs(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"epochs": 2, "threads": 1}))
    a = training.train(cfg, tmp_path / "a", progress=False)
    b = training.train(cfg, tmp_path / "b", progress=False)
    assert metrics_without_time(a) == metrics_without_time(b)
    c = training.train(cfg.model_copy(update={"seed": 1}), tmp_path / "c", progress=False)
    assert c["val"]["loss"] != a["val"]["loss"]


def test_reported_metrics_equal_sklearn_on_written_predictions(tiny_bert, sentiment_csv, tmp_path):
    # eval batches of 5 over 24 val/test rows: a loop that averaged F1 over batches would not match sklearn
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"epochs": 2, "threads": 1,
                                                                       "eval_batch_size": 5}))
    training.train(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for split in ("val", "test"):
        preds = pd.read_csv(tmp_path / "run" / f"predictions_{split}.csv")
        assert metrics[split]["accuracy"] == pytest.approx(accuracy_score(preds["label"], preds["pred"]))
        assert metrics[split]["f1_macro"] == pytest.approx(f1_score(preds["label"], preds["pred"], average="macro"))
        probs = preds[["prob_neg", "prob_pos"]].to_numpy()
        assert np.allclose(probs.sum(1), 1)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"train_loss", "val_f1_macro", "lr", "seconds", "step"} <= set(history.columns)


def test_best_epoch_is_chosen_on_validation(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"epochs": 3, "threads": 1}))
    result = training.train(cfg, tmp_path / "run", progress=False)
    best = max(result["history"], key=lambda r: r["val_f1_macro"])
    assert result["best_epoch"] == best["epoch"]
    assert result["val"]["f1_macro"] == pytest.approx(best["val_f1_macro"])


def test_early_stopping(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, optim={"lr": 1e-12},
                                      train={"epochs": 6, "early_stopping_patience": 1, "threads": 1,
                                             "metric": "accuracy"}))
    result = training.train(cfg, tmp_path / "run", progress=False)
    assert len(result["history"]) == 2


def test_early_stopping_counts_evaluations_inside_an_epoch(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, optim={"lr": 1e-12},
                                      train={"epochs": 3, "early_stopping_patience": 2, "eval_every_steps": 2,
                                             "threads": 1, "metric": "accuracy", "save_model": False}))
    result = training.train(cfg, tmp_path / "run", progress=False)
    assert [row["step"] for row in result["history"]] == [2, 4, 6]  # best, stale, stale → stop (12 steps/epoch)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", "rmsprop"])
def test_optimizers_run(optimizer, tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, optim={"name": optimizer, "lr": 1e-3},
                                      train={"epochs": 1, "threads": 1, "save_model": False}))
    result = training.train(cfg, tmp_path / "run", progress=False)
    assert np.isfinite(result["val"]["loss"])


def test_plateau_scheduler_and_accumulation_and_step_evaluation(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(
        tiny_bert, sentiment_csv, scheduler={"name": "plateau", "patience": 0, "factor": 0.5},
        optim={"lr": 1e-5}, train={"epochs": 3, "grad_accum_steps": 2, "batch_size": 8, "threads": 1,
                                  "eval_every_steps": 5, "metric": "accuracy", "save_model": False}))
    result = training.train(cfg, tmp_path / "run", progress=False)
    history = result["history"]
    steps_per_epoch = 192 // 8 // 2  # 240 rows, 80 % train, batches of 8, two batches per optimizer step
    assert history[-1]["step"] == 3 * steps_per_epoch
    assert any(not float(r["epoch"]).is_integer() for r in history)  # evaluations inside epochs
    assert history[-1]["lr"] < history[0]["lr"]  # plateau reduced the LR


def test_weight_decay_not_on_biases_and_norms(tiny_bert, sentiment_csv):
    from unfreeze.training.optim import parameter_groups
    from tiny import run_parts

    run = run_parts(parse_run_config(run_config(tiny_bert, sentiment_csv)))
    names = {id(p): n for n, p in run.model.named_parameters()}
    for group in parameter_groups(run.model, run.config):
        for p in group["params"]:
            if names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)]:
                assert group["weight_decay"] == 0.0
            else:
                assert group["weight_decay"] > 0


def test_nan_loss_stops_and_names_the_step(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    import unfreeze.training.loop as loop

    real = loop.loss_fn
    monkeypatch.setattr(loop, "loss_fn", lambda *a: real(*a) * float("nan"))
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv))
    with pytest.raises(TrainingDivergedError, match="at step 1 \\(epoch 1\\)"):
        training.train(cfg, tmp_path / "run", progress=False)


def test_class_weights(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"class_weights": {"pos": 3.0}, "epochs": 1,
                                                                       "save_model": False, "threads": 1}))
    assert np.isfinite(training.train(cfg, tmp_path / "a", progress=False)["val"]["loss"])
    bad = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"class_weights": {"maybe": 3.0}}))
    with pytest.raises(ConfigError, match="'maybe' is not one of"):
        training.train(bad, tmp_path / "b", progress=False)


def test_refuses_to_overwrite_a_run_folder(tiny_bert, sentiment_csv, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv))
    with pytest.raises(UnfreezeError, match="so it is not a run folder"):
        training.train(cfg, out, progress=False)
    assert (out / "precious.txt").read_text() == "keep me"


def test_unknown_selection_metric_fails_before_the_first_step(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"metric": "f2", "epochs": 1}))
    monkeypatch.setattr(training, "make_loaders", lambda *a: pytest.fail("got to training with a misspelt metric"))
    with pytest.raises(ConfigError, match="train.metric='f2'.*f1_macro"):
        training.train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_empty_test_split_is_refused_before_training(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, data={"path": str(sentiment_csv),
                                                                      "split": {"val": 0.2, "test": 0.0}}))
    with pytest.raises(UnfreezeError, match="test split is empty"):
        training.train(cfg, tmp_path / "run", progress=False)


def test_zero_class_weights_ignore_a_label_without_nan():
    import torch

    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 1, 2, 0, -100])
    weight = torch.tensor([0.0, 1.0, 2.0])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weight, ignore_index=-100)
    assert loss_fn(logits, labels, weight).item() == pytest.approx(expected.item())
    only_ignored = loss_fn(logits[:2], labels[:2], weight)  # a batch of `O` only
    assert only_ignored.item() == 0.0


def test_loss_ignore_labels_sets_their_weight_to_zero(tiny_bert, sentiment_csv, tmp_path):
    from tiny import run_parts
    from unfreeze.training.loss import class_weight_tensor

    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"loss_ignore_labels": ["neg"],
                                                                       "class_weights": {"pos": 2.0}}))
    weights = class_weight_tensor(cfg.train, run_parts(cfg).label_names, None, cfg.task)
    assert weights.tolist() == [0.0, 2.0]  # labels sorted: neg, pos
    everything = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"loss_ignore_labels": ["neg", "pos"]}))
    with pytest.raises(ConfigError, match="every label"):
        class_weight_tensor(everything.train, run_parts(everything).label_names, None, everything.task)


def test_standard_head_is_loadable_by_plain_transformers(tiny_bert, sentiment_csv, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, model={"name": tiny_bert, "pooling": "pooler"},
                                      train={"epochs": 1, "threads": 1}))
    training.train(cfg, tmp_path / "run", progress=False)
    best = tmp_path / "run" / "best"
    model = AutoModelForSequenceClassification.from_pretrained(best).eval()
    tokenizer = AutoTokenizer.from_pretrained(best)
    preds = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    with torch.no_grad():
        enc = tokenizer(preds["text"].tolist(), padding=True, truncation=True, max_length=128, return_tensors="pt")
        probs = model(**enc).logits.softmax(-1).numpy()
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert np.allclose(probs, preds[["prob_neg", "prob_pos"]].to_numpy(), atol=1e-4)


def test_compiled_run_gives_the_same_metrics(tiny_bert, sentiment_csv, tmp_path):
    """`train.compile` changes how the graph runs, not what it computes (tolerance: kernel fusion reorders sums).
    Dropout off: compiled graphs draw their dropout masks from their own generator, so with dropout the two
    paths train on different masks (each deterministic for its seed)."""
    model = {"name": tiny_bert, "dropout": 0.0, "hidden_dropout": 0.0, "attention_dropout": 0.0}
    base = run_config(tiny_bert, sentiment_csv, freeze={"top_k": 1}, model=model,
                      train={"epochs": 1, "threads": 1, "save_model": False, "cache": "off"})
    plain = training.train(parse_run_config(base), tmp_path / "plain", progress=False)
    base["train"]["compile"] = True
    compiled = training.train(parse_run_config(base), tmp_path / "compiled", progress=False)
    assert compiled["val"]["loss"] == pytest.approx(plain["val"]["loss"], abs=1e-4)
    assert compiled["test"]["accuracy"] == pytest.approx(plain["test"]["accuracy"])


def test_a_runs_thread_count_does_not_leak_into_the_next_run(tiny_bert, sentiment_csv, tmp_path):
    """A study mixing a `train.threads: 1` arm (the BiLSTM) with others: the others keep the process's threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1}), "t")
        metrics = training.train(cfg, tmp_path / "r", progress=False)
        assert metrics["machine"]["torch_threads"] == 1  # the run itself used its own setting
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
