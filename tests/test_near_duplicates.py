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


def _brute_force_shares(train, others, words):
    def grams(text):
        tokens = nd._WORD.findall(text.casefold())
        return {tuple(tokens[i:i + words]) for i in range(len(tokens) - words + 1)}

    seen = set().union(*(grams(t) for t in train)) if train else set()
    return {name: round(sum(bool(grams(t) & seen) for t in texts) / len(texts), 4) if texts else 0.0
            for name, texts in others.items()}


def test_shared_passages_match_a_brute_force_count_and_never_cross_two_texts():
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(30)]
    train = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 40))) for _ in range(60)]
    val = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) for _ in range(40)]
    val += [t[: len(t) // 2] + " NEW words" for t in train[:20]]  # a copied half of a training text
    test = [" ".join(rng.choice(vocab) for _ in range(20)) for _ in range(30)]
    for words in (3, 5, 12):
        got = nd.passage_shares(train, {"val": val, "test": test}, words=words)
        assert {k: got[k] for k in ("val", "test")} == _brute_force_shares(train, {"val": val, "test": test}, words)
    # the end of one training text and the start of the next are not a passage
    assert nd.passage_shares(["a b c", "d e f"], {"val": ["c d e"]}, words=3)["val"] == 0.0
    # an empty split has no share: 0 % would read as "test shares nothing" (and flag validation as leaky)
    assert nd.passage_shares([], {"val": ["a b c"], "test": []}, words=3) == {"words": 3, "val": 0.0}


def test_shared_passage_warning_names_validation_only_when_it_shares_far_more_than_test():
    assert nd.shared_passage_warning({"words": 12, "val": 1.0, "test": 0.0}).startswith(
        "100 % of validation texts share a passage of 12+ words with a training text (test: 0 %)")
    assert nd.shared_passage_warning({"words": 12, "val": 0.03, "test": 0.03}) is None  # tweets: retweets
    both = nd.shared_passage_warning({"words": 12, "val": 0.5, "test": 0.45})
    assert "validation" not in both and both.startswith("45 % of test texts") and "data.test" in both
    assert nd.shared_passage_warning(None) is None


def test_grouped_documents_carved_into_validation_are_counted_warned_and_reported(tmp_path, caplog):
    """Documents of one source share passages: a validation split carved at random holds them, a test file split
    by source does not (benchmarks/review_sets.py long: TF-IDF 0.868 on such a validation split, 0.484 on test)."""
    import json

    from unfreeze.report.setup import setup_blocks

    sources = [f"source{i} says " + " ".join(f"s{i}w{j}" for j in range(20)) for i in range(40)]
    train = pd.DataFrame({"text": [f"{sources[i % 30]} and then {k}" for k in range(120) for i in [k]],
                          "label": ["a", "b"] * 60})
    test = pd.DataFrame({"text": [f"{sources[30 + i % 10]} later {i}" for i in range(30)], "label": ["a", "b"] * 15})
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    cfg = DataConfig(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"))
    data = load_sequence_data(cfg)
    shared = data.notes["shared_passages"]
    assert shared["val"] == 1.0 and shared["test"] == 0.0
    assert any("of validation texts share a passage" in r.message for r in caplog.records)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"data": {"shared_passages": shared}}))
    (run / "config.yaml").write_text("model: {name: m}\n")
    blocks = setup_blocks(pd.DataFrame({"arm": ["head"], "seed": [0], "path": [str(run)]}))
    rows = dict(blocks[1][2])
    assert rows["texts sharing a 12-word passage with training (val / test)"] == "100 % / 0 %"
    assert blocks[-1][1].startswith("Warning: 100 % of validation texts")


def test_shared_passages_count_cjk_characters_as_words_and_ignore_templates_common_to_training():
    """The hostile tester: an exact copy of a Chinese training text counted 0 (an unspaced run was one 'word');
    reviews sharing only a form's 14-word preamble counted 100 % in val and test."""
    chinese = "我爱北京天安门广场今天天气很好我们去公园散步"
    assert nd.passage_shares([chinese], {"val": [chinese], "test": ["完全不同的句子没有重复的部分"]}) == \
        {"words": 12, "val": 1.0, "test": 0.0}
    preamble = "thank you for your order please rate the product from one to five stars below "
    train = [preamble + f"review {i} " + " ".join(f"w{i}x{j}" for j in range(15)) for i in range(50)]
    val = [preamble + f"other {i} " + " ".join(f"v{i}x{j}" for j in range(15)) for i in range(10)]
    val[0] = train[7]  # one real copy
    assert nd.passage_shares(train, {"val": val})["val"] == 0.1
