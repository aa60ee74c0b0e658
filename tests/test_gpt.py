"""GPT: shapes, jit == no-jit, causality, padding, KV cache, gradients, bad input."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxllm.config import ConfigError
from jaxllm.losses import language_model_loss
from jaxllm.models import GPT, GPTConfig, count_params, init_cache, init_params
from jaxllm.models.gpt import with_cpu_tuned_attention

VOCAB, BLOCK, SEQ, BATCH = 37, 24, 16, 2
CONFIGS = {
    "learned": GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32),
    "rotary": GPTConfig(
        vocab_size=VOCAB,
        block_size=BLOCK,
        n_layer=2,
        n_head=2,
        n_embd=32,
        positions="rotary",
        bias=True,
        dropout=0.1,
    ),
}


@functools.cache
def model_and_params(name):
    cfg = CONFIGS[name]
    return GPT(cfg), init_params(cfg, jax.random.key(0))


@functools.cache
def jitted_apply(name):
    model, _ = model_and_params(name)
    return jax.jit(
        lambda p, t, m, pos: model.apply({"params": p}, t, padding_mask=m, positions=pos)
    )


def random_tokens(seed, shape=(BATCH, SEQ)):
    return np.random.default_rng(seed).integers(0, VOCAB, shape).astype(np.int32)


class ModelVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("learned", "rotary")
    def test_logits_shape_and_jit_equals_no_jit(self, name):
        model, params = model_and_params(name)
        tokens = random_tokens(0)
        logits = self.variant(lambda p, t: model.apply({"params": p}, t))(params, tokens)
        chex.assert_shape(logits, (BATCH, SEQ, VOCAB))
        chex.assert_type(logits, jnp.float32)
        chex.assert_tree_all_finite(logits)
        reference = jax.jit(lambda p, t: model.apply({"params": p}, t))(params, tokens)
        chex.assert_trees_all_close(logits, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_attention_implementations_give_the_same_model(name):
    """The CPU-blocked attention gives the loss and gradients of the portable one with the same
    parameters, padding included."""
    model, params = model_and_params(name)
    blocked = GPT(
        dataclasses.replace(CONFIGS[name], attention="cpu_blocked", attention_row_groups=2)
    )
    tokens = random_tokens(5)
    mask = np.arange(SEQ)[None, :] < np.array([[SEQ], [SEQ - 5]])

    def loss(module):
        def real_tokens_loss(p):
            logits = module.apply({"params": p}, tokens, padding_mask=mask)
            return jnp.sum(jnp.where(mask[..., None], logits, 0))

        return real_tokens_loss

    chex.assert_trees_all_close(
        jax.jit(jax.value_and_grad(loss(blocked)))(params),
        jax.jit(jax.value_and_grad(loss(model)))(params),
        atol=1e-4,
        rtol=1e-4,
    )


def test_cpu_tuned_attention_is_chosen_from_the_machine_given():
    config = CONFIGS["learned"]
    one_cpu = with_cpu_tuned_attention(config, "cpu", 1)
    assert (one_cpu.attention, one_cpu.attention_row_groups) == ("cpu_blocked", 2)
    several = with_cpu_tuned_attention(config, "cpu", 8)
    assert (several.attention, several.attention_row_groups) == ("cpu_blocked", 1)
    assert with_cpu_tuned_attention(config, "gpu", 1) == config
    assert (config.attention, config.attention_row_groups) == ("jax", 1)  # the portable default


def test_every_dense_parameter_is_a_kernel_and_the_mlp_output_is_stored_out_in():
    cfg = CONFIGS["learned"]
    _, params = model_and_params("learned")
    names = {path[-1].key for path, _ in jax.tree_util.tree_leaves_with_path(params)}
    assert "weight" not in names and "kernel" in names
    assert params["h_0"]["mlp"]["c_proj"]["kernel"].shape == (cfg.n_embd, 4 * cfg.n_embd)
    assert params["h_0"]["mlp"]["c_fc"]["kernel"].shape == (cfg.n_embd, 4 * cfg.n_embd)


def test_param_count_and_weight_tying():
    cfg = CONFIGS["learned"]
    _, params = model_and_params("learned")
    assert "lm_head" not in params  # the output projection is the token embedding
    c, L, V, T = cfg.n_embd, cfg.n_layer, cfg.vocab_size, cfg.block_size
    per_layer = c * 3 * c + c * c + c * 4 * c + 4 * c * c + 2 * c  # attn, mlp, 2 LayerNorm scales
    assert count_params(params) == V * c + T * c + L * per_layer + c


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=10, deadline=None)
@given(t=st.integers(0, SEQ - 2), seed=st.integers(0, 2**16))
def test_future_tokens_never_change_past_logits(name, t, seed):
    _, params = model_and_params(name)
    apply = jitted_apply(name)
    tokens = random_tokens(seed)
    changed = tokens.copy()
    changed[:, t + 1 :] = random_tokens(seed + 1)[:, t + 1 :]
    before = apply(params, tokens, None, None)
    after = apply(params, changed, None, None)
    np.testing.assert_allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-5)
    assert not np.allclose(before[:, t + 1 :], after[:, t + 1 :], atol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=8, deadline=None)
@given(n_pad=st.integers(1, SEQ - 1), seed=st.integers(0, 2**16))
def test_padding_never_changes_real_tokens(name, n_pad, seed):
    """Left padding: whatever the padding tokens are, the real tokens' logits are those of the
    unpadded sequence."""
    _, params = model_and_params(name)
    apply = jitted_apply(name)
    real = random_tokens(seed, (1, SEQ - n_pad))
    mask = np.arange(SEQ)[None, :] >= n_pad
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    outs = []
    for pad_seed in (seed + 1, seed + 2):
        padded = np.concatenate([random_tokens(pad_seed, (1, n_pad)), real], axis=1)
        outs.append(apply(params, padded, mask, positions)[:, n_pad:])
    alone = jax.jit(lambda p, t: model_and_params(name)[0].apply({"params": p}, t))(params, real)
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    np.testing.assert_allclose(outs[0], alone, atol=1e-4)


@pytest.mark.parametrize("name", CONFIGS)
def test_kv_cache_matches_full_recomputation(name):
    model, params = model_and_params(name)
    tokens = random_tokens(3)
    full = model.apply({"params": params}, tokens)
    cache = init_cache(CONFIGS[name], BATCH, BLOCK)
    pieces = []
    for lo, hi in [(0, 5), (5, 6), (6, 12), (12, SEQ)]:
        logits, cache = model.apply({"params": params}, tokens[:, lo:hi], cache=cache)
        pieces.append(logits)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)
    assert int(cache.index) == SEQ


def test_dropout_is_random_only_in_training():
    model, params = model_and_params("rotary")
    tokens = random_tokens(4)
    a = model.apply({"params": params}, tokens, train=True, rngs={"dropout": jax.random.key(1)})
    b = model.apply({"params": params}, tokens, train=True, rngs={"dropout": jax.random.key(2)})
    c = model.apply({"params": params}, tokens, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(
        model.apply({"params": params}, tokens), model.apply({"params": params}, tokens)
    )


def test_loss_gradient_matches_finite_differences():
    """The model computes in float32, so the finite-difference step and tolerance are float32's."""
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, bias=True)
    model = GPT(cfg)
    params = init_params(cfg, jax.random.key(0))
    tokens = np.random.default_rng(0).integers(0, 11, (2, 7))
    batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}
    loss_fn = language_model_loss(model)
    check_grads(
        lambda p: loss_fn(p, batch, None)[0],
        (params,),
        order=1,
        modes=("rev",),
        eps=1e-3,
        atol=1e-2,
        rtol=1e-2,
    )


def test_bad_input_errors():
    model, params = model_and_params("learned")
    with pytest.raises(ValueError, match="longer than the model's context"):
        model.apply({"params": params}, np.zeros((1, BLOCK + 1), np.int32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.apply({"params": params}, np.full((1, 4), VOCAB, np.int32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.apply({"params": params}, np.full((1, 4), -1, np.int32))
    with pytest.raises(ValueError, match="integer token ids"):
        model.apply({"params": params}, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="int\\[batch, seq\\]"):
        model.apply({"params": params}, np.zeros((4,), np.int32))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        init_cache(CONFIGS["learned"], 1, BLOCK + 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_embd": 30, "n_head": 4}, "divisible"),
        ({"positions": "sinusoid"}, "positions"),
        ({"dropout": 1.0}, "dropout"),
        ({"n_layer": 0}, "n_layer"),
        ({"dtype": "float64"}, "dtype"),
        (
            {"attention": "flash"},
            r"GPTConfig.attention must be one of \['jax', 'cpu_blocked'\], got 'flash'",
        ),
        (
            {"attention": "cpu_blocked", "attention_row_groups": 0},
            "attention_row_groups must be an int >= 1",
        ),
        ({"attention_row_groups": 2}, "applies to attention='cpu_blocked' only"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GPTConfig(vocab_size=10, **kwargs)
