"""The TF-IDF baseline: chosen on val, metrics equal sklearn on its own predictions."""
import numpy as np
import pytest
from sklearn.metrics import f1_score

from tiny import synthetic_frame
from unfreeze.study.baselines import tfidf_logreg


def test_tfidf_baseline_beats_chance_and_reports_sklearn_metrics():
    train, val, test = synthetic_frame(200, 0), synthetic_frame(60, 1), synthetic_frame(60, 2)
    names = ["neg", "pos"]
    enc = lambda f: np.array([names.index(x) for x in f["label"]])  # noqa: E731
    result = tfidf_logreg(train["text"], enc(train), val["text"], enc(val), test["text"], enc(test), names)
    assert result["test"]["accuracy"] > 0.8
    assert result["test"]["f1_macro"] == pytest.approx(f1_score(enc(test), result["test_pred"], average="macro"))
    assert "chosen on val" in result["method"]


def test_cjk_text_gets_character_tfidf_and_pairs_get_both_texts():
    """Chinese has no spaces: the word analyser would see each clause as one feature. `auto` detects the script;
    a text pair gets one TF-IDF per text (the second text used to be ignored)."""
    from unfreeze.data.script import cjk_share, is_cjk, tfidf_options

    assert tfidf_options(["质量很好，物流很快"]) == {"analyzer": "char_wb", "ngram_range": (1, 2)}
    assert tfidf_options(["good quality, fast delivery"])["analyzer"] == "word"
    assert tfidf_options(["good quality"], "char")["analyzer"] == "char_wb"
    assert tfidf_options(["质量很好"], "word")["analyzer"] == "word"
    assert cjk_share(["联想 ThinkPad 400！"]) == pytest.approx(2 / 10)  # letters only: 2 Han of 10
    assert is_cjk(["이 호텔은 정말 좋았어요"]) and not is_cjk(["I visited 北京 last year and loved it"])

    rng = np.random.default_rng(0)
    good, bad = list("好棒赞优美"), list("差烂坏糟慢")
    texts, labels = [], []
    filler = list("这个东西真的是我们他们买了一次")
    for i in range(240):  # the label is carried by one character inside an unbroken (unique) Han run
        label = i % 2
        noise = "".join(rng.choice(filler, 6))
        texts.append(noise[:3] + str(rng.choice(good if label else bad)) + noise[3:])
        labels.append(label)
    labels = np.array(labels)
    parts = [(texts[a:b], labels[a:b]) for a, b in ((0, 160), (160, 200), (200, 240))]
    args = [x for part in parts for x in part] + [["neg", "pos"]]
    chars = tfidf_logreg(*args)
    words = tfidf_logreg(*args, analyzer="word")
    assert chars["tfidf"]["analyzer"] == "char_wb" and chars["test"]["f1_macro"] > 0.95
    assert words["test"]["f1_macro"] < 0.7  # each text is a single 7-character "word", unseen in training

    # Pairs: the label is carried by the second text only (an answer to the first); it used to be ignored.
    first = [f"question about item{i % 7}" for i in range(240)]
    second = [f"answer {'yes' if i % 2 else 'no'} item{i % 5}" for i in range(240)]
    label = np.array([i % 2 for i in range(240)])
    pair_args = [first[:160], label[:160], first[160:200], label[160:200], first[200:], label[200:], ["no", "yes"]]
    alone = tfidf_logreg(*pair_args)
    both = tfidf_logreg(*pair_args, pairs=(second[:160], second[160:200], second[200:]))
    assert both["tfidf"]["texts"] == 2 and "both texts" in both["method"]
    assert alone["test"]["f1_macro"] < 0.7 and both["test"]["f1_macro"] == 1.0
