"""The planner's token-length sample (`oneline.sample_lengths`): texts, text pairs and a token task's word lists go
through the one helper that tells them apart (`oneline._texts`), and each sampled length is the tokenizer's own."""
from transformers import AutoTokenizer

from unfreeze.study.oneline import sample_lengths


class Split:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __len__(self):
        return len(getattr(self, "texts", None) or self.words)


def test_sampled_lengths_are_the_tokenizers_for_texts_pairs_and_word_lists(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = Split(texts=["a b", "a b c d e", "a"], pairs=None)
    pairs = Split(texts=["a b", "a"], pairs=["c", "d e f"])
    words = Split(words=[["a", "b"], ["c", "d", "e", "f"]])
    whole = [len(tokenizer(t)["input_ids"]) for t in texts.texts]
    assert sorted(sample_lengths(tokenizer, [texts]).tolist()) == sorted(whole)
    assert sorted(sample_lengths(tokenizer, [pairs]).tolist()) == sorted(
        len(tokenizer(t, p)["input_ids"]) for t, p in zip(pairs.texts, pairs.pairs))
    assert sorted(sample_lengths(tokenizer, [words]).tolist()) == sorted(
        len(tokenizer(w, is_split_into_words=True)["input_ids"]) for w in words.words)
    both = sample_lengths(tokenizer, [texts, words], n=2)  # a sample drawn from each split by its size
    assert len(both) == 2
