"""Near-duplicates across splits (issue #12): normalised-text matches counted in metrics.json["data"], dropped by
default, kept with data.near_duplicates: keep; unfreeze inspect counts them within a table."""
import pandas as pd

from tiny import synthetic_frame
from unfreeze.config.schema import DataConfig
from unfreeze.data import near_duplicates as nd
from unfreeze.tasks import inspect_data
from unfreeze.data.sequence import load_sequence_data
from unfreeze.data.tokens import load_token_data


def test_normalise_ignores_case_punctuation_whitespace_and_compatibility_forms():
    assert nd.normalise("Great  movie!!") == nd.normalise("great movie") == "greatmovie"
    assert nd.normalise("ＧＲＥＡＴ movie") == "greatmovie"  # NFKC: full-width letters
    assert nd.normalise("great movie") != nd.normalise("great movies")
    assert nd.matches(nd.keys(["a", "!"]), nd.keys(["A!", "...", "b"])) == [True, False, False]  # punctuation-only never matches
    assert nd.within(["Hi there", "hi there!", "Hi there", "other"]) == 1


def _files(tmp_path):
    train = synthetic_frame(40)
    val, test = synthetic_frame(10, 1), synthetic_frame(10, 2)
    val["text"], test["text"] = val["text"] + " v", test["text"] + " t"
    test.loc[0, "text"] = "  " + train.loc[3, "text"].upper() + " !"
    test.loc[0, "label"] = train.loc[3, "label"]
    val.loc[0, "text"] = train.loc[5, "text"].replace(" ", "  ") + "."
    paths = []
    for name, frame in (("train", train), ("val", val), ("test", test)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(str(tmp_path / f"{name}.csv"))
    return paths


def test_sequence_near_duplicates_dropped_by_default_and_kept_on_request(tmp_path):
    train, val, test = _files(tmp_path)
    dropped = load_sequence_data(DataConfig(train=train, val=val, test=test))
    assert dropped.notes["near_duplicates"] == {"policy": "drop", "val": 1, "test": 1}
    assert (len(dropped.val), len(dropped.test)) == (9, 9)
    kept = load_sequence_data(DataConfig(train=train, val=val, test=test, near_duplicates="keep"))
    assert kept.notes["near_duplicates"] == {"policy": "keep", "val": 1, "test": 1}
    assert (len(kept.val), len(kept.test)) == (10, 10)
    assert inspect_data(DataConfig(path=str(tmp_path / "train.csv")))["near_duplicate_texts"] == 0
    both = pd.concat([pd.read_csv(train), pd.read_csv(test)])
    both.to_csv(tmp_path / "both.csv", index=False)
    assert inspect_data(DataConfig(path=str(tmp_path / "both.csv")))["near_duplicate_texts"] == 1


def test_token_near_duplicates(tmp_path):
    def conll(path, sentences):
        path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n")
        return str(path)

    sent = lambda *words: [(w, "B-PER" if w[0].isupper() and i == 0 else "O") for i, w in enumerate(words)]  # noqa
    train = conll(tmp_path / "tr.conll", [sent("Alice", "went", "home"), sent("Bob", "ran")])
    val = conll(tmp_path / "va.conll", [sent("Carol", "sat"), sent("Dan", "ate")])
    test = conll(tmp_path / "te.conll", [[("Alice", "B-PER"), ("went", "O"), ("home", "O"), (".", "O")],
                                        sent("Eve", "slept")])
    data = load_token_data(DataConfig(train=train, val=val, test=test))
    assert data.notes["near_duplicates"] == {"policy": "drop", "val": 0, "test": 1} and len(data.test.words) == 1
