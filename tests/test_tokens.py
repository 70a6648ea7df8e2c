"""Token classification: reading, tag schemes, word↔subword alignment, windows, metrics, training end to end.

The metric tests compare against sklearn / seqeval on the same tags, and one test exists only to fail if an
`*_ignoring` metric starts counting the `O` tag (the classic way an NER score looks 0.95 for a model that finds
no entity).
"""
import json
import logging

import numpy as np
import pytest
import torch

from tiny import NEUTRAL, run_config
from unfreeze.config.schema import DataConfig
from unfreeze.config.load import parse_run_config
from unfreeze.errors import DataError
from unfreeze.metrics.tagging import tag_metrics
from unfreeze.data.token_files import read_conll, read_token_jsonl
from unfreeze.data.tokens import TokenSplit, TokenTaskData, load_token_data
from unfreeze.data.tag_schemes import detect_scheme, validate
from unfreeze.data.windows import build_windows, encode_token_splits, plan_windows, special_template, word_pieces, words_from_logits
from unfreeze.tasks.token import fbeta_of
from unfreeze.study.baselines import most_frequent_tag_baseline

ENTITY_TYPES = {"paris": "LOC", "london": "LOC", "alice": "PER", "bob": "PER", "google": "ORG", "acme": "ORG"}


def tagged_sentences(n, seed=0):
    """Neutral filler with one or two entity words tagged B-<type>: trivially learnable from the word alone."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = [str(w) for w in rng.choice(NEUTRAL, size=int(rng.integers(3, 9)))]
        tags = ["O"] * len(words)
        for _ in range(int(rng.integers(1, 3))):
            entity = str(rng.choice(list(ENTITY_TYPES)))
            at = int(rng.integers(0, len(words) + 1))
            words.insert(at, entity)
            tags.insert(at, f"B-{ENTITY_TYPES[entity]}")
        words.append(str(i))  # unique per sentence: no duplicates removed by accident
        tags.append("O")
        out.append((words, tags))
    return out


def write_conll(path, sentences, sep="\t", docstart=False):
    lines = ["-DOCSTART- -X- O O", ""] if docstart else []
    for words, tags in sentences:
        lines += [f"{w}{sep}{t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path, sentences):
    path.write_text("".join(json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in sentences), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models["bert"])


# ---------------------------------------------------------------------------------------------------------
# Reading


def test_conll_reading_docstart_columns_and_whitespace_lines(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n \t\nPeter NNP B-NP B-PER\n"
                    "\n-DOCSTART- -X- -X- O\nBlackburn NNP B-NP B-LOC\n", encoding="utf-8")
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter"], ["Blackburn"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"], ["B-LOC"]]
    assert sentences[0].where.endswith("d.conll:3")
    chunks = read_conll(path, tag_column=2)
    assert chunks[0].tags == ["B-NP", "B-VP"]


def test_tab_columns_keep_unusual_whitespace_inside_the_token(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("a\u00a0b\tO\n\u200b\tO\nalice\tB-PER\n", encoding="utf-8")
    (s,) = read_conll(path)
    assert s.words == ["a\u00a0b", "\u200b", "alice"]


@pytest.mark.parametrize("text, match", [
    ("alice B-PER\nbob\n", r"d\.conll:2: expected `token<TAB>tag`.*'bob'"),
    ("alice B-PER\n", r"d\.conll:1: no tag column 5"),
])
def test_bad_conll_names_file_line_and_value(tmp_path, text, match):
    path = tmp_path / "d.conll"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_token_data(DataConfig(path=str(path), conll_tag_column=5 if "5" in match else -1))


def test_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "d.conll"
    path.write_bytes(b"caf\xe9 O\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_token_data(DataConfig(path=str(path)))


def test_jsonl_reading_and_bad_rows(tmp_path):
    sentences = tagged_sentences(40)
    data = load_token_data(DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl", sentences)), ignore_labels=["O"]))
    assert len(data.train) + len(data.val) + len(data.test) == 40
    assert data.label_names[0] == "O" and data.label_names == sorted(data.label_names, key=lambda t: (t != "O", t))
    odd = tmp_path / "odd.jsonl"  # a raw U+2028 inside a token is not a line break in JSONL
    odd.write_text(json.dumps({"tokens": ["a\u2028b", "alice"], "tags": ["O", "B-PER"]}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    assert [s.words for s in read_token_jsonl(odd)] == [["a\u2028b", "alice"]]
    bad = tmp_path / "bad.jsonl"
    for text, match in [
        ('{"tokens": ["a", "b"], "tags": ["O"]}\n', r"bad\.jsonl:1: 2 tokens but 1 tags"),
        ('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": "a b"', r"bad\.jsonl:2: not valid JSON"),
        ('{"words": ["a"], "tags": ["O"]}\n', r"bad\.jsonl:1: no key 'tokens'; keys are \['tags', 'words'\]"),
        ('{"tokens": ["a", 3], "tags": ["O", "O"]}\n', r"bad\.jsonl:1: 'tokens' must be a list of strings"),
    ]:
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=match):
            load_token_data(DataConfig(path=str(bad)))


def test_empty_sentences_follow_bad_rows(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", tagged_sentences(30) + [([], [])])
    data = load_token_data(DataConfig(path=str(path)))
    assert sum(data.notes["dropped"].values()) == 1
    with pytest.raises(DataError, match=r"1 sentence\(s\) with no tokens or no tags, first at .*d\.jsonl:31"):
        load_token_data(DataConfig(path=str(path), bad_rows="error"))


def test_datasets_folder_with_class_label_sequences(tmp_path):
    import datasets

    names = ["O", "B-LOC", "B-ORG", "B-PER"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})

    def ds(seed, n):
        rows = tagged_sentences(n, seed)
        return datasets.Dataset.from_dict({"tokens": [w for w, _ in rows],
                                           "ner_tags": [[names.index(t) for t in tags] for _, tags in rows]},
                                          features=features)

    datasets.DatasetDict({"train": ds(0, 40), "validation": ds(1, 10), "test": ds(2, 10)}).save_to_disk(tmp_path / "dd")
    data = load_token_data(DataConfig(path=str(tmp_path / "dd"), tags_column="ner_tags"))
    assert data.label_names == ["O", "B-LOC", "B-ORG", "B-PER"]
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 10)
    assert data.notes["scheme"] == "iob2"


def test_duplicates_removed_before_split_and_splits_seeded(tmp_path):
    sentences = tagged_sentences(100)
    path = write_conll(tmp_path / "d.conll", sentences + sentences[:7], sep=" ", docstart=True)
    cfg = DataConfig(path=str(path), split={"val": 0.2, "test": 0.1})
    a, b = load_token_data(cfg), load_token_data(cfg)
    assert sum(a.notes["duplicates_removed"].values()) == 7
    assert a.notes["sentences"] == {"train": 70, "val": 20, "test": 10}
    assert a.test.ids == b.test.ids and a.val.words == b.val.words
    seen = {tuple(w) for w in a.train.words}
    assert not any(tuple(w) in seen for w in a.test.words + a.val.words)
    other = load_token_data(cfg.model_copy(update={"split_seed": 1}))
    assert other.test.ids != a.test.ids
    small = load_token_data(cfg.model_copy(update={"train_size": 25}))
    assert len(small.train) == 25 and set(small.train.ids) <= set(a.train.ids) and small.test.ids == a.test.ids


def test_tag_only_in_test_is_kept_and_named_in_one_warning(tmp_path):
    """Changed with issue #12: an unseen test tag used to be refused; now it is kept (every such word an error)."""
    train = write_conll(tmp_path / "train.conll", [(["alice", "x"], ["B-PER", "O"]), (["y"], ["O"])])
    val = write_conll(tmp_path / "val.conll", [(["bob"], ["B-MISC"])])
    test = write_conll(tmp_path / "test.conll", [(["paris", "z"], ["B-LOC", "O"])])
    with pytest.warns(UserWarning) as caught:
        data = load_token_data(DataConfig(train=str(train), val=str(val), test=str(test)))
    messages = [str(w.message) for w in caught if "never occur in the training split" in str(w.message)]
    assert len(messages) == 1 and "'B-LOC' (1 words in test)" in messages[0] and "'B-MISC' (1 words in val)" in messages[0]
    assert data.label_names[-2:] == ["B-LOC", "B-MISC"]
    assert data.notes["unseen_labels"] == {"B-LOC": {"test": 1}, "B-MISC": {"val": 1}}
    assert data.test.tags[0][0] == data.label_names.index("B-LOC")


def test_unknown_ignore_label_is_an_error(tmp_path):
    path = write_conll(tmp_path / "d.conll", tagged_sentences(30))
    with pytest.raises(DataError, match=r"ignore_labels: 'OUT' is not a tag"):
        load_token_data(DataConfig(path=str(path), ignore_labels=["OUT"]))


# ---------------------------------------------------------------------------------------------------------
# Tag schemes


def test_scheme_detection():
    assert detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]]) == "iob2"
    assert detect_scheme([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]) == "iob1"
    assert detect_scheme([["B-PER", "E-PER", "O", "S-LOC"]]) == "iobes"  # was "bioes": now an alias of iobes
    assert detect_scheme([["PER", "O", "LOC"]]) == "plain"
    assert detect_scheme([["NN", "VB"]]) == "plain"


def test_scheme_violations_are_positions_not_fixes():
    def positions(tags, scheme):
        return sorted(e["position"] for kind in validate([tags], scheme, examples=9)["examples"].values()
                      for e in kind)

    # A stray fragment counts once, at its first token (`O I-PER I-PER` used to count the I-PER run once too).
    assert positions(["O", "I-PER", "I-PER", "B-LOC", "I-PER"], "iob2") == [1, 4]
    assert positions(["I-PER", "B-PER", "O", "B-LOC"], "iob1") == [3]
    # IOBES: the unclosed B-PER is reported where it breaks (at the O, position 1), the stray I-LOC E-LOC once
    # (at 2), and the B-X left open at the sentence end (6) — the same positions as before.
    assert positions(["B-PER", "O", "I-LOC", "E-LOC", "S-X", "B-X"], "bioes") == [1, 2, 6]


def test_iob2_violations_counted_logged_and_kept(tmp_path, caplog):
    good = tagged_sentences(30)
    broken = [(["x", "alice", "bob"], ["O", "I-PER", "I-PER"]), (["y", "paris"], ["O", "B-LOC"])]
    train = write_conll(tmp_path / "train.conll", good + broken + [(["z", "acme"], ["O", "I-ORG"])])
    val = write_conll(tmp_path / "val.conll", tagged_sentences(5, seed=9))
    with caplog.at_level(logging.WARNING, logger="unfreeze.data.tokens"):
        data = load_token_data(DataConfig(train=str(train), val=str(val), split={"test": 0.0}))
    assert data.notes["scheme"] == "iob2"
    assert data.notes["scheme_violations"] == {"train": 2, "val": 0, "test": 0}
    assert "2 tag(s) break IOB2" in caplog.text and "train.conll:" in caplog.text
    train_tags = [[data.label_names[t] for t in s] for s in data.train.tags]
    assert ["O", "I-PER", "I-PER"] in train_tags  # kept as given, not rewritten to B-PER


def test_declared_scheme_rejects_foreign_tags(tmp_path):
    path = write_conll(tmp_path / "d.conll", tagged_sentences(20) + [(["alice", "q"], ["S-PER", "O"])])
    with pytest.raises(DataError, match=r"tag 'S-PER' does not fit data.tag_scheme=iob2"):
        load_token_data(DataConfig(path=str(path), tag_scheme="iob2"))


# ---------------------------------------------------------------------------------------------------------
# Alignment and windows


def test_first_subword_and_all_subword_alignment(tokenizer):
    words = ["alice", "zork", "\u200b", "paris"]
    pieces = word_pieces(tokenizer, [words])[0]
    assert [len(p) for p in pieces] == [1, 4, 0, 1]  # z ##o ##r ##k; zero-width space: no subword at all
    template = special_template(tokenizer)
    assert tokenizer.convert_ids_to_tokens(template[0] + template[1]) == ["[CLS]", "[SEP]"]
    tags = [[1, 0, 0, 2]]
    first = build_windows([pieces], tags, template, 32, 8, False, False, fallback=0)
    assert tokenizer.convert_ids_to_tokens(first.input_ids[0]) == ["[CLS]", "alice", "z", "##o", "##r", "##k", "paris",
                                                                   "[SEP]"]
    assert first.labels[0] == [-100, 1, 0, -100, -100, -100, 2, -100]
    assert first.word_ids[0] == [-1, 0, 1, 1, 1, 1, 3, -1]
    assert first.dropped_words == 1 and first.owners[0][2].tolist() == [-1, -1]
    every = build_windows([pieces], tags, template, 32, 8, False, True, fallback=0)
    assert every.labels[0] == [-100, 1, 0, 0, 0, 0, 2, -100]
    logits = np.full((8, 3), -5.0)
    logits[np.arange(8), [0, 1, 0, 2, 2, 2, 2, 0]] = 5.0  # word 1 predicted from its first piece only
    assert words_from_logits(first, [logits])[0].tolist() == [1, 0, 0, 2]  # dropped word: fallback 0


def test_plan_windows_overlap_and_progress():
    assert plan_windows([1, 1, 1], 5, 2, False) == [(0, 3)]
    assert plan_windows([2, 2, 2, 2, 2], 5, 2, False) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert plan_windows([1] * 10, 4, 0, False) == [(0, 4), (4, 8), (8, 10)]
    assert plan_windows([1] * 10, 4, 2, True) == [(0, 4)]
    assert plan_windows([9, 1], 4, 2, False) == [(0, 1), (1, 2)]  # one word longer than a window gets its own


@pytest.mark.parametrize("max_length, stride, label_all", [(6, 2, False), (9, 3, True), (12, 0, False), (7, 50, True)])
def test_windows_round_trip_every_word_once(tokenizer, max_length, stride, label_all):
    rng = np.random.default_rng(max_length)
    vocab = NEUTRAL + ["zork", "qwxyz", "\u200b", "paris", "alice"]
    sentences = [[str(w) for w in rng.choice(vocab, size=int(rng.integers(1, 40)))] for _ in range(30)]
    tags = [[int(t) for t in rng.integers(0, 4, len(s))] for s in sentences]
    pieces = word_pieces(tokenizer, sentences)
    enc = build_windows(pieces, tags, special_template(tokenizer), max_length, stride, False, label_all, fallback=0)
    assert max(enc.lengths) <= max_length and enc.windowed_sentences > 0
    for i, owners in enumerate(enc.owners):
        has_piece = np.array([len(p) > 0 for p in pieces[i]])
        assert ((owners[:, 0] >= 0) == has_piece).all()
        for w in np.flatnonzero(has_piece):  # owner position holds the word's first piece and its label
            k, pos = owners[w]
            assert enc.sentence_index[k] == i and enc.word_ids[k][pos] == w and enc.labels[k][pos] == tags[i][w]
            assert pos == 1 or enc.word_ids[k][pos - 1] != w
    # each word with a subword is labelled at its first piece in exactly one window
    first_labels = sum(1 for k, row in enumerate(enc.word_ids) for p, w in enumerate(row)
                       if w >= 0 and enc.labels[k][p] != -100 and row[p - 1] != w)
    assert first_labels == sum(len(p) > 0 for s in pieces for p in s)
    # oracle logits (gold at every position) stitch back to gold; dropped words get the fallback
    logits = []
    for k, row in enumerate(enc.word_ids):
        out = np.zeros((len(row), 4))
        for p, w in enumerate(row):
            if w >= 0:
                out[p, tags[enc.sentence_index[k]][w]] = 1.0
        logits.append(out)
    for i, pred in enumerate(words_from_logits(enc, logits)):
        expected = [t if len(p) else 0 for t, p in zip(tags[i], pieces[i])]
        assert pred.tolist() == expected


def test_owner_is_the_most_central_window(tokenizer):
    # 10 one-piece words, capacity 4, overlap 2: windows (0,4) (2,6) (4,8) (6,10)
    enc = build_windows([[[7]] * 10], [[0] * 10], ([2], [3]), 6, 2, False, False, fallback=0)
    assert enc.sentence_index.tolist() == [0, 0, 0, 0]
    owner = enc.owners[0][:, 0].tolist()
    assert owner[:2] == [0, 0] and owner[-2:] == [3, 3]  # sentence edges: the window that holds the edge
    assert owner[3] == 1 and owner[5] == 2  # inside: the window with context on both sides


def test_truncate_counts_cut_words_and_gives_them_the_fallback(tokenizer):
    data = TokenTaskData(*(TokenSplit(["0"], [["alice"] + ["the"] * 20], [[1] + [0] * 20]) for _ in range(3)),
                         label_names=["O", "B-PER"], notes={"fallback_tag": "O"})
    encoded, max_length, stats = encode_token_splits(tokenizer, data, DataConfig(path="x", max_length=8,
                                                                                   truncate=True), 128)
    assert max_length == 8 and stats["truncated_words"]["train"] == 15 and len(encoded["train"]) == 1
    encoded, _, stats = encode_token_splits(tokenizer, data, DataConfig(path="x", max_length=8), 128)
    assert stats["truncated_words"]["train"] == 0 and len(encoded["train"]) > 1


def test_auto_max_length_uses_subword_lengths(tokenizer):
    split = TokenSplit([str(i) for i in range(20)], [["zork"] * (i + 1) for i in range(20)], [[0] * (i + 1)
                                                                                           for i in range(20)])
    data = TokenTaskData(split, split, split, ["O", "B-X"], {"fallback_tag": "O"})
    _, max_length, stats = encode_token_splits(tokenizer, data, DataConfig(path="x", max_length_percentile=50), 128)
    assert stats["p50"] == int(np.percentile([4 * (i + 1) + 2 for i in range(20)], 50))
    assert max_length % 8 == 0 and max_length >= stats["p50"]


# ---------------------------------------------------------------------------------------------------------
# Metrics


NAMES = ["O", "B-LOC", "B-PER", "I-PER"]
GOLD = [[0, 0, 2, 3, 0, 1], [1, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0]]
PRED = [[0, 0, 2, 0, 0, 1], [0, 0, 0, 1], [0, 2, 3, 0, 0, 0, 0]]


def test_metrics_equal_sklearn_and_seqeval():
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from sklearn.metrics import f1_score as sk_f1
    from sklearn.metrics import fbeta_score, precision_score as sk_p

    m = tag_metrics(GOLD, PRED, NAMES, ["O"], "iob2", beta=2.0, loss=0.5)
    g = [[NAMES[t] for t in s] for s in GOLD]
    p = [[NAMES[t] for t in s] for s in PRED]
    yt, yp = np.concatenate(GOLD), np.concatenate(PRED)
    assert m["entity_f1_micro"] == pytest.approx(f1_score(g, p))
    assert m["entity_precision_micro"] == pytest.approx(precision_score(g, p))
    assert m["entity_recall_micro"] == pytest.approx(recall_score(g, p))
    assert m["entity_f1_macro"] == pytest.approx(f1_score(g, p, average="macro"))
    assert m["per_entity_type"]["PER"]["support"] == classification_report(g, p, output_dict=True)["PER"]["support"]
    assert m["accuracy"] == pytest.approx((yt == yp).mean())
    assert m["f1_macro"] == pytest.approx(sk_f1(yt, yp, labels=[0, 1, 2, 3], average="macro", zero_division=0))
    assert m["f1_macro_ignoring"] == pytest.approx(sk_f1(yt, yp, labels=[1, 2, 3], average="macro", zero_division=0))
    assert m["f1_micro_ignoring"] == pytest.approx(sk_f1(yt, yp, labels=[1, 2, 3], average="micro", zero_division=0))
    assert m["precision_macro_ignoring"] == pytest.approx(sk_p(yt, yp, labels=[1, 2, 3], average="macro",
                                                               zero_division=0))
    assert m["fbeta_macro_ignoring"] == pytest.approx(fbeta_score(yt, yp, beta=2.0, labels=[1, 2, 3],
                                                                  average="macro", zero_division=0))
    assert m["confusion_matrix_ignoring"] == np.array(m["confusion_matrix"])[1:, 1:].tolist()
    assert m["labels_ignoring"] == NAMES[1:] and m["loss"] == 0.5
    assert m["counts"]["gold_entities"] == 4 and m["counts"]["pred_entities"] == 4


def test_no_ignoring_metric_counts_the_O_tag():
    """A model that predicts `O` everywhere must score 0 on every metric that claims to ignore `O` — and the
    all-label metrics, which do count `O`, must not be 0 (else this test could not tell them apart)."""
    all_o = [[0] * len(s) for s in GOLD]
    m = tag_metrics(GOLD, all_o, NAMES, ["O"], "iob2")
    ignoring = [k for k in m if "ignoring" in k and isinstance(m[k], float)] + [k for k in m if k.startswith("entity_")
                                                                                and isinstance(m[k], float)]
    assert len(ignoring) >= 12
    assert all(m[k] == 0.0 for k in ignoring), {k: m[k] for k in ignoring if m[k]}
    assert m["accuracy"] > 0.6 and m["f1_micro"] > 0.6 and m["f1_macro"] > 0.1
    assert "O" not in m["per_entity_type"] and m["labels_ignoring"] == ["B-LOC", "B-PER", "I-PER"]


def test_entity_metrics_follow_the_scheme():
    bioes = ["O", "S-LOC", "B-PER", "E-PER"]
    m = tag_metrics([[2, 3, 0, 1]], [[2, 3, 0, 0]], bioes, ["O"], "bioes")
    assert m["entity_recall_micro"] == 0.5 and m["entity_precision_micro"] == 1.0
    # A BMES prediction that never closes PER is no entity in the strict reading (M- continues, E- closes).
    bmes = ["O", "S-LOC", "B-PER", "M-PER", "E-PER"]
    m = tag_metrics([[2, 3, 4, 1]], [[2, 3, 3, 1]], bmes, ["O"], "bmes")
    assert m["counts"]["gold_entities"] == 2 and m["counts"]["pred_entities"] == 1
    assert m["entity_precision_micro"] == 1.0 and m["entity_recall_micro"] == 0.5
    # Plain tags define no entities: no entity_* figures at all (this used to read IO runs as entities).
    plain = ["O", "LOC", "PER"]
    m = tag_metrics([[2, 2, 0, 1]], [[2, 2, 0, 2]], plain, ["O"], "plain")
    assert "entity_f1_micro" not in m and "gold_entities" not in m["counts"]


def test_fbeta_read_from_config_with_default():
    cfg = parse_run_config(run_config("m", "d.conll", task="token"))
    assert fbeta_of(cfg) == 1.0
    assert fbeta_of(type("C", (), {"data": type("D", (), {"fbeta": 2.0})(), "train": None})()) == 2.0


def test_class_weights_change_the_token_loss():
    from unfreeze.training.loss import loss_fn

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[-100, 0, 1, 0, -100], [-100, 2, 0, -100, -100]])
    plain = loss_fn(logits, labels, None)
    weight = torch.tensor([0.1, 1.0, 3.0])
    weighted = loss_fn(logits, labels, weight)
    assert not torch.isclose(plain, weighted)
    mask = labels.reshape(-1) != -100
    lp = torch.log_softmax(logits.reshape(-1, 3), -1)[mask]
    y = labels.reshape(-1)[mask]
    w = weight[y]
    assert torch.isclose(weighted, -(w * lp[torch.arange(len(y)), y]).sum() / w.sum())


def test_most_frequent_tag_baseline():
    pred = most_frequent_tag_baseline([["Paris", "is", "paris", "x", "is"], ["Paris", "x", "is"]],
                                      [[1, 0, 0, 2, 0], [1, 1, 0]],
                                      [["paris", "PARIS", "is", "x", "unseen"]])
    # exact form ("paris" once as 0); else lower-cased (paris: 1 twice, 0 once); ties to the lower index; else
    # the most frequent tag overall
    assert pred == [[0, 1, 0, 1, 0]]


def test_baseline_row_uses_the_run_metrics(tmp_path):
    from unfreeze.study.baselines import most_frequent_tag_results
    from unfreeze.tasks.token import write_tag_predictions

    path = write_conll(tmp_path / "d.conll", tagged_sentences(120))
    cfg = parse_run_config(run_config("m", path, task="token", data__ignore_labels=["O"]))
    data = load_token_data(cfg.data)
    result, preds = most_frequent_tag_results(cfg, data)
    assert result["method"] == "most_frequent_tag" and result["test"]["entity_f1_micro"] == 1.0  # memorisable
    assert result["test"]["settings"]["ignore_labels"] == ["O"]
    write_tag_predictions(tmp_path / "p.jsonl", data.test, data.label_names, preds["test"])
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == len(data.test) and all(r["tags"] == r["pred"] for r in rows)


# ---------------------------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def token_conll(tmp_path_factory):
    return write_conll(tmp_path_factory.mktemp("tok") / "ner.conll", tagged_sentences(240, seed=1))


def token_run(model_dir, path, **kw):
    kw = {"train__epochs": 4, **kw}
    return parse_run_config(run_config(model_dir, path, task="token", data__ignore_labels=["O"], data__max_length=10,
                                       data__stride=4, **kw))


def test_tiny_model_learns_tagging_end_to_end(tmp_path, tiny_bert, token_conll):
    from unfreeze.model.checkpoint import load_model
    from unfreeze.model.predict_tokens import predict_token_file
    from unfreeze.training.run import train

    cfg = token_run(tiny_bert, token_conll)
    assert cfg.selection_metric == "entity_f1_micro"
    result = train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for split in ("val", "test"):
        assert {"entity_f1_micro", "f1_macro_ignoring", "accuracy", "per_class", "confusion_matrix"} <= set(saved[split])
    assert result["test"]["entity_f1_micro"] > 0.9 and result["test"]["f1_macro_ignoring"] > 0.9
    assert result["token_lengths"]["windowed_sentences"]["train"] > 0  # max_length 10 forces windows
    lines = (tmp_path / "run" / "predictions_test.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    assert set(row) == {"id", "words", "tags", "pred"} and len(row["pred"]) == len(row["words"])
    # predict: a CoNLL file without tags, one tag per input word, windowed like training
    model, tok, meta = load_model(tmp_path / "run" / "best")
    src = tmp_path / "in.conll"
    src.write_text("alice\nlives\nin\n\u200b\nparis\n\n" + "\n".join(["the"] * 30 + ["london"]) + "\n")
    frame = predict_token_file(model, tok, meta, src, tmp_path / "out.conll")
    assert frame["pred"][0] == ["B-PER", "O", "O", "O", "B-LOC"] and frame["pred"][1][-1] == "B-LOC"
    out = (tmp_path / "out.conll").read_text().split("\n\n")
    assert out[0].splitlines()[0] == "alice\tB-PER" and len(out[1].strip().splitlines()) == 31


def test_tiny_model_learns_with_activation_cache(tmp_path, tiny_bert, token_conll):
    from unfreeze.training.run import train

    cfg = token_run(tiny_bert, token_conll, freeze={"top_k": 1}, train__epochs=6, optim={"lr": 1e-2})
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["cache"]["used"] and result["cache"]["from_layer"] == 1
    assert result["test"]["entity_f1_micro"] > 0.8 and "f1_macro_ignoring" in result["val"]


@pytest.mark.assets
def test_wnut16_loads_offline_and_every_word_is_predicted(tiny_models):
    from transformers import AutoTokenizer

    data = load_token_data(DataConfig(dataset="wnut16", ignore_labels=["O"]))
    assert data.notes["scheme"] == "iob2" and data.label_names[0] == "O" and len(data.label_names) == 21
    assert sum(data.notes["duplicates_removed"].values()) > 0 and sum(data.notes["sentences"].values()) > 2000
    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])  # letters-only vocab: many pieces, many windows
    encoded, _, stats = encode_token_splits(tok, data, DataConfig(dataset="wnut16", max_length=64), 128)
    assert stats["windowed_sentences"]["train"] > 0
    enc = encoded["test"]
    assert len(enc.owners) == len(data.test) and all(len(o) == len(w) for o, w in zip(enc.owners, data.test.words))
