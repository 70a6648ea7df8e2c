"""`unfreeze inspect` on every format and task: token files (CoNLL, tab-separated .txt, token JSONL) are detected
and reported in sentences/tags/entities; the max_length table and the imbalance hint are computed as documented."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from unfreeze.cli import app
from unfreeze.config.schema import DataConfig
from unfreeze.tasks import inspect_data
from unfreeze.data.inspect_tokens import detect_task, imbalance_hint, length_table
from unfreeze.model.backbone import load_backbone_named

runner = CliRunner()
SENTENCES = [(["alice", "was", "in", "paris"], ["B-PER", "O", "O", "B-LOC"]),
             (["bob", "love", "london", "."], ["B-PER", "O", "B-LOC", "O"]),
             (["the", "movie", "was", "good"], ["O", "O", "O", "O"]),
             (["google", "and", "acme"], ["B-ORG", "O", "B-ORG"])] * 3 + [(["alice", "alice"], ["B-PER", "I-PER"])]


def _write_conll(path, sep="\t"):
    path.write_text("\n\n".join("\n".join(f"{w}{sep}{t}" for w, t in zip(ws, ts)) for ws, ts in SENTENCES) + "\n",
                    encoding="utf-8")
    return path


def _check_token_report(report, tokens=True):
    assert report["task"] == "token" and report["rows"] == len(SENTENCES)
    assert report["duplicate_texts"] == 8
    assert report["labels"]["O"] == sum(t == "O" for _, ts in SENTENCES for t in ts)
    assert report["entities"] == {"PER": 7, "LOC": 6, "ORG": 6}
    if tokens:
        assert report["max_length_table"][0]["max_length"] == 64
        assert all(row["truncated_share"] == 0 for row in report["max_length_table"])


@pytest.mark.parametrize("name", ["train.conll", "train.txt"])
def test_conll_and_tab_separated_txt_are_token_data(tmp_path, tiny_bert, name):
    path = _write_conll(tmp_path / name)
    assert detect_task(DataConfig(path=str(path))) == "token"
    _check_token_report(inspect_data(DataConfig(path=str(path)), tiny_bert, load_model=load_backbone_named))


def test_token_jsonl_detected_and_sequence_jsonl_not(tmp_path, tiny_bert):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"tokens": ws, "tags": ts}) + "\n" for ws, ts in SENTENCES), encoding="utf-8")
    _check_token_report(inspect_data(DataConfig(path=str(path)), None), tokens=False)
    seq = tmp_path / "seq.jsonl"
    seq.write_text(json.dumps({"text": "a b", "label": "x"}) + "\n", encoding="utf-8")
    assert detect_task(DataConfig(path=str(seq))) == "sequence"
    tsv = tmp_path / "seq.tsv"
    tsv.write_text("text\tlabel\nthe movie was good\tpos\nbad film\tneg\n", encoding="utf-8")
    assert detect_task(DataConfig(path=str(tsv))) == "sequence"


def test_cli_inspect_token_file_forced_task_and_table(tmp_path, tiny_bert):
    path = _write_conll(tmp_path / "ner.txt", sep=" ")  # space-separated: not detected, forced
    assert detect_task(DataConfig(path=str(path))) == "sequence"
    result = runner.invoke(app, ["inspect", str(path), "--model", tiny_bert, "--task", "token"])
    assert result.exit_code == 0, result.output
    assert "token task" in result.output and "entities" in result.output and "relative cost" in result.output


def test_length_table_counts_padded_tokens_per_batch():
    lengths = np.array([10] * 31 + [600])  # one batch of 32 padded to its longest example
    table = {row["max_length"]: row for row in length_table(lengths)}
    assert table[64]["truncated_share"] == pytest.approx(1 / 32) and table[512]["truncated_share"] == pytest.approx(1 / 32)
    assert table[64]["relative_cost"] == pytest.approx(64 / 512) and table[512]["relative_cost"] == 1.0
    many = np.arange(1, 65)  # two random batches; cost at 64 = sum of each batch's max × its size
    order = np.random.default_rng(0).permutation(64)
    expected = sum(32 * many[order[i:i + 32]].max() for i in (0, 32)) / sum(32 * many[order[i:i + 32]].max() for i in (0, 32))
    assert {r["max_length"]: r for r in length_table(many)}[512]["relative_cost"] == expected == 1.0
    assert {r["max_length"]: r for r in length_table(many)}[64]["relative_cost"] == 1.0


def test_imbalance_hint_below_half_the_uniform_share(tmp_path, tiny_bert):
    assert imbalance_hint({"a": 91, "b": 9}) and "balanced" in imbalance_hint({"a": 91, "b": 9})
    assert imbalance_hint({"a": 70, "b": 30}) is None
    # issue 25: a balanced 20-class set whose smallest class is 3.3 % (uniform 5 %) is not imbalanced ...
    balanced = {f"c{i}": 53 for i in range(19)} | {"small": 33}
    assert imbalance_hint(balanced) is None
    # ... while a 3-class set with a 9 % class is (uniform 33 %), and the hint names the uniform share
    three = imbalance_hint({"pos": 60, "neg": 31, "neutral": 9})
    assert three and "'neutral' is 9.0%" in three and "33.3% of a uniform split over 3 classes" in three
    path = tmp_path / "spam.csv"
    pd.DataFrame({"text": [f"the movie {i}" for i in range(100)], "label": ["ham"] * 95 + ["spam"] * 5}).to_csv(path, index=False)
    result = runner.invoke(app, ["inspect", str(path), "--model", tiny_bert])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "class_weights: balanced" in output and "'spam' is 5.0%" in output
    assert "relative cost" in result.output


@pytest.mark.assets
@pytest.mark.parametrize("name", ["wnut16", "msra_ner"])
def test_builtin_token_datasets(name):
    report = inspect_data(DataConfig(dataset=name), None)
    assert report["task"] == "token" and report["rows"] > 100 and report["entities"]


def _write_pos(path, tags=110, words_per_tag=3):
    """Part-of-speech-like data: plain tags (no B-/I- prefixes, no `O`), many of them, a few very rare."""
    names = [f"t{i:03d}" for i in range(tags - 2)] + ["dt$", "wql"]
    sentences = [[(f"w{i}", names[(i + j) % (tags - 2)]) for i in range(8)] for j in range(tags * words_per_tag)]
    sentences.append([("the", "dt$"), ("which", "wql")])
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8")
    return path


def test_plain_pos_tags_are_tags_not_entities(tmp_path):
    """Issue 25: plain POS tags gave an "entities" row and "entity type 'dt$' is 0.0 %"; no prefixes and no `O`
    means word classes: no entities row, the hint (if any) speaks of tags, and the tag list is cut at 30."""
    path = _write_pos(tmp_path / "pos.conll")
    report = inspect_data(DataConfig(path=str(path)), None)
    assert report["tag_scheme"] == "plain" and report["entities"] == {}
    assert "entity" not in report.get("imbalance_hint", "")
    assert report["imbalance_hint"].startswith("tag ")
    result = runner.invoke(app, ["inspect", str(path), "--model", "", "--task", "token"])
    assert result.exit_code == 0, result.output
    assert "entities" not in result.output and "entity type" not in result.output
    assert "… and 80 more" in " ".join(result.output.split())
    # an IO-scheme NER file (plain tags with `O`) still has entities
    io = tmp_path / "io.conll"
    io.write_text("alice\tPER\nin\tO\nparis\tLOC\n\nbob\tPER\nsaw\tO\n", encoding="utf-8")
    assert inspect_data(DataConfig(path=str(io)), None)["entities"] == {"PER": 2, "LOC": 1}


def test_val_and_test_labels_absent_from_train_are_named_once(tmp_path):
    """Issue 25: inspect did not check for val/test labels missing from train."""
    import datasets

    frames = {"train": pd.DataFrame({"text": [f"text {i}" for i in range(20)], "label": ["a", "b"] * 10}),
              "validation": pd.DataFrame({"text": ["v1", "v2", "v3"], "label": ["a", "c", "c"]}),
              "test": pd.DataFrame({"text": ["t1", "t2"], "label": ["d", "c"]})}
    folder = tmp_path / "dsd"
    datasets.DatasetDict({k: datasets.Dataset.from_pandas(v) for k, v in frames.items()}).save_to_disk(str(folder))
    report = inspect_data(DataConfig(path=str(folder)), None)
    assert report["unseen_labels"] == {"c": {"val": 2, "test": 1}, "d": {"test": 1}}
    result = runner.invoke(app, ["inspect", str(folder), "--model", ""])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert output.count("never occur in train") == 1 and "'c' (2 in val, 1 in test); 'd' (1 in test)" in output
    single = tmp_path / "one.csv"
    frames["train"].to_csv(single, index=False)
    assert "unseen_labels" not in inspect_data(DataConfig(path=str(single)), None)


def test_cli_prints_each_warning_once_per_process():
    """Issue 25: the unseen-tag warning printed 4 times (once per data load, plus `warnings.warn`). The CLI's
    logging prints a warning's text once per process, whichever way it was sent."""
    import subprocess
    import sys

    code = ("import logging, warnings\nfrom unfreeze.cli import _setup\n_setup()\n"
            "for _ in range(3):\n"
            "    warnings.warn('2 tag(s) of val/test never occur in the training split')\n"
            "    logging.getLogger('unfreeze.data.tokens').warning('2 tag(s) of val/test never occur in the training split')\n"
            "logging.getLogger('unfreeze.other').warning('another warning')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("never occur in the training split") == 1, done.stderr
    assert done.stderr.count("another warning") == 1


@pytest.mark.parametrize("value", ["150", "nan", "-5", "0"])
def test_cli_bad_percentile_is_one_line_and_exit_2(tmp_path, value):
    """`--percentile 150 / nan / -5` was a raw pydantic traceback (rc 1): one line, rc 2, before any reading."""
    data = _write_conll(tmp_path / "d.conll")
    result = runner.invoke(app, ["inspect", str(data), "--model", "", "--percentile", value])
    assert result.exit_code == 2, result.output
    assert f"--percentile {float(value)}: give a number in (0, 100]" in result.output
    assert "Traceback" not in result.output and "validation error" not in result.output
