"""The LSTM language model: shapes, tied output layer, causality, decoding from a prompt's state
equal to the whole sequence's forward pass, and config validation.

Compile time dominates, so every test reuses one tiny model and a few fixed shapes.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxllm.config import ConfigError
from jaxllm.data import pad_sequences
from jaxllm.generate import generate, generate_text
from jaxllm.models import (
    LSTMLM,
    LSTMLMConfig,
    count_params,
    init_lstm_lm_params,
    lstm_lm_prefill,
    lstm_lm_step,
)

VOCAB, EMBD, LAYERS, B, T, NEW = 23, 16, 2, 3, 10, 6
CONFIG = LSTMLMConfig(
    vocab_size=VOCAB, block_size=T, n_layer=LAYERS, n_embd=EMBD, dropout=0.2, embedding_dropout=0.1
)
PROMPTS = [[5, 3, 8, 1, 2], [7], [3, 1, 4, 1, 5, 9, 2]]


@functools.cache
def model_and_params() -> tuple[LSTMLM, dict]:
    return LSTMLM(CONFIG), init_lstm_lm_params(CONFIG, jax.random.key(0))


def tokens(seed: int = 0) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (B, T), 0, VOCAB)


def test_logits_shape_and_the_output_layer_is_the_embedding():
    model, params = model_and_params()
    logits = model.apply({"params": params}, tokens())
    chex.assert_shape(logits, (B, T, VOCAB))
    chex.assert_type(logits, jnp.float32)
    assert set(params) == {"wte", "lstm", "output_bias"}  # no output weight of its own
    chex.assert_shape(
        [params["wte"]["embedding"], params["output_bias"]], [(VOCAB, EMBD), (VOCAB,)]
    )
    layer = params["lstm"]["layer_1_forward"]
    chex.assert_shape(
        [layer["input"]["kernel"], layer["recurrent_kernel"], layer["bias"]],
        [(EMBD, 4 * EMBD), (EMBD, 4 * EMBD), (4 * EMBD,)],
    )
    assert count_params(params) == VOCAB * (EMBD + 1) + LAYERS * (8 * EMBD * EMBD + 4 * EMBD)
    # The output layer is the embedding: logits are h Eᵀ + b for the LSTM's last outputs h.
    bias_only = jax.tree.map(jnp.zeros_like, params) | {"output_bias": params["output_bias"]}
    np.testing.assert_allclose(
        model.apply({"params": bias_only}, tokens()),
        jnp.broadcast_to(params["output_bias"], logits.shape),
    )


def test_jit_equals_no_jit_and_dropout_is_a_function_of_the_key():
    model, params = model_and_params()
    x = tokens(1)
    chex.assert_trees_all_close(
        jax.jit(model.apply)({"params": params}, x), model.apply({"params": params}, x), atol=1e-6
    )
    apply = jax.jit(functools.partial(model.apply, train=True))
    one = apply({"params": params}, x, rngs={"dropout": jax.random.key(2)})
    again = apply({"params": params}, x, rngs={"dropout": jax.random.key(2)})
    other = apply({"params": params}, x, rngs={"dropout": jax.random.key(3)})
    chex.assert_trees_all_equal(one, again)
    assert not np.allclose(one, other)
    assert not np.allclose(one, model.apply({"params": params}, x))


def test_logits_at_a_position_do_not_depend_on_later_tokens_or_padding():
    model, params = model_and_params()
    x = tokens(4)
    t = 4
    later = x.at[:, t + 1 :].set((x[:, t + 1 :] + 7) % VOCAB)
    mask = jnp.arange(T)[None, :] <= t
    base = model.apply({"params": params}, x)
    changed = model.apply({"params": params}, later)
    padded = model.apply({"params": params}, later, padding_mask=jnp.broadcast_to(mask, (B, T)))
    np.testing.assert_allclose(changed[:, : t + 1], base[:, : t + 1], atol=1e-6)
    np.testing.assert_allclose(padded[:, : t + 1], base[:, : t + 1], atol=1e-6)
    assert not np.allclose(changed[:, t + 1 :], base[:, t + 1 :])


def test_decoding_from_the_prompt_state_equals_the_whole_sequence():
    """Prefill right-padded prompts once, then feed tokens one by one from their states: the
    same logits as the model over each whole sequence."""
    model, params = model_and_params()
    prompt, mask = pad_sequences(PROMPTS, 0, side="right")
    continuation = np.asarray(tokens(5))[:, :NEW]
    logits, states = jax.jit(functools.partial(lstm_lm_prefill, model))(params, prompt, mask)
    stepped = [logits]
    step = jax.jit(lstm_lm_step)
    for t in range(NEW - 1):
        logits, states = step(params, continuation[:, t], states)
        stepped.append(logits)
    stepped = np.stack(stepped, axis=1)  # (B, NEW, V)
    for b, row in enumerate(PROMPTS):
        full = np.concatenate([row, continuation[b]])[None]
        expected = model.apply({"params": params}, jnp.asarray(full))[0, len(row) - 1 : -1]
        np.testing.assert_allclose(stepped[b], expected, atol=1e-5)


def test_generate_chooses_from_the_logits_of_the_whole_sequence():
    model, params = model_and_params()
    result = generate(model, params, PROMPTS, max_new_tokens=NEW, greedy=True, return_logits=True)
    chex.assert_shape([result.tokens, result.step_logits], [(B, NEW), (B, NEW, VOCAB)])
    for b, row in enumerate(PROMPTS):
        full = np.concatenate([row, np.asarray(result.tokens[b])])[None]
        expected = model.apply({"params": params}, jnp.asarray(full))[0, len(row) - 1 : -1]
        np.testing.assert_allclose(result.step_logits[b], expected, atol=1e-5)
        np.testing.assert_array_equal(result.tokens[b], np.argmax(expected, axis=-1))
    # Sampling: the same key gives the same tokens; top_k keeps them among the k best.
    sample = functools.partial(generate, model, params, PROMPTS, max_new_tokens=NEW)
    one = sample(key=jax.random.key(1), top_k=3, return_logits=True)
    chex.assert_trees_all_equal(one.tokens, sample(key=jax.random.key(1), top_k=3).tokens)
    top3 = np.argsort(np.asarray(one.step_logits), axis=-1)[..., -3:]
    assert (top3 == np.asarray(one.tokens)[..., None]).any(-1).all()


def test_stop_token_ends_a_row_and_text_round_trips():
    model, params = model_and_params()
    greedy = generate(model, params, PROMPTS, max_new_tokens=NEW, greedy=True)
    stop = int(greedy.tokens[0, 1])
    stopped = generate(
        model, params, PROMPTS, max_new_tokens=NEW, greedy=True, stop_token=stop, pad_id=22
    )
    row = np.asarray(greedy.tokens[0])
    at = int(np.flatnonzero(row == stop)[0])
    assert int(stopped.lengths[0]) == at + 1
    np.testing.assert_array_equal(stopped.tokens[0, : at + 1], row[: at + 1])
    assert (np.asarray(stopped.tokens[0, at + 1 :]) == 22).all()

    alphabet = "abcdefghijklmnopqrstuvw"

    class Chars:  # duck-typed tokenizer, one id per character
        def encode(self, text):
            return np.array([alphabet.index(c) for c in text], np.int32)

        def decode(self, ids):
            return "".join(alphabet[i] for i in np.asarray(ids).tolist())

    texts = ["".join(alphabet[i] for i in row) for row in PROMPTS]
    out = generate_text(model, params, Chars(), texts, max_new_tokens=NEW, greedy=True)
    assert out == [Chars().decode(row) for row in np.asarray(greedy.tokens)]


def test_an_lstm_generates_past_its_training_length():
    model, params = model_and_params()
    result = generate(model, params, [[1] * (T + 2)], max_new_tokens=T, greedy=True)
    chex.assert_shape(result.tokens, (1, T))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": -1}, r"vocab_size must be an int >= 0"),
        ({"n_layer": 0}, r"n_layer must be a positive int"),
        ({"n_embd": 2.5}, r"n_embd must be a positive int"),
        ({"block_size": 0}, r"block_size must be a positive int"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"embedding_dropout": -0.1}, r"embedding_dropout must be in \[0, 1\)"),
    ],
)
def test_bad_configs_are_rejected(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LSTMLMConfig(**kwargs)


def test_a_model_without_a_vocabulary_or_with_foreign_ids_is_refused():
    with pytest.raises(ConfigError, match="vocab_size is 0"):
        init_lstm_lm_params(LSTMLMConfig(), jax.random.key(0))
    model, params = model_and_params()
    with pytest.raises(ValueError, match=r"token id 23 is outside the vocabulary \[0, 23\)"):
        model.apply({"params": params}, jnp.array([[1, 23]]))
    with pytest.raises(ValueError, match="must be a jaxllm GPT or LSTMLM"):
        generate(object(), params, PROMPTS, max_new_tokens=2, greedy=True)  # type: ignore
