"""Behaviour of the BiLSTM baseline encoder (`model.name: bilstm`): the contract unfreeze's head relies on (shapes,
config names, hidden-state convention), padding invariance, exact save/load, determinism, that it learns a
sequence task with a mean-pooling linear head; its wiring into unfreeze (tests/test_bilstm_wiring.py)."""
from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from transformers import BertTokenizerFast

from unfreeze.errors import UnfreezeError
from unfreeze.model.bilstm import (BiLSTMConfig, BiLSTMEncoder, build_bilstm, is_bilstm_folder, load_bilstm,
                                   load_word_embeddings, real_lengths, save_bilstm)

torch.set_num_threads(1)

FILLERS = ["the", "a", "movie", "film", "plot", "was", "is", "very", "quite", "and", "but", "actor", "story",
           "scene", "ending", "music", "really", "it", "this", "that"]
CUES = ["great", "awful"]
ENTITIES = ["paris", "london", "berlin", "obama", "merkel", "google"]  # paris / london / google split into pieces
PIECES = ["par", "##is", "lon", "##don", "goo", "##gle"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A real WordPiece tokenizer from a tiny vocab. Built with `from_pretrained(folder)`: in transformers 5
    `BertTokenizerFast(vocab_file=...)` silently ignores the file and keeps only the 5 special tokens."""
    folder = tmp_path_factory.mktemp("vocab")
    words = SPECIALS + FILLERS + CUES + PIECES + ["berlin", "obama", "merkel"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder))
    assert len(tok) == len(words), "the tiny vocabulary was not loaded"
    return tok


def tiny(seed: int = 0, **overrides) -> BiLSTMEncoder:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=40, embedding_dim=16, hidden_size=24, num_layers=2, dropout=0.1, pad_token_id=0)
    cfg.update(overrides)
    return BiLSTMEncoder(BiLSTMConfig(**cfg))


def right_padded(rows: list[list[int]], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    width = width or max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Same as unfreeze.heads.mean_pool."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


# ---------------------------------------------------------------------------------------------------------
# The contract the head and the probes rely on


def test_shapes_config_names_and_hidden_state_convention():
    model = tiny().eval()
    ids, mask = right_padded([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7]])
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 7, 24)
    assert model.config.hidden_size == 24 and model.config.per_direction == 12
    assert model.config.num_hidden_layers == 2 and model.config.model_type == "bilstm"
    assert model.config.type_vocab_size == 0  # unfreeze's uses_token_types() → False
    # transformers' convention: hidden_states[b] is the input of layer b, the last one is the output
    assert len(out.hidden_states) == 3
    assert out.hidden_states[0].shape == (2, 7, 16)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert out["last_hidden_state"] is out.last_hidden_state and out[0] is out.last_hidden_state
    assert model(ids, mask).hidden_states is None
    assert torch.all(out.last_hidden_state[1, 3:] == 0), "padded positions must be exactly zero"
    assert model.get_input_embeddings() is model.embeddings.word_embeddings


def test_layer_stack_is_discoverable_and_restartable():
    """unfreeze's discovery takes the child owning the input embeddings and the largest ModuleList of identical
    blocks; the activation cache restarts the stack by swapping a layer's first argument. Both must hold."""
    model = tiny(num_layers=3).eval()
    assert isinstance(model.layers, nn.ModuleList) and len({type(b) for b in model.layers}) == 1
    assert any(m is model.get_input_embeddings() for m in model.embeddings.modules())
    ids, mask = right_padded([[5, 6, 7, 8], [9, 10]])
    full = model(ids, mask, output_hidden_states=True)
    lengths = real_lengths(mask)
    rest = full.hidden_states[1]
    for layer in list(model.layers)[1:]:
        rest = layer(rest, lengths)
    assert torch.equal(rest, full.last_hidden_state)


def test_bert_tokenizer_batch_goes_straight_in(tokenizer):
    model = build_bilstm(tokenizer, BiLSTMConfig(embedding_dim=8, hidden_size=8)).eval()
    enc = tokenizer(["the movie was great", "awful"], padding=True, return_tensors="pt")
    out = model(**enc).last_hidden_state
    assert out.shape == (2, enc["input_ids"].shape[1], 8)


# ---------------------------------------------------------------------------------------------------------
# Padding


def test_padding_width_and_pad_content_never_change_real_states():
    model = tiny().eval()
    example = [5, 6, 7, 8, 9, 10]
    alone = model(*right_padded([example]))
    ids, mask = right_padded([example], width=15)
    ids[0, 6:] = torch.randint(1, 40, (9,))  # garbage under the padding must not leak in either direction
    wide = model(ids, mask)
    assert torch.equal(alone.last_hidden_state, wide.last_hidden_state[:, :6])
    # next to longer neighbours the per-step batch differs: equal up to float summation order only
    ids2, mask2 = right_padded([example, list(range(1, 16)), [3, 4]])
    mixed = model(ids2, mask2).last_hidden_state
    torch.testing.assert_close(mixed[0, :6], alone.last_hidden_state[0], rtol=0, atol=1e-6)


def test_padding_leak_would_be_detected():
    """Negative control: the same LSTM run on the padded tensor without packing gives different backward
    states at real positions, so the invariance test above can fail."""
    model = tiny(num_layers=1).eval()
    example = [5, 6, 7, 8, 9, 10]
    ids, mask = right_padded([example], width=15)
    lstm = model.layers[0].lstm
    unpacked, _ = lstm(model.embeddings(ids))
    packed = model(ids, mask).last_hidden_state
    assert not torch.allclose(unpacked[:, :6], packed[:, :6], atol=1e-4)


def test_left_padding_is_refused():
    model = tiny()
    ids = torch.tensor([[0, 0, 5, 6]])
    with pytest.raises(UnfreezeError, match="right-padded"):
        model(ids, torch.tensor([[0, 0, 1, 1]]))


def test_all_padding_row_gives_zero_states():
    model = tiny().eval()
    ids, mask = right_padded([[5, 6, 7], []], width=3)
    out = model(ids, mask).last_hidden_state
    assert torch.all(out[1] == 0)


# ---------------------------------------------------------------------------------------------------------
# Saving, loading, building


def test_save_load_round_trip_is_exact(tmp_path):
    model = tiny().eval()
    save_bilstm(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    assert raw["model_type"] == "bilstm" and raw["hidden_size"] == 24
    assert is_bilstm_folder(tmp_path / "m") and not is_bilstm_folder(tmp_path)
    loaded = load_bilstm(tmp_path / "m").eval()
    assert loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    ids, mask = right_padded([[5, 6, 7, 8], [9, 10]])
    assert torch.equal(model(ids, mask).last_hidden_state, loaded(ids, mask).last_hidden_state)
    # the save_pretrained / from_pretrained spelling unfreeze's save_model calls
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    assert torch.equal(BiLSTMEncoder.from_pretrained(tmp_path / "hf")(ids, mask).last_hidden_state,
                       model(ids, mask).last_hidden_state)


def test_load_refuses_mismatched_or_unknown_config(tmp_path):
    save_bilstm(tiny(), tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "hidden_size": 32}))
    with pytest.raises(UnfreezeError, match="model.safetensors"):
        load_bilstm(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**raw, "hiden_size": 32}))
    with pytest.raises(UnfreezeError, match="unknown key"):
        load_bilstm(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(UnfreezeError, match="config.json"):
        load_bilstm(tmp_path)


@pytest.mark.parametrize("bad", [dict(hidden_size=25), dict(num_layers=0), dict(dropout=1.0),
                                 dict(vocab_size=0), dict(pad_token_id=40)])
def test_bad_sizes_are_refused_with_the_key_named(bad):
    key = next(iter(bad))
    with pytest.raises(UnfreezeError, match=key):
        tiny(**bad)


def test_build_takes_vocab_and_pad_from_tokenizer(tokenizer):
    tokenizer = BertTokenizerFast.from_pretrained(tokenizer.name_or_path)
    tokenizer.add_tokens(["zyzzyva"])
    model = build_bilstm(tokenizer, {"embedding_dim": 8, "hidden_size": 8, "vocab_size": 3})
    assert model.config.vocab_size == len(tokenizer) == tokenizer.vocab_size + 1
    assert model.config.pad_token_id == tokenizer.pad_token_id
    ids = tokenizer(["zyzzyva movie"], return_tensors="pt")
    assert ids["input_ids"].max() == len(tokenizer) - 1
    model(**ids)  # the added token has an embedding row


def test_build_refuses_tokenizer_without_pad(tokenizer):
    tokenizer = BertTokenizerFast.from_pretrained(tokenizer.name_or_path)
    tokenizer.pad_token = None
    with pytest.raises(UnfreezeError, match="pad token"):
        build_bilstm(tokenizer)


# ---------------------------------------------------------------------------------------------------------
# Determinism and gradients


def one_step(seed: int):
    model = tiny(seed)
    model.train()
    ids, mask = right_padded([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]])
    torch.manual_seed(100)  # dropout masks
    out = model(ids, mask).last_hidden_state
    loss = (mean_pool(out, mask) ** 2).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    return out.detach(), grads, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_same_seed_gives_identical_outputs_gradients_and_step():
    out_a, grads_a, params_a = one_step(0)
    out_b, grads_b, params_b = one_step(0)
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert all(torch.equal(params_a[n], params_b[n]) for n in params_a)
    out_c, _, _ = one_step(1)
    assert not torch.equal(out_a, out_c), "a different seed must give a different model"


def test_gradients_reach_the_embeddings_of_used_tokens_only():
    model = tiny(num_layers=1)
    ids, mask = right_padded([[5, 6, 7], [8, 9]], width=5)
    mean_pool(model(ids, mask).last_hidden_state, mask).sum().backward()
    grad = model.get_input_embeddings().weight.grad
    used = [5, 6, 7, 8, 9]
    assert all(grad[i].abs().sum() > 0 for i in used)
    unused = [i for i in range(40) if i not in used]
    assert torch.all(grad[unused] == 0), "padding (id 0) and absent tokens must get no gradient"
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.layers[0].parameters())


# ---------------------------------------------------------------------------------------------------------
# It learns


def cue_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = [rng.choice(FILLERS) for _ in range(rng.randint(4, 12))]
        label = i % 2
        words.insert(rng.randint(0, len(words)), CUES[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def test_sequence_task_cue_word_is_learned_with_mean_pooling(tokenizer):
    torch.manual_seed(0)
    texts, labels = cue_sentences(60, seed=1)
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    y = torch.tensor(labels)
    encoder = build_bilstm(tokenizer, BiLSTMConfig(embedding_dim=32, hidden_size=32))
    head = nn.Sequential(nn.Dropout(0.1), nn.Linear(encoder.config.hidden_size, 2))
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    start = time.perf_counter()
    for _ in range(60):
        encoder.train(), head.train()
        for batch in torch.randperm(60).split(16):
            states = encoder(enc["input_ids"][batch], enc["attention_mask"][batch]).last_hidden_state
            loss = nn.functional.cross_entropy(head(mean_pool(states, enc["attention_mask"][batch])), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        encoder.eval(), head.eval()
        with torch.no_grad():
            pred = head(mean_pool(encoder(**enc).last_hidden_state, enc["attention_mask"])).argmax(-1)
        if accuracy_score(labels, pred.numpy()) > 0.95:
            break
    elapsed = time.perf_counter() - start
    assert accuracy_score(labels, pred.numpy()) > 0.9
    assert elapsed < 20, f"took {elapsed:.1f}s"
    # and it generalises to fresh sentences (the cue, not memorised fillers, decides)
    fresh, fresh_labels = cue_sentences(40, seed=2)
    fenc = tokenizer(fresh, padding=True, return_tensors="pt")
    with torch.no_grad():
        fpred = head(mean_pool(encoder(**fenc).last_hidden_state, fenc["attention_mask"])).argmax(-1)
    assert accuracy_score(fresh_labels, fpred.numpy()) > 0.85


def entity_sentences(n: int, seed: int) -> tuple[list[list[str]], list[list[int]]]:
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words, word_tags = [], []
        for _ in range(rng.randint(4, 10)):
            entity = rng.random() < 0.3
            words.append(rng.choice(ENTITIES if entity else FILLERS))
            word_tags.append(int(entity))
        sentences.append(words)
        tags.append(word_tags)
    return sentences, tags


def first_subword_labels(enc, tags: list[list[int]]) -> torch.Tensor:
    """unfreeze's NER alignment: the first sub-token of a word carries its tag, the rest and specials -100."""
    rows = []
    for i, word_tags in enumerate(tags):
        row, previous = [], None
        for word in enc.word_ids(i):
            row.append(-100 if word is None or word == previous else word_tags[word])
            previous = word
        rows.append(row)
    return torch.tensor(rows)


def test_token_task_entity_words_are_tagged(tokenizer):
    torch.manual_seed(0)
    sentences, tags = entity_sentences(60, seed=3)
    enc = tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="pt")
    assert any(len(set(w for w in enc.word_ids(i) if w is not None)) < sum(1 for w in enc.word_ids(i) if w is not None)
               for i in range(60)), "some entity words must be split into several sub-tokens"
    labels = first_subword_labels(enc, tags)
    encoder = build_bilstm(tokenizer, BiLSTMConfig(embedding_dim=32, hidden_size=32))
    head = nn.Linear(encoder.config.hidden_size, 2)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    start = time.perf_counter()
    for _ in range(40):
        encoder.train()
        for batch in torch.randperm(60).split(16):
            logits = head(encoder(enc["input_ids"][batch], enc["attention_mask"][batch]).last_hidden_state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, 2), labels[batch].reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    encoder.eval()
    with torch.no_grad():
        pred = head(encoder(**enc).last_hidden_state).argmax(-1)
    keep = labels != -100
    assert f1_score(labels[keep].numpy(), pred[keep].numpy()) > 0.9
    assert time.perf_counter() - start < 20


# ---------------------------------------------------------------------------------------------------------
# Optional embedding init from a transformer folder


def test_embedding_init_copies_or_projects_the_transformer_table(tmp_path, tokenizer):
    rng = np.random.default_rng(0)
    vocab = len(tokenizer)
    table = torch.tensor(rng.normal(size=(vocab, 16)) * np.linspace(3, 0.1, 16), dtype=torch.float32)
    save_file({"bert.embeddings.word_embeddings.weight": table, "bert.pooler.dense.bias": torch.zeros(16)},
              str(tmp_path / "model.safetensors"))
    same = build_bilstm(tokenizer, BiLSTMConfig(embedding_dim=16, hidden_size=8), init_embeddings_from=tmp_path)
    torch.testing.assert_close(same.get_input_embeddings().weight, table / table.std())
    # narrower: the top principal components, as scikit-learn computes them (up to each axis' sign)
    reduced = load_word_embeddings(tmp_path, 4).numpy()
    reference = PCA(n_components=4, svd_solver="full").fit_transform(table.numpy().astype(np.float64))
    reference = reference / reference.std(ddof=1)  # torch.std is the sample std
    signs = np.sign((reduced * reference).sum(0))
    np.testing.assert_allclose(reduced, reference * signs, atol=1e-4)
    with pytest.raises(UnfreezeError, match="embedding_dim <= 16"):
        load_word_embeddings(tmp_path, 32)
    with pytest.raises(UnfreezeError, match="model.safetensors"):
        load_word_embeddings(tmp_path / "nowhere", 4)
