"""`model.tokenizer: train`: a WordPiece vocabulary built from the run's TRAINING split, for the BiLSTM baseline.

Why: the BiLSTM borrows a pretrained tokenizer's vocabulary by default (MiniLM's). On a language that vocabulary
does not cover (MiniLM has 244 Han characters; 63 % of Chinese review tokens become [UNK]) an LSTM over it cannot
learn, while a from-scratch model needs no pretrained vocabulary at all: the frequent pieces of its own training
text are the natural one.

What is built (deterministic: same training texts + sizes → byte-identical vocab.txt, in every process):
- text is normalised and split exactly as BERT's basic tokenizer does (`tokenizers`' BertNormalizer with
  lower-casing and CJK spacing + BertPreTokenizer: whitespace and punctuation split, every Han/CJK character
  its own word), so each CJK character is a single token;
- candidates are the words, the single characters (`c`) and the word-continuation characters (`##c`) of the
  training texts with at least `min_count` occurrences; the `vocab_size - 5` most frequent (ties by text) are
  kept after the five BERT specials ([PAD] = id 0, [UNK], [CLS], [SEP], [MASK]). The character entries mean a rare
  Latin word falls back to its characters instead of [UNK];
- a `BertTokenizerFast` over that vocab.txt: the same encoding, pair handling and word alignment (`word_ids`) as
  the BERT tokenizers the rest of unfreeze uses. It is saved with `best/` like any tokenizer, so `unfreeze
  predict` and `load_model` read it back without rebuilding anything.

Only the training split is read — never val/test — so a word seen only in validation text is [UNK], as it would
be for new text at prediction time.
"""
from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable

#: `model.tokenizer` value that selects a vocabulary built from the training split
TRAIN_VOCAB = "train"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILE = "vocab.txt"


def is_train_vocab(name: str) -> bool:
    """True for `model.tokenizer: train`: the one place that knows the spelling."""
    return name == TRAIN_VOCAB


def training_texts(train_split) -> list[str]:
    """The texts a vocabulary is counted over: a sentence split's `texts` (+ `pairs`), or a token split's words
    joined by spaces (the pre-tokenizer splits on whitespace, so this counts the same pieces as encoding the
    words one by one with `is_split_into_words=True`)."""
    words = getattr(train_split, "words", None)
    if words is not None:
        return [" ".join(sentence) for sentence in words]
    texts = list(train_split.texts)
    pairs = getattr(train_split, "pairs", None)
    return texts + list(pairs) if pairs is not None else texts


def count_pieces(texts: Iterable[str]) -> Counter:
    """Occurrences of every word, first character (`c`) and continuation character (`##c`) after BERT's
    normalisation and basic pre-tokenisation."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                            lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(str(text))):
            counts[word] += 1
            if len(word) > 1:
                counts[word[0]] += 1
                counts.update("##" + c for c in word[1:])
    return counts


def build_vocab(texts: Iterable[str], vocab_size: int = 20000, min_count: int = 2) -> list[str]:
    """The vocabulary, in id order: specials, then the most frequent pieces (count desc, then text asc)."""
    if vocab_size <= len(SPECIALS):
        raise ValueError(f"vocab_size={vocab_size}: must exceed the {len(SPECIALS)} special tokens")
    counts = count_pieces(texts)
    ranked = sorted((piece for piece, n in counts.items() if n >= min_count and piece not in SPECIALS),
                    key=lambda piece: (-counts[piece], piece))
    return [*SPECIALS, *ranked[:vocab_size - len(SPECIALS)]]


def vocab_fingerprint(texts: list[str], vocab_size: int, min_count: int) -> str:
    """Hash of the inputs that decide the vocabulary (for logs and cache keys)."""
    digest = hashlib.sha1(f"{vocab_size}\0{min_count}\0".encode())
    for text in texts:
        digest.update(str(text).encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 20000, min_count: int = 2):
    """A `BertTokenizerFast` over `build_vocab(texts, ...)`, lower-casing, CJK characters split (as
    `count_pieces`). transformers 5 takes the vocabulary as a dict; 4.x only from a vocab.txt, written to a
    temporary folder just for construction (the fast tokenizer keeps it in memory; `save_pretrained` writes
    tokenizer.json, which is what `AutoTokenizer` reads back)."""
    import inspect

    from transformers import BertTokenizerFast

    vocab = build_vocab(texts, vocab_size, min_count)
    options = {"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None}
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:
        tokenizer = BertTokenizerFast(vocab={piece: i for i, piece in enumerate(vocab)}, **options)
    else:  # transformers 4.x
        with tempfile.TemporaryDirectory(prefix="unfreeze-vocab-") as folder:
            path = Path(folder) / VOCAB_FILE
            path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
            tokenizer = BertTokenizerFast(vocab_file=str(path), **options)
        tokenizer.vocab_file = None  # the temporary file is gone
    tokenizer.model_max_length = 512
    return tokenizer
