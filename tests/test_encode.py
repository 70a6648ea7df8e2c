"""Batching: every example once per epoch, deterministic per seed, padded per batch only."""
import numpy as np
import pytest

from unfreeze.config.schema import DataConfig
from unfreeze.data.encode import Collator, Encoded, LengthGroupedBatchSampler, choose_max_length


def lengths(n=203, seed=0):
    return np.random.default_rng(seed).integers(3, 120, n)


@pytest.mark.parametrize("group", [True, False])
def test_every_example_exactly_once_per_epoch(group):
    sampler = LengthGroupedBatchSampler(lengths(), 16, shuffle=True, seed=3, group_by_length=group, bucket_batches=4)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        flat = [i for b in sampler for i in b]
        assert sorted(flat) == list(range(203))


def test_deterministic_per_seed_and_different_per_epoch():
    a = LengthGroupedBatchSampler(lengths(), 16, shuffle=True, seed=1)
    b = LengthGroupedBatchSampler(lengths(), 16, shuffle=True, seed=1)
    assert a.batches() == b.batches()
    b.set_epoch(1)
    assert a.batches() != b.batches()
    c = LengthGroupedBatchSampler(lengths(), 16, shuffle=True, seed=2)
    assert a.batches() != c.batches()


def test_grouped_batches_have_similar_lengths():
    ls = lengths(2000)
    grouped = LengthGroupedBatchSampler(ls, 16, shuffle=True, seed=0).batches()
    plain = LengthGroupedBatchSampler(ls, 16, shuffle=True, seed=0, group_by_length=False).batches()
    padded = lambda batches: sum(len(b) * ls[b].max() for b in batches)  # noqa: E731
    assert padded(grouped) < 0.8 * padded(plain)


def test_eval_batches_sorted_longest_first():
    ls = lengths()
    order = [i for b in LengthGroupedBatchSampler(ls, 10, shuffle=False) for i in b]
    assert list(ls[order]) == sorted(ls, reverse=True)


def test_token_budget():
    ls = lengths(500)
    for batch in LengthGroupedBatchSampler(ls, 64, shuffle=True, seed=0, max_tokens=600).batches():
        assert len(batch) == 1 or len(batch) * ls[batch].max() <= 600


def test_collator_pads_to_batch_max_with_mask():
    enc = Encoded([[5, 6, 7], [5, 6], [5]], None, np.array([0, 1, 0]), np.array([3, 2, 1]))
    batch = Collator(enc, pad_token_id=0)([1, 2])
    assert batch["input_ids"].tolist() == [[5, 6], [5, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_auto_max_length_percentile():
    ls = np.arange(1, 101)
    chosen, stats = choose_max_length(ls, DataConfig(dataset="x"), 512)
    assert chosen == 96 and stats["p95"] == 95
    fixed, _ = choose_max_length(ls, DataConfig(dataset="x", max_length=64), 512)
    assert fixed == 64 and _["truncated_share"] == pytest.approx(0.36)
