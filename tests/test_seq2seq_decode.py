"""Greedy and beam search: against plain-Python searches over a table of logits, beam width 1
equal to greedy, each output's score equal to the model's log-probability of it, and a batch
decoded together equal to its sentences decoded alone."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.models.lstm_seq2seq import LSTMSeq2Seq, init_lstm_seq2seq_params, lstm_decoding
from jaxllm.models.seq2seq import Seq2SeqTransformer, init_seq2seq_params, transformer_decoding
from jaxllm.seq2seq_decode import Seq2SeqDecoding, beam_search, greedy_search
from tests.test_seq2seq import CONFIG, LSTM_CONFIG, _batch, _noisy

VOCAB, STEPS, END = 6, 5, 1


def _table_decoding(table: np.ndarray) -> Seq2SeqDecoding:
    """A "model" whose next-token logits are ``table[source, last token, step]``: the
    source's first token picks the table."""
    table = jnp.asarray(table)

    def start(params, source, source_mask, tokens, max_len):
        state = {"source": source[:, 0], "step": jnp.zeros(source.shape[:1], jnp.int32)}
        return table[state["source"], tokens, 0], state

    def step(params, tokens, state):
        state = {"source": state["source"], "step": state["step"] + 1}
        return table[state["source"], tokens, state["step"]], state

    def reorder(state, rows, same_sources):
        return jax.tree.map(lambda leaf: leaf[rows], state)

    return Seq2SeqDecoding(start, step, reorder, VOCAB)


def _log_softmax(x):
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def _reference_greedy(table, source, steps):
    tokens, log_prob, last = [], 0.0, 0
    for t in range(steps):
        lp = _log_softmax(table[source, last, t])
        last = int(np.argmax(lp))
        tokens.append(last)
        log_prob += lp[last]
        if last == END:
            break
    return tokens, log_prob


def _reference_beam(table, source, k, steps, alpha):
    """Beam search as fairseq runs it, one sentence, in plain Python."""
    alive, ended, count = [((), 0.0)], [], 0
    for t in range(steps):
        candidates = [
            (log_prob + lp, seq + (v,))
            for seq, log_prob in alive
            for v, lp in enumerate(_log_softmax(table[source, seq[-1] if seq else 0, t]))
        ]
        candidates = sorted(candidates, key=lambda c: -c[0])[: 2 * k]
        ends = [c[1][-1] == END or t == steps - 1 for c in candidates]
        if count < k:
            new = [
                (s / len(q) ** alpha, s, q)
                for rank, ((s, q), e) in enumerate(zip(candidates, ends, strict=True))
                if e and rank < k
            ]
            count += len(new)
            ended = sorted(ended + new, key=lambda c: -c[0])[:k]
        alive = [(q, s) for (s, q), e in zip(candidates, ends, strict=True) if not e][:k]
        if count >= k:
            break
    score, log_prob, tokens = ended[0]
    return list(tokens), log_prob, score


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.sampled_from([1, 2, 3]), alpha=st.sampled_from([0.0, 1.0]))
def test_searches_equal_plain_python_ones(seed, k, alpha):
    rng = np.random.default_rng(seed)
    table = rng.normal(scale=2.0, size=(4, VOCAB, VOCAB, STEPS)).astype(np.float32)
    table[:, :, END, :] += rng.normal(size=(4, VOCAB, STEPS)).astype(np.float32)  # ends vary
    source = jnp.array([[0], [1], [2], [3]], jnp.int32)
    mask = jnp.ones_like(source, bool)
    settings_ = {"max_new_tokens": STEPS, "start_id": 0, "end_id": END}
    decoding = _table_decoding(table)
    greedy = jax.jit(functools.partial(greedy_search, decoding, **settings_))(None, source, mask)
    beam = jax.jit(functools.partial(beam_search, decoding, beam_size=k, length_penalty=alpha,
                                     **settings_))(None, source, mask)  # fmt: skip
    for row in range(4):
        tokens, log_prob = _reference_greedy(table, row, STEPS)
        assert greedy.to_lists(keep_end=True)[row] == tokens
        np.testing.assert_allclose(greedy.log_probs[row], log_prob, rtol=1e-5, atol=1e-5)
        tokens, log_prob, score = _reference_beam(table, row, k, STEPS, alpha)
        assert beam.to_lists(keep_end=True)[row] == tokens
        np.testing.assert_allclose(beam.log_probs[row], log_prob, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(beam.scores[row], score, rtol=1e-5, atol=1e-5)
        assert bool(beam.ended[row]) == (tokens[-1] == END)


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def model_and_decoding(request):
    if request.param == "transformer":
        model = Seq2SeqTransformer(CONFIG)
        params = _noisy(init_seq2seq_params(CONFIG, jax.random.key(0)), scale=0.5)
        return model, params, transformer_decoding(model)
    model = LSTMSeq2Seq(LSTM_CONFIG)
    params = _noisy(init_lstm_seq2seq_params(LSTM_CONFIG, jax.random.key(0)), scale=0.5)
    return model, params, lstm_decoding(model)


SEARCH = {"max_new_tokens": 8, "start_id": 0, "end_id": 3}


@functools.cache
def _jitted(decoding, beam_size, length_penalty):
    if beam_size == 0:
        return jax.jit(functools.partial(greedy_search, decoding, **SEARCH))
    return jax.jit(functools.partial(beam_search, decoding, beam_size=beam_size,
                                     length_penalty=length_penalty, **SEARCH))  # fmt: skip


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), alpha=st.sampled_from([0.0, 0.6, 1.0]))
def test_beam_width_one_is_greedy(model_and_decoding, seed, alpha):
    _, params, decoding = model_and_decoding
    source, mask, _ = _batch(seed)
    greedy = _jitted(decoding, 0, 0.0)(params, source, mask)
    beam = _jitted(decoding, 1, alpha)(params, source, mask)
    np.testing.assert_array_equal(greedy.tokens, beam.tokens)
    np.testing.assert_allclose(greedy.log_probs, beam.log_probs, rtol=1e-5, atol=1e-5)


def _model_log_probs(model, params, source, mask, result):
    """The model's log-probability of each output, teacher-forced."""
    tokens = np.asarray(result.tokens)
    target_in = np.concatenate([np.zeros((len(tokens), 1), np.int32), tokens[:, :-1]], axis=1)
    logits = model.apply({"params": params}, source, mask, jnp.asarray(target_in))
    log_probs = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), tokens[..., None], 2)
    real = np.arange(tokens.shape[1])[None] < np.asarray(result.lengths)[:, None]
    return (log_probs[..., 0] * real).sum(axis=1)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_a_beams_score_is_the_models_log_probability(model_and_decoding, seed):
    model, params, decoding = model_and_decoding
    source, mask, _ = _batch(seed)
    result = _jitted(decoding, 4, 1.0)(params, source, mask)
    expected = _model_log_probs(model, params, source, mask, result)
    np.testing.assert_allclose(result.log_probs, expected, rtol=1e-4, atol=1e-4)
    lengths = np.asarray(result.lengths, np.float32)
    np.testing.assert_allclose(result.scores, expected / lengths, rtol=1e-4, atol=1e-4)


def test_without_an_end_token_every_output_is_full_length(model_and_decoding):
    _, params, decoding = model_and_decoding
    source, mask, _ = _batch()
    settings = {"max_new_tokens": 5, "start_id": 0, "end_id": None}
    for result in (
        greedy_search(decoding, params, source, mask, **settings),
        beam_search(decoding, params, source, mask, beam_size=2, **settings),
    ):
        assert np.asarray(result.lengths).tolist() == [5, 5, 5]
        assert not np.asarray(result.ended).any()


def test_a_batch_decodes_as_its_sentences_alone(model_and_decoding):
    _, params, decoding = model_and_decoding
    source, mask, _ = _batch(3)
    together = _jitted(decoding, 3, 1.0)(params, source, mask)
    for row in range(source.shape[0]):
        alone = _jitted(decoding, 3, 1.0)(params, source[row : row + 1], mask[row : row + 1])
        assert alone.to_lists() == together.to_lists()[row : row + 1]
        np.testing.assert_allclose(alone.scores[0], together.scores[row], rtol=1e-5, atol=1e-5)


def test_bad_requests_are_refused(model_and_decoding):
    _, params, decoding = model_and_decoding
    source, mask, _ = _batch()
    with pytest.raises(ValueError, match="max_new_tokens and beam_size must be >= 1"):
        beam_search(decoding, params, source, mask, beam_size=0, max_new_tokens=4, start_id=0,
                    end_id=3)  # fmt: skip
    with pytest.raises(ValueError, match="start_id=40 is not a token id"):
        greedy_search(decoding, params, source, mask, max_new_tokens=4, start_id=40, end_id=3)
    with pytest.raises(ValueError, match="end_id=-1 is not a token id"):
        beam_search(decoding, params, source, mask, beam_size=2, max_new_tokens=4, start_id=0,
                    end_id=-1)  # fmt: skip
    with pytest.raises(ValueError, match="bool mask of the same shape"):
        greedy_search(decoding, params, source, mask[:, :3], max_new_tokens=4, start_id=0,
                      end_id=3)  # fmt: skip
