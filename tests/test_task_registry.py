"""The task registry (issue 24, item 2): one object per task answers what differs by task, so code outside
`tasks/` never compares task names; each task's pieces are checked against scikit-learn / seqeval on tiny data."""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import accuracy_score, f1_score

from unfreeze.config.schema import DataConfig, RunConfig
from unfreeze.data.windows import encode_token_splits, words_from_logits
from unfreeze.errors import ConfigError
from unfreeze.tasks import get_task, task_names
from tiny import write_entity_conll

SRC = Path(__file__).resolve().parents[1] / "src" / "unfreeze"

#: the one file allowed a task-name test: the config's `auto` selection metric: config/ sits below tasks/ in the layer order, so it cannot ask
#: the registry
BELOW_TASKS = {"config/schema.py"}


def task_name_comparisons(src: Path) -> list[str]:
    """Every comparison outside tasks/ whose text mentions `task` and holds a task name as a constant
    (`config.task == "token"`, `meta["task"] != "sequence"`, `task not in (None, "token", …)`)."""
    names = set(task_names())
    found = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith("tasks/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            text = ast.unparse(node)
            constants = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant)}
            if "task" in text and constants & names:
                found.append(f"{rel}:{node.lineno}: {text}")
    return found


def test_no_module_outside_tasks_compares_task_names():
    """A task test outside tasks/ is how the ~40 copies of the token/sequence rules spread over 26 files."""
    offenders = [line for line in task_name_comparisons(SRC)
                 if line.split(":")[0] not in BELOW_TASKS]
    assert offenders == [], "ask get_task(name) instead: " + "; ".join(offenders)


def test_the_comparison_check_finds_the_kinds_it_names(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "tasks").mkdir(parents=True)
    (pkg / "a.py").write_text('if meta["task"] == "token":\n    pass\nok = config.task == "other"\n')
    (pkg / "b.py").write_text('if task not in (None, "token", "sequence"):\n    pass\n')
    (pkg / "tasks" / "c.py").write_text('if self.task == "token":\n    pass\n')
    assert task_name_comparisons(pkg) == ["a.py:1: meta['task'] == 'token'",
                                          "b.py:1: task not in (None, 'token', 'sequence')"]


def test_unknown_task_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError) as err:
        get_task("tokn")
    message = str(err.value)
    assert "\n" not in message
    assert "'tokn'" in message and "did you mean `token`" in message and "known: sequence, token" in message
    with pytest.raises(ConfigError, match="known: sequence, token"):
        get_task(["token"])  # an unhashable value is the same one line, not a TypeError


def test_a_folder_without_a_task_is_a_sequence_model():
    assert get_task(None).name == "sequence"


def test_the_registry_matches_the_config_literal():
    """config/schema.py keeps the `task` literal (it sits below tasks/); a task registered without it could never be
    configured, a name in it without a task would fail at the first get_task."""
    assert sorted(get_args(RunConfig.model_fields["task"].annotation)) == sorted(task_names())


# -- sequence: against scikit-learn ---------------------------------------------------------------------------


def _sequence_run(tmp_path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)).astype(np.float32)
    split = SimpleNamespace(ids=[f"r{i}" for i in range(n)], texts=[f"text {i}" for i in range(n)], pairs=None,
                            labels=labels)
    run = SimpleNamespace(data=SimpleNamespace(test=split), encoded={"test": SimpleNamespace(labels=labels)},
                          label_names=["neg", "neu", "pos"], config=RunConfig.model_validate({"data": {"path": "x"}}))
    return run, labels, logits


def test_sequence_split_metrics_match_scikit_learn(tmp_path):
    task = get_task("sequence")
    run, labels, logits = _sequence_run(tmp_path)
    scored = task.split_metrics(run, run.config.data, "test", list(logits), loss=0.5)
    preds = logits.argmax(-1)
    assert scored["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert scored["f1_macro"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert scored["f1_weighted"] == pytest.approx(f1_score(labels, preds, average="weighted"))


def test_sequence_predictions_file_round_trips_and_recounts_the_metric(tmp_path):
    task = get_task("sequence")
    run, labels, logits = _sequence_run(tmp_path)
    task.write_predictions(tmp_path, run, "test", list(logits))
    assert (tmp_path / "predictions_test.csv").exists()
    gold, pred = task.read_predictions(tmp_path, "test")
    names = np.array(run.label_names)
    assert list(gold) == list(names[labels]) and list(pred) == list(names[logits.argmax(-1)])
    import pandas as pd

    frame = pd.read_csv(tmp_path / "predictions_test.csv")
    probs = scipy_softmax(logits.astype(np.float64), axis=-1)
    assert np.allclose(frame[[f"prob_{n}" for n in names]].to_numpy(), probs)
    metric = task.count_metric("f1_macro", {"labels": run.label_names}, run_config=lambda: pytest.fail("unread"))
    assert metric(gold, pred) == pytest.approx(f1_score(gold, pred, average="macro"))
    assert task.gold_labels(run.data.test, run.label_names) == list(names[labels])


# -- token: against seqeval -----------------------------------------------------------------------------------


@pytest.fixture
def token_run(tmp_path, tiny_models):
    from transformers import AutoTokenizer

    path = write_entity_conll(tmp_path / "ner.conll", {"alice": "B-PER", "paris": "B-LOC", "acme": "B-ORG"},
                              ["the", "a", "lives", "in", "works", "at", "today"], max_words=6, n=60)
    cfg = DataConfig(path=str(path))
    data = get_task("token").read_data(cfg)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bert"])
    encoded, _, _ = encode_token_splits(tokenizer, data, cfg, 512)
    config = RunConfig.model_validate({"task": "token", "data": {"path": str(path)}})
    return SimpleNamespace(data=data, encoded=encoded, label_names=data.label_names, config=config)


def test_token_split_metrics_match_seqeval(token_run):
    task = get_task("token")
    rng = np.random.default_rng(1)
    enc = token_run.encoded["test"]
    logits = [rng.normal(size=(len(ids), len(token_run.label_names))) for ids in enc.input_ids]
    scored = task.split_metrics(token_run, token_run.config.data, "test", logits, loss=0.1)
    names = token_run.label_names
    gold = [[names[t] for t in tags] for tags in token_run.data.test.tags]
    pred = [[names[int(t)] for t in p] for p in words_from_logits(enc, logits)]
    assert scored["entity_f1_micro"] == pytest.approx(seqeval_f1(gold, pred, average="micro"))
    assert scored["accuracy"] == pytest.approx(accuracy_score(sum(gold, []), sum(pred, [])))


def test_token_predictions_file_round_trips_and_recounts_entity_f1(token_run, tmp_path):
    task = get_task("token")
    enc = token_run.encoded["test"]
    rng = np.random.default_rng(2)
    logits = [rng.normal(size=(len(ids), len(token_run.label_names))) for ids in enc.input_ids]
    out = tmp_path / "run"
    out.mkdir()
    task.write_predictions(out, token_run, "test", logits)
    gold, pred = task.read_predictions(out, "test")
    assert (out / "predictions_test.jsonl").exists() and len(gold) == len(token_run.data.test.tags)
    metric = task.count_metric("entity_f1_micro", {"labels": token_run.label_names, "settings": {"scheme": "iob2"}},
                               run_config=lambda: {"data": {"ignore_labels": []}})
    assert metric(gold, pred) == pytest.approx(seqeval_f1(list(gold), list(pred), average="micro"))
    assert task.gold_labels(token_run.data.test, token_run.label_names) == [list(t) for t in token_run.data.test.tags]


def test_each_task_names_its_files_baseline_and_head():
    seq, tok = get_task("sequence"), get_task("token")
    assert (seq.predictions_file("val"), tok.predictions_file("val")) == ("predictions_val.csv",
                                                                         "predictions_val.jsonl")
    assert (seq.baseline_name, tok.baseline_name) == ("TF-IDF", "most-frequent tag")
    assert seq.auto_class("mean") is None and seq.auto_class("pooler") == "AutoModelForSequenceClassification"
    assert tok.auto_class("mean") == "AutoModelForTokenClassification"
    assert (seq.head_words({"pooling": "cls"}), tok.head_words({"pooling": "cls"})) == ("cls pooling", "token head")


def test_a_registered_task_is_asked_by_the_code_outside_tasks(tmp_path):
    """A new task is a registered class: the report and the study's plan ask it without an edit of their own."""
    from unfreeze.report.build import headline_metrics
    from unfreeze.report.significance import read_test_predictions
    from unfreeze.tasks.base import REGISTRY, register
    from unfreeze.tasks.sequence import SequenceTask

    class PairTask(SequenceTask):
        name = "toy_pairs"
        baseline_name = "TF-IDF over both texts"
        predictions_suffix = "pairs.csv"

        def _headline_extra(self, columns):
            return ["accuracy"]

    register(PairTask)
    try:
        (tmp_path / "predictions_test.pairs.csv").write_text("id,label,pred\n1,a,b\n2,b,b\n")
        y, p = read_test_predictions(tmp_path, "toy_pairs")
        assert list(y) == ["a", "b"] and list(p) == ["b", "b"]
        columns = ["test_f1_macro", "test_accuracy", "test_f1_micro"]
        assert headline_metrics("toy_pairs", "f1_macro", columns) == ["f1_macro", "accuracy"]
        assert headline_metrics("sequence", "f1_macro", columns) == ["f1_macro", "accuracy", "f1_micro"]
    finally:
        REGISTRY.pop("toy_pairs")
