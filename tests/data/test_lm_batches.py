import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import (
    CharTokenizer,
    check_token_ids,
    encode_corpus,
    eval_batches,
    lm_batch,
    pad_sequences,
)

# A stream whose token at position i is i: a window's first input is its offset.
STREAM = np.arange(1000, dtype=np.int32)


def test_encode_corpus_joins_char_documents_with_blank_line():
    tokenizer = CharTokenizer.train(["ab", "ba"])
    tokens = encode_corpus(tokenizer, ["ab", "ba"])
    assert tokens.dtype == np.int32
    assert tokenizer.decode(tokens) == "ab\n\nba"


def test_encode_corpus_joins_bpe_documents_with_eos(bpe_tokenizer):
    docs = ["first doc", "second doc", "third"]
    tokens = encode_corpus(bpe_tokenizer, docs)
    assert tokens.dtype == np.int32
    assert np.sum(tokens == bpe_tokenizer.eos_id) == 2
    pieces = np.split(tokens, np.flatnonzero(tokens == bpe_tokenizer.eos_id))
    assert [bpe_tokenizer.decode(p[p != bpe_tokenizer.eos_id]) for p in pieces] == docs


def test_encode_corpus_too_short_raises(bpe_tokenizer):
    with pytest.raises(ValueError, match="at least 2"):
        encode_corpus(bpe_tokenizer, ["a"])


def test_lm_batch_is_a_pure_function_of_seed_and_step():
    kwargs = dict(batch_size=8, seq_len=16)
    first = lm_batch(STREAM, seed=3, step=7, **kwargs)
    again = lm_batch(STREAM, seed=3, step=7, **kwargs)
    for key in ("inputs", "targets"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["inputs"], lm_batch(STREAM, seed=3, step=8, **kwargs)["inputs"])
    assert not np.array_equal(first["inputs"], lm_batch(STREAM, seed=4, step=7, **kwargs)["inputs"])


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    step=st.integers(0, 10**6),
    batch_size=st.integers(1, 16),
    seq_len=st.integers(1, 64),
    length=st.integers(65, 300),
)
def test_lm_batch_windows_are_shifted_slices_of_the_stream(seed, step, batch_size, seq_len, length):
    stream = STREAM[:length]
    batch = lm_batch(stream, seed=seed, step=step, batch_size=batch_size, seq_len=seq_len)
    inputs, targets = batch["inputs"], batch["targets"]
    assert inputs.shape == targets.shape == (batch_size, seq_len)
    assert inputs.dtype == targets.dtype == np.int32
    np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
    starts = inputs[:, :1]
    np.testing.assert_array_equal(inputs, starts + np.arange(seq_len))
    np.testing.assert_array_equal(targets, starts + 1 + np.arange(seq_len))
    assert starts.min() >= 0 and targets.max() < length


def test_lm_batch_reaches_every_window_offset():
    stream = STREAM[:12]
    starts = np.concatenate(
        [
            lm_batch(stream, seed=0, step=s, batch_size=8, seq_len=4)["inputs"][:, 0]
            for s in range(50)
        ]
    )
    assert set(starts.tolist()) == set(range(12 - 4))


@pytest.mark.parametrize("process_count", [1, 2, 4, 8])
def test_process_slices_concatenate_to_the_global_batch(process_count):
    kwargs = dict(seed=1, step=5, batch_size=8, seq_len=10)
    global_batch = lm_batch(STREAM, **kwargs)
    local = [
        lm_batch(STREAM, process_index=p, process_count=process_count, **kwargs)
        for p in range(process_count)
    ]
    for key in ("inputs", "targets"):
        assert all(part[key].shape == (8 // process_count, 10) for part in local)
        np.testing.assert_array_equal(np.concatenate([p[key] for p in local]), global_batch[key])


def test_lm_batch_errors():
    with pytest.raises(ValueError, match="not divisible by process_count=3"):
        lm_batch(STREAM, seed=0, step=0, batch_size=8, seq_len=4, process_count=3)
    with pytest.raises(ValueError, match="process_index"):
        lm_batch(STREAM, seed=0, step=0, batch_size=8, seq_len=4, process_index=2, process_count=2)
    with pytest.raises(ValueError, match=r"has 10 tokens.*seq_len=10.*at least 11"):
        lm_batch(STREAM[:10], seed=0, step=0, batch_size=2, seq_len=10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        lm_batch(STREAM, seed=0, step=0, batch_size=0, seq_len=4)


@pytest.mark.parametrize(
    ("length", "batch_size", "seq_len"),
    [(2, 1, 1), (33, 4, 8), (34, 4, 8), (100, 3, 7), (1000, 2, 50)],
)
def test_eval_batches_score_each_target_once_with_fixed_shapes(length, batch_size, seq_len):
    stream = STREAM[:length]
    batches = list(eval_batches(stream, batch_size=batch_size, seq_len=seq_len))
    for batch in batches:
        assert batch["inputs"].shape == batch["targets"].shape == (batch_size, seq_len)
        assert batch["mask"].shape == (batch_size, seq_len) and batch["mask"].dtype == np.float32
        assert batch["inputs"].dtype == batch["targets"].dtype == np.int32
    real = np.concatenate([b["mask"].ravel() for b in batches]) == 1
    targets = np.concatenate([b["targets"].ravel() for b in batches])[real]
    inputs = np.concatenate([b["inputs"].ravel() for b in batches])[real]
    np.testing.assert_array_equal(targets, stream[1:])  # in order, no overlap, nothing missed
    np.testing.assert_array_equal(inputs, stream[:-1])
    assert real.size - real.sum() < batch_size * seq_len  # padding only in the last batch
    assert np.all(np.concatenate([b["mask"].ravel() for b in batches])[real.sum() :] == 0)


def test_eval_batches_pads_a_partial_last_batch_with_masked_rows():
    batches = list(eval_batches(STREAM[:21], batch_size=4, seq_len=8))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0]["mask"].sum(axis=1), [8, 8, 4, 0])
    np.testing.assert_array_equal(batches[0]["inputs"][3], np.zeros(8))


def test_eval_batches_max_batches_and_errors():
    assert len(list(eval_batches(STREAM, batch_size=2, seq_len=10, max_batches=3))) == 3
    with pytest.raises(ValueError, match="has 1 tokens"):
        list(eval_batches(STREAM[:1], batch_size=2, seq_len=4))


def test_pad_sequences_right_and_left():
    seqs = [[1, 2, 3], [4], []]
    tokens, mask = pad_sequences(seqs, pad_id=0)
    np.testing.assert_array_equal(tokens, [[1, 2, 3], [4, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    assert tokens.dtype == np.int32 and mask.dtype == bool
    tokens, mask = pad_sequences(seqs, pad_id=9, side="left", length=4)
    np.testing.assert_array_equal(tokens, [[9, 1, 2, 3], [9, 9, 9, 4], [9, 9, 9, 9]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])


@settings(max_examples=100, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(0, 100), max_size=8), max_size=6),
    side=st.sampled_from(["left", "right"]),
)
def test_pad_sequences_keeps_every_sequence(seqs, side):
    tokens, mask = pad_sequences(seqs, pad_id=-1, side=side)
    assert tokens.shape == mask.shape == (len(seqs), max(map(len, seqs), default=0))
    for row, row_mask, seq in zip(tokens, mask, seqs, strict=True):
        assert row[row_mask].tolist() == seq
        assert np.all(row[~row_mask] == -1)


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="shorter than the longest"):
        pad_sequences([[1, 2, 3]], 0, length=2)
    with pytest.raises(ValueError, match="side"):
        pad_sequences([[1]], 0, side="center")


def test_check_token_ids_names_id_position_and_vocab():
    check_token_ids(np.array([0, 5, 9]), vocab_size=10)
    with pytest.raises(ValueError, match=r"id 10 at position 2 .*\[0, 10\)"):
        check_token_ids(np.array([0, 5, 10]), vocab_size=10)
    with pytest.raises(ValueError, match=r"id -3 at position \(1, 0\)"):
        check_token_ids(np.array([[0, 1], [-3, 2]]), vocab_size=10)
    with pytest.raises(ValueError, match="integers"):
        check_token_ids(np.array([0.5]), vocab_size=10)
