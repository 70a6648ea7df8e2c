"""`data.hub`: datasets.load_dataset through the packaged builders on local files (csv / json / parquet), so the
tests run offline; a hub name that is not cached fails in one line naming the fix."""
import json

import pandas as pd
import pytest

from test_tokens import tagged_sentences
from tiny import synthetic_frame
from unfreeze.config.schema import DataConfig
from unfreeze.data.sequence import load_sequence_data
from unfreeze.data.tokens import load_token_data
from unfreeze.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


def renamed(frame):
    return frame.rename(columns={"text": "sentence", "label": "sentiment"}).assign(uid=range(len(frame)))


def test_csv_builder_with_named_splits_and_column_mapping(tmp_path):
    files = {}
    for split, seed in (("train", 0), ("validation", 1), ("test", 2)):
        files[split] = str(tmp_path / f"{split}.csv")
        renamed(synthetic_frame(60, seed=seed)).assign(sentence=lambda f: f.sentence + f" {split}").to_csv(
            files[split], index=False)
    cfg = DataConfig(hub={"path": "csv", "data_files": files}, text_column="sentence", label_column="sentiment",
                     id_column="uid")
    data = load_sequence_data(cfg)
    assert data.label_names == ["neg", "pos"]
    assert {k: len(getattr(data, k)) for k in ("train", "val", "test")} == {"train": 60, "val": 60, "test": 60}
    expected = pd.read_csv(files["test"])
    assert data.test.texts == expected["sentence"].tolist()
    assert [data.label_names[i] for i in data.test.labels] == expected["sentiment"].tolist()


def test_split_expressions_and_carved_test(tmp_path):
    path = tmp_path / "all.jsonl"
    renamed(synthetic_frame(100)).to_json(path, orient="records", lines=True)
    cfg = DataConfig(hub={"path": "json", "data_files": str(path), "splits": {"train": "train[:80%]",
                                                                                "validation": "train[80%:]"}},
                     text_column="sentence", label_column="sentiment", split={"val": 0.1, "test": 0.25})
    data = load_sequence_data(cfg)
    assert len(data.val) == 20 and len(data.test) == 20 and len(data.train) == 60  # test carved from the 80
    assert set(data.val.texts) == set(pd.read_json(path, lines=True)["sentence"][80:])


def test_parquet_class_labels_read_as_names(tmp_path):
    import datasets

    frame = synthetic_frame(80)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    ds = datasets.Dataset.from_dict({"text": frame["text"].tolist(),
                                     "label": [["neg", "pos"].index(v) for v in frame["label"]]}, features=features)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    data = load_sequence_data(DataConfig(hub={"path": "parquet", "data_files": {"train": str(tmp_path / "d.parquet")}}))
    assert data.label_names == ["neg", "pos"] and len(data.train) + len(data.val) + len(data.test) == 80


def test_token_rows_through_the_json_builder(tmp_path):
    sentences = tagged_sentences(50, seed=4)
    path = tmp_path / "ner.jsonl"
    path.write_text("".join(json.dumps({"words": w, "ner": t}) + "\n" for w, t in sentences), encoding="utf-8")
    cfg = DataConfig(hub={"path": "json", "data_files": {"train": str(path)}}, tokens_column="words",
                     tags_column="ner", ignore_labels=["O"])
    data = load_token_data(cfg)
    got = {tuple(s) for s in data.train.words + data.val.words + data.test.words}
    assert got == {tuple(w) for w, _ in sentences}
    assert {"B-PER", "B-LOC", "B-ORG", "O"} == set(data.label_names)


def test_uncached_hub_name_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_sequence_data(DataConfig(hub={"path": "someone/not-a-cached-dataset-xyz"}))
    message = str(err.value)
    assert "\n" not in message and "not-a-cached-dataset-xyz" in message
    assert "HF_HUB_OFFLINE=1" in message and "save_to_disk" in message


def test_hub_is_one_source_and_needs_a_train_split():
    from unfreeze.config.load import parse_run_config
    from tiny import run_config

    with pytest.raises(ConfigError, match="exactly one of"):
        parse_run_config(run_config("m", "d.csv", data={"path": "d.csv", "hub": {"path": "csv"}}))
    with pytest.raises(ConfigError, match="train"):
        parse_run_config(run_config("m", "d.csv", data={"hub": {"path": "csv", "splits": {"test": "test"}}}))
