"""`model.tokenizer: train`: the BiLSTM's WordPiece vocabulary is counted on the training split only (a val-only
word or character is [UNK]), is the same for the same data (in any order), keeps every CJK character a single
token, survives best/ → `unfreeze predict` / `load_model` exactly, and serves token tasks too."""
import random

import pandas as pd
import pytest
from typer.testing import CliRunner

from tiny import run_config, run_parts, write_entity_conll
from unfreeze.cli import app
from unfreeze.config.schema import ModelConfig, RunConfig
from unfreeze.errors import UnfreezeError
from unfreeze.model.backbone import load_backbone
from unfreeze.model.vocab import SPECIALS, build_vocab, train_tokenizer
from unfreeze.training.run import train

runner = CliRunner()
POSITIVE, NEGATIVE, FILLER = "好喜欢棒", "差失望烂", "这本书酒店手机东西质量服务我们觉得非常"


def lstm_model(**extra) -> dict:
    return {"name": "bilstm", "tokenizer": "train", "embedding_dim": 16, "lstm_hidden": 16, **extra}


def chinese_frame(n: int, seed: int, extra: str = "") -> pd.DataFrame:
    """Chinese reviews whose label is carried by one cue character among filler characters."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        chars = [rng.choice(FILLER) for _ in range(rng.randint(4, 10))]
        chars.insert(rng.randint(0, len(chars)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append({"text": "".join(chars) + extra + f" r{i}", "label": "pos" if label else "neg"})
    return pd.DataFrame(rows)


def test_cjk_characters_are_single_tokens_and_ranking_is_by_count_then_text():
    texts = ["我喜欢这本书 great book", "我不喜欢 great", "书很好 Books"]
    vocab = build_vocab(texts, vocab_size=100, min_count=2)
    assert vocab[:len(SPECIALS)] == list(SPECIALS) and vocab.index("[PAD]") == 0
    counts = {"我": 2, "喜": 2, "欢": 2, "书": 2, "great": 2, "g": 2, "##r": 2, "##e": 2, "##a": 2, "##t": 2,
              "b": 2, "##o": 4, "##k": 2}  # counted by hand: 'books' is lower-cased
    assert vocab[len(SPECIALS):] == sorted(counts, key=lambda p: (-counts[p], p))
    tok = train_tokenizer(texts, vocab_size=100, min_count=2)
    assert tok.tokenize("我喜欢书") == ["我", "喜", "欢", "书"]
    assert tok.tokenize("书很") == ["书", "[UNK]"]  # 很 was seen once (< min_count)
    assert tok.tokenize("GREAT bok") == ["great", "b", "##o", "##k"]  # a rare word falls back to characters
    assert len(build_vocab(texts, vocab_size=8, min_count=1)) == 8


def test_vocabulary_comes_from_the_training_split_only_and_is_deterministic(tmp_path):
    chinese_frame(60, 0).to_csv(tmp_path / "train.csv", index=False)
    chinese_frame(20, 1, extra=" 龘龘 zebra zebra").to_csv(tmp_path / "val.csv", index=False)
    chinese_frame(20, 2).to_csv(tmp_path / "test.csv", index=False)
    data = {"train": str(tmp_path / "train.csv"), "val": str(tmp_path / "val.csv"),
            "test": str(tmp_path / "test.csv")}
    cfg = RunConfig.model_validate(run_config("bilstm", tmp_path, data=data, model=lstm_model()))
    run = run_parts(cfg)
    vocab = run.tokenizer.get_vocab()
    assert "zebra" not in vocab and "龘" not in vocab and "z" not in vocab
    assert run.tokenizer.tokenize("龘 zebra") == ["[UNK]", "[UNK]"]
    assert all(c in vocab for c in FILLER + POSITIVE + NEGATIVE)
    assert run.model.backbone.config.vocab_size == len(run.tokenizer)
    # same data → same vocabulary, whatever the order of the texts
    again = run_parts(cfg).tokenizer.get_vocab()
    shuffled = train_tokenizer(list(reversed(run.data.train.texts))).get_vocab()
    assert vocab == again == shuffled
    # a transformer config ignores the training split; a bilstm without it names the fix
    with pytest.raises(UnfreezeError, match="model.tokenizer: train builds the vocabulary from the training"):
        load_backbone(ModelConfig(**lstm_model()))


def test_save_load_predict_round_trip_on_chinese_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    chinese_frame(240, 0).to_csv(path, index=False)
    cfg = RunConfig.model_validate(run_config("bilstm", path, model=lstm_model(vocab_size=40),
                                              optim={"name": "adamw", "lr": 3e-2},
                                              train={"epochs": 8, "threads": 1}))
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["test"]["f1_macro"] > 0.8, result["test"]  # it learns the cue characters
    from unfreeze.model.checkpoint import load_model

    _, tokenizer, _ = load_model(tmp_path / "run" / "best")
    assert len(tokenizer) <= 40 and tokenizer.tokenize("好差") == ["好", "差"]
    result = runner.invoke(app, ["predict", str(tmp_path / "run" / "best"),
                                 str(tmp_path / "run" / "predictions_test.csv"), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    got, expected = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    assert got["pred"].tolist() == expected["pred"].tolist()
    assert (got["prob_pos"] - expected["prob_pos"]).abs().max() < 1e-5


def test_token_task_counts_words_and_reloads(tmp_path):
    from unfreeze.model.checkpoint import load_model
    from unfreeze.model.predict_tokens import predict_token_file

    write_entity_conll(tmp_path / "d.conll", {"北京": "B-LOC", "上海": "B-LOC", "小明": "B-PER", "alice": "B-PER"},
                       ["我", "在", "和", "the", "去了", "住"], max_words=7)
    cfg = RunConfig.model_validate(run_config(
        "bilstm", tmp_path / "d.conll", task="token", model=lstm_model(embedding_dim=32, lstm_hidden=32),
        data={"path": str(tmp_path / "d.conll"), "ignore_labels": ["O"]},
        optim={"name": "adam", "lr": 2e-2}, train={"epochs": 10, "batch_size": 16, "threads": 1}))
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["test"]["entity_f1_micro"] > 0.8, result["test"]["entity_f1_micro"]
    model, tok, meta = load_model(tmp_path / "run" / "best")
    assert tok.tokenize("北京") == ["北", "京"] and "alice" in tok.get_vocab()
    (tmp_path / "in.conll").write_text("小明\n住\n上海\n\n", encoding="utf-8")
    frame = predict_token_file(model, tok, meta, tmp_path / "in.conll", tmp_path / "out.conll")
    assert frame["pred"][0] == ["B-PER", "O", "B-LOC"]


def test_chinese_example_has_a_bilstm_arm_and_ends_on_the_full_training_split():
    from pathlib import Path

    from unfreeze.config.load import load_study_config
    from unfreeze.study.grid import expand

    runs = expand(load_study_config(Path(__file__).resolve().parents[1] / "examples" / "chinese_reviews.yaml"))
    lstm = [r for r in runs if r.config.model.name == "bilstm"]
    assert lstm and {r.config.model.tokenizer for r in lstm} == {"train"}  # its own vocabulary from the data
    assert all(r.config.freeze.strategy == "all" and r.config.optim.lr >= 1e-3 and r.config.train.threads == 1
               for r in lstm)
    assert {r.config.freeze.strategy for r in runs if r.config.model.name == "minilm"} == {"head", "top_k"}
    sizes = {r.config.data.train_size for r in runs}
    assert None in sizes and "train_size=full" in {r.arm.split(" · ")[-1] for r in runs}
    # the study's baseline takes the largest data config: null (the full split) wins
    assert max((r.config for r in runs), key=lambda c: c.data.train_size or float("inf")).data.train_size is None
