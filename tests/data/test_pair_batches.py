"""Sentence-pair batches: every pair once an epoch, the decoder's input the target shifted
right, padding to shared bucket lengths, truncation counted, empty sides refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import CharTokenizer
from jaxllm.data.pair_batches import PairBatches, encode_pairs, pair_eval_batches

TOKENIZER = CharTokenizer("abcdefghij ")
END, START = 11, 11  # one past the alphabet, as a BPE's end token would be


def _pairs(draw_lengths):
    """Pairs of the given lengths, each pair's text its own (the first letters count it)."""
    return [(_numbered(i, s), _numbered(i, t)) for i, (s, t) in enumerate(draw_lengths)]


def _numbered(i, length):
    digits = "".join("abcdefghij"[int(d)] for d in str(i))
    return (digits + " " * length)[:length] if length >= len(digits) else digits[:length]


lengths = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=40)


@settings(max_examples=30, deadline=None)
@given(sizes=lengths, batch=st.integers(1, 8), seed=st.integers(0, 99), epoch=st.integers(0, 3))
def test_an_epoch_holds_every_pair_and_targets_shift_right(sizes, batch, seed, epoch):
    pairs = encode_pairs(TOKENIZER, _pairs(sizes), max_len=40, end_id=END)
    batches = PairBatches(pairs, batch, max_len=40, seed=seed, start_id=START)
    steps = range(epoch * batches.steps_per_epoch, (epoch + 1) * batches.steps_per_epoch)
    seen = []
    fresh = PairBatches(pairs, batch, max_len=40, seed=seed, start_id=START)
    for step in reversed(steps):  # a new object, the steps in another order: the same batches
        np.testing.assert_array_equal(fresh(step)["source"], batches(step)["source"])
    for step in steps:
        b = batches(step)
        length = b["source"].shape[1]
        assert length % 16 == 0 or length == 40
        assert b["target_in"].shape == b["target_out"].shape == b["source_mask"].shape
        np.testing.assert_array_equal(b["target_in"][:, 0], START)
        np.testing.assert_array_equal(b["target_in"][:, 1:], b["target_out"][:, :-1])
        for row in range(batch):
            source = b["source"][row][b["source_mask"][row]]
            target = b["target_out"][row][b["target_mask"][row]]
            assert source[-1] == END and target[-1] == END  # each side ends with the end token
            seen.append((tuple(source[:-1]), tuple(target[:-1])))
    # every pair once, and the last batch filled up with fewer than a batch of repeats
    expected = [(tuple(TOKENIZER.encode(s)), tuple(TOKENIZER.encode(t))) for s, t in _pairs(sizes)]
    counts = {pair: seen.count(pair) for pair in set(seen)}
    assert set(counts) == set(expected)
    assert len(seen) - len(expected) < batch and all(counts[p] >= expected.count(p) for p in counts)


def test_processes_share_each_batch():
    sizes = [(i % 9 + 1, i % 4 + 1) for i in range(30)]
    pairs = encode_pairs(TOKENIZER, _pairs(sizes), max_len=40, end_id=END)
    whole = PairBatches(pairs, 8, 40, seed=1, start_id=START)
    parts = [PairBatches(pairs, 8, 40, 1, START, process_index=i, process_count=2) for i in (0, 1)]
    for step in range(6):
        for name, value in whole(step).items():
            np.testing.assert_array_equal(
                np.concatenate([part(step)[name] for part in parts]), value
            )


def test_process_shares_must_be_whole():
    pairs = encode_pairs(TOKENIZER, _pairs([(8, 8)] * 10), max_len=40, end_id=END)
    with pytest.raises(ValueError, match="divisible by process_count=3"):
        PairBatches(pairs, 10, 40, 0, START, process_index=0, process_count=3)
    with pytest.raises(ValueError, match="process_index must be in"):
        PairBatches(pairs, 10, 40, 0, START, process_index=5, process_count=2)
    with pytest.raises(ValueError, match="does not fit max_len=4"):
        PairBatches(pairs, 2, 4, 0, START)(0)


def test_long_sides_are_cut_and_counted_and_empty_sides_refused():
    pairs = encode_pairs(TOKENIZER, [("a" * 50, "b"), ("c", "d" * 3)], max_len=10, end_id=END)
    assert pairs.truncated == 1
    assert pairs.source_lengths.tolist() == [10, 2] and pairs.source[0, 9] == END
    with pytest.raises(ValueError, match="pair 2 has an empty target"):
        encode_pairs(TOKENIZER, [("a", "b"), ("c", " ")], max_len=10, end_id=END)
    with pytest.raises(ValueError, match="max_len must be >= 2"):
        encode_pairs(TOKENIZER, [("a", "b")], max_len=1, end_id=END)


def test_evaluation_batches_cover_every_pair_once():
    sizes = [(i % 7 + 1, i % 5 + 1) for i in range(23)]
    pairs = encode_pairs(TOKENIZER, _pairs(sizes), max_len=40, end_id=END)
    batches = pair_eval_batches(pairs, 5, 40, START)
    assert sum(int(b["target_mask"].sum()) for b in batches) == sum(t + 1 for _, t in sizes)
    assert len(pair_eval_batches(pairs, 5, 40, START, max_batches=2)) == 2
