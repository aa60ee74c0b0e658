"""The BERT encoder: shapes, padding, jit, the pre-LN option and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxllm.config import ConfigError
from jaxllm.models.bert import BERT, BertConfig, init_bert_params

CONFIG = BertConfig(
    vocab_size=40, max_len=12, n_layer=2, n_head=2, n_embd=16, num_classes=3, mlm_head=True
)


@pytest.fixture(scope="module")
def params():
    return init_bert_params(CONFIG, jax.random.key(0))


def apply(params, tokens, *args, method=BERT.__call__, config=CONFIG, **kwargs):
    return BERT(config).apply({"params": params}, tokens, *args, method=method, **kwargs)


def test_every_head_has_its_documented_shape(params):
    tokens = jax.random.randint(jax.random.key(1), (3, 7), 0, 40)
    chex.assert_shape(apply(params, tokens), (3, 7, 16))
    chex.assert_shape(apply(params, tokens, method=BERT.pooled), (3, 16))
    chex.assert_shape(apply(params, tokens, method=BERT.mlm_logits), (3, 7, 40))
    chex.assert_shape(apply(params, tokens, method=BERT.class_logits), (3, 3))
    # The MLM output layer is the token embedding, transposed.
    assert "decoder" not in params and params["wte"]["embedding"].shape == (40, 16)


def test_padding_changes_nothing_at_real_tokens_and_jit_equals_eager(params):
    tokens = jax.random.randint(jax.random.key(2), (1, 5), 0, 40)
    padded = jnp.concatenate([tokens, jnp.full((1, 4), 7)], axis=1)
    mask = jnp.arange(9)[None, :] < 5
    alone = apply(params, tokens)
    eager = apply(params, padded, None, mask)
    jitted = jax.jit(lambda p, t, m: apply(p, t, None, m))(params, padded, mask)
    np.testing.assert_allclose(eager[:, :5], alone, atol=1e-5)
    np.testing.assert_allclose(jitted, eager, atol=1e-5)


def test_segments_and_dropout_matter_only_where_asked(params):
    tokens = jax.random.randint(jax.random.key(3), (2, 6), 0, 40)
    types = jnp.ones_like(tokens)
    assert not np.allclose(apply(params, tokens), apply(params, tokens, types))
    rngs = {"dropout": jax.random.key(4)}
    a = apply(params, tokens, deterministic=False, rngs=rngs)
    b = apply(params, tokens, deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(a, b)  # dropout is a function of its key
    assert not np.allclose(a, apply(params, tokens))


def test_pre_layer_norm_option_adds_a_final_norm():
    config = BertConfig(
        vocab_size=40, max_len=12, n_layer=2, n_head=2, n_embd=16, norm_position="pre"
    )
    params = init_bert_params(config, jax.random.key(5))
    assert "ln_f" in params
    out = apply(params, jnp.ones((1, 4), jnp.int32), config=config)
    # The final LayerNorm (scale 1, bias 0 at init) leaves each position zero-mean, unit-variance.
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(-1), 1.0, atol=1e-3)


def test_bad_configs_and_inputs_are_clear_errors(params):
    with pytest.raises(ConfigError, match="divisible by n_head"):
        BertConfig(vocab_size=10, n_embd=10, n_head=4)
    with pytest.raises(ConfigError, match="needs the pooler"):
        BertConfig(vocab_size=10, pooler=False, num_classes=2)
    with pytest.raises(ValueError, match="longer than BertConfig.max_len"):
        apply(params, jnp.ones((1, 13), jnp.int32))
    with pytest.raises(ValueError, match="attention_mask must be"):
        apply(params, jnp.ones((1, 4), jnp.int32), None, jnp.ones((1, 4)))
    with pytest.raises(ValueError, match="token_types must be"):
        apply(params, jnp.ones((1, 4), jnp.int32), jnp.ones((1, 5), jnp.int32))
    with pytest.raises(ValueError, match="int\\[batch, seq\\]"):
        apply(params, jnp.ones((1, 4)))
