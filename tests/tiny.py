"""Tiny random encoders and trivially separable data, built in-process (no downloads)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

POSITIVE = ["good", "great", "fine", "happy", "love", "nice", "superb", "wonderful"]
NEGATIVE = ["bad", "awful", "poor", "sad", "hate", "boring", "terrible", "worse"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "was", "is", "this", "it", "and", "very", "quite", "story"]
ENTITIES = ["paris", "london", "alice", "bob", "google", "acme"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
VOCAB = SPECIAL + POSITIVE + NEGATIVE + NEUTRAL + ENTITIES + LETTERS + [f"##{c}" for c in LETTERS] + [".", ",", "!"]

ARCHITECTURES = ("bert", "distilbert", "roberta", "electra", "deberta-v2")
#: every encoder family the activation cache claims, incl. DeBERTa-v2 with its layer-0 convolution
CACHE_FAMILIES = ARCHITECTURES + ("xlm-roberta", "mpnet", "deberta-v2-conv")


def tiny_config(arch: str, layers: int = 2):
    from transformers import (AlbertConfig, BertConfig, DebertaV2Config, DistilBertConfig, ElectraConfig,
                              MPNetConfig, RobertaConfig, XLMRobertaConfig)

    common = dict(vocab_size=len(VOCAB), max_position_embeddings=128, pad_token_id=0)
    if arch == "xlm-roberta":
        return XLMRobertaConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                intermediate_size=64, type_vocab_size=1, **common)
    if arch == "mpnet":
        return MPNetConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                           **common)
    if arch == "deberta-v2-conv":
        config = tiny_config("deberta-v2", layers)
        config.conv_kernel_size, config.conv_act = 3, "gelu"
        return config
    if arch == "albert":  # one layer group shared by every depth
        return AlbertConfig(embedding_size=16, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                            intermediate_size=64, **common)
    if arch == "bert":
        return BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                          **common)
    if arch == "distilbert":
        return DistilBertConfig(dim=32, n_layers=layers, n_heads=2, hidden_dim=64, **common)
    if arch == "roberta":
        return RobertaConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                             type_vocab_size=1, **common)
    if arch == "electra":
        return ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                             intermediate_size=64, **common)
    if arch == "deberta-v2":
        return DebertaV2Config(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                               relative_attention=True, position_buckets=16, max_relative_positions=32,
                               pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
                               type_vocab_size=0, **common)
    raise ValueError(arch)


def make_tiny_model(arch: str, folder: Path, seed: int = 0, layers: int = 2) -> str:
    """Write a random tiny model + WordPiece tokenizer to `folder`; return the folder as a string."""
    from transformers import AutoModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True, model_max_length=128)
    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(arch, layers))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


def synthetic_frame(n: int, seed: int = 0, classes: int = 2) -> pd.DataFrame:
    """Texts whose label is given by one cue word among neutral filler: trivially separable."""
    rng = np.random.default_rng(seed)
    cues = [POSITIVE, NEGATIVE, ENTITIES][:classes]
    names = ["pos", "neg", "ent"][:classes]
    rows = []
    for i in range(n):
        c = i % classes
        filler = list(rng.choice(NEUTRAL, size=rng.integers(3, 12)))
        filler.insert(int(rng.integers(0, len(filler))), str(rng.choice(cues[c])))
        rows.append({"text": " ".join(filler) + f" {i}", "label": names[c]})
    return pd.DataFrame(rows)


def run_config(model_dir: str, data_path, **overrides):
    """A small valid RunConfig dict for tests."""
    cfg = {
        "data": {"path": str(data_path)},
        "model": {"name": model_dir},
        "freeze": "all",
        "optim": {"lr": 3e-3},
        "train": {"epochs": 3, "batch_size": 16, "eval_batch_size": 32, "threads": 1},
    }
    for key, value in overrides.items():
        section, _, sub = key.partition("__")
        if sub:
            cfg.setdefault(section, {})[sub] = value
        else:
            cfg[section] = value
    return cfg


def write_entity_conll(path: Path, entities: dict[str, str], filler: list[str], max_words: int,
                       numbered: bool = False, n: int = 160, seed: int = 0) -> Path:
    """A CoNLL file of `n` sentences: 3..`max_words` random `filler` words (tag O) with one entity word (its tag
    from `entities`) inserted at a random place; `numbered` appends the sentence number as a last O token (every
    sentence distinct)."""
    import random

    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(filler) for _ in range(rng.randint(3, max_words))]
        tags = ["O"] * len(words)
        entity = rng.choice(list(entities))
        at = rng.randint(0, len(words))
        words.insert(at, entity)
        tags.insert(at, entities[entity])
        if numbered:
            words, tags = words + [str(i)], tags + ["O"]
        lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_parts(config):
    """The parts of one run (`training.prepare.prepare_parts`: data and model) with its config, in one namespace for
    tests that look at several of them."""
    from types import SimpleNamespace

    from unfreeze.training.prepare import prepare_parts

    data, model = prepare_parts(config)
    return SimpleNamespace(config=config, data=data.data, encoded=data.encoded, label_names=data.label_names,
                           model=model.model, tokenizer=model.tokenizer, plan=model.plan,
                           trainable_params=model.trainable_params, run_data=data, run_model=model)
