"""Class-stratified nested subsets: a class never shrinks when the subset grows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from synthmix.data.splits import class_quotas, nested_quotas, stratified_prefix


def test_largest_remainder_shrinks_a_class_and_nested_quotas_do_not() -> None:
    # The Alabama paradox: 3 of (1, 3, 3) gives class 0 its image, 4 of them take it away.
    counts, ties = np.array([1, 3, 3]), np.arange(3)
    assert class_quotas(counts, 3, ties).tolist() == [1, 1, 1]
    assert class_quotas(counts, 4, ties).tolist() == [0, 2, 2]
    assert nested_quotas(counts, 3, ties).tolist() == [1, 1, 1]
    assert nested_quotas(counts, 4, ties).tolist() == [1, 2, 1]
    labels = np.repeat(np.arange(3), counts)  # so 3 of these images lie inside 4 of them
    assert set(stratified_prefix(labels, None, 5, count=3)) <= set(
        stratified_prefix(labels, None, 5, count=4))


def test_nested_quotas_split_equal_classes_evenly_lower_class_first() -> None:
    counts = np.full(10, 90)
    assert nested_quotas(counts, 90, np.arange(10)).tolist() == [9] * 10
    assert nested_quotas(counts, 93, np.arange(10)).tolist() == [10] * 3 + [9] * 7


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=8), st.data())
def test_no_class_shrinks_when_the_total_grows(counts: list[int], data: st.DataObject) -> None:
    c = np.array(counts, dtype=np.int64)
    n = int(c.sum())
    k1 = data.draw(st.integers(0, n))
    k2 = data.draw(st.integers(k1, n))
    ties = np.arange(len(c))
    small, big = nested_quotas(c, k1, ties), nested_quotas(c, k2, ties)
    assert small.sum() == k1 and big.sum() == k2
    assert np.all(small <= big) and np.all(big <= c) and np.all(small >= 0)
    # Still close to proportional (Sainte-Lague may miss the exact share by more than one
    # image, never by two here).
    assert np.all(np.abs(big - k2 * c / max(n, 1)) < 2)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=20, max_size=120), st.integers(0, 2**31 - 1),
       st.data())
def test_stratified_prefixes_are_nested(labels: list[int], seed: int,
                                        data: st.DataObject) -> None:
    y = np.array(labels)
    k1 = data.draw(st.integers(0, len(y)))
    k2 = data.draw(st.integers(k1, len(y)))
    small = stratified_prefix(y, None, seed, count=k1)
    big = stratified_prefix(y, None, seed, count=k2)
    assert len(small) == k1 and len(big) == k2 and set(small) <= set(big)
