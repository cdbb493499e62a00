"""The bucketed sampler: every example exactly once per epoch, similar lengths per batch, reproducible."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tunecard.encoding.sampling import BucketedRandomSampler


@given(st.lists(st.integers(1, 200), min_size=0, max_size=400), st.integers(1, 20), st.integers(1, 5),
       st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_every_example_exactly_once_per_epoch(lengths, batch_size, chunk_batches, epoch):
    sampler = BucketedRandomSampler(lengths, batch_size, seed=7, chunk_batches=chunk_batches)
    sampler.set_epoch(epoch)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    batches = sampler.batches()
    # Only the last batches may be short, so the DataLoader's consecutive grouping equals these batches.
    assert all(len(b) == batch_size for b in batches[:-1])
    assert [i for b in batches for i in b] == order


def test_batches_are_length_homogeneous_and_order_changes_per_epoch():
    lengths = [(i * 37) % 101 + 1 for i in range(3200)]
    sampler = BucketedRandomSampler(lengths, 16, seed=1)
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in sampler.batches()]
    assert sum(spread) / len(spread) < 10  # random batches of this data spread over ~95
    first = list(sampler)
    assert first == list(BucketedRandomSampler(lengths, 16, seed=1))  # same seed, same order
    sampler.set_epoch(1)
    assert list(sampler) != first
