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
    return [("a" * s, "b" * t) for s, t in draw_lengths]


lengths = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=40)


@settings(max_examples=30, deadline=None)
@given(sizes=lengths, batch=st.integers(1, 8), seed=st.integers(0, 99), epoch=st.integers(0, 3))
def test_an_epoch_holds_every_pair_and_targets_shift_right(sizes, batch, seed, epoch):
    pairs = encode_pairs(TOKENIZER, _pairs(sizes), max_len=40, end_id=END)
    batches = PairBatches(pairs, batch, max_len=40, seed=seed, start_id=START)
    steps = range(epoch * batches.steps_per_epoch, (epoch + 1) * batches.steps_per_epoch)
    seen = []
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
            seen.append((len(source) - 1, len(target) - 1))
    # all pairs seen once (the last batch is filled up from the epoch's start)
    assert sorted(set(seen)) == sorted(set(sizes)) and len(seen) >= len(sizes)
    assert [batches(s)["source"].tolist() for s in steps] == [
        batches(s)["source"].tolist() for s in steps
    ]  # a pure function of the step


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
