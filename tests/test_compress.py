"""Compression: the distillation loss against PyTorch's KL divergence and against the plain
losses it reduces to, a student that learns its teacher; magnitude pruning's exact counts and
order, masks that hold through training, the schedule; int8 weights against their dequantised
float copies; and the errors."""

import flax
import flax.linen
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.compress import (
    DistillationError,
    DistillConfig,
    PruningError,
    QuantizationError,
    apply_masks,
    distillation_loss,
    int8_rows,
    keep_pruned,
    leaf_sparsities,
    magnitude_masks,
    prune_heads_and_neurons,
    quantize_int8,
    soft_target_loss,
    sparsity_of,
    sparsity_schedule,
    weight_bytes,
)
from jaxllm.config import ConfigError
from jaxllm.generate import generate
from jaxllm.losses import classification_loss, kl_divergence, language_model_loss
from jaxllm.models import GPT, GPTConfig, init_params
from jaxllm.models.classifiers import ClassifierConfig, TextClassifier, init_classifier
from jaxllm.train import create_train_state, make_train_step

TEACHER = GPTConfig(vocab_size=24, block_size=16, n_layer=2, n_head=2, n_embd=32)
STUDENT = GPTConfig(vocab_size=24, block_size=16, n_layer=1, n_head=2, n_embd=16)


def lm_batch(seed=0, batch=4, seq=12, vocab=24):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, (batch, seq + 1))
    return {
        "inputs": jnp.asarray(tokens[:, :-1], jnp.int32),
        "targets": jnp.asarray(tokens[:, 1:], jnp.int32),
    }


# Distillation ----------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.floats(0.5, 8.0))
def test_soft_target_loss_is_torch_kl_div_times_t_squared(seed, temperature):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(6, 9)).astype(np.float32) * 3
    student = rng.normal(size=(6, 9)).astype(np.float32) * 3
    ours = soft_target_loss(jnp.asarray(teacher), jnp.asarray(student), temperature)
    t = torch.from_numpy
    theirs = torch.nn.functional.kl_div(
        torch.log_softmax(t(student) / temperature, -1),
        torch.softmax(t(teacher) / temperature, -1),
        reduction="batchmean",
    ) * temperature**2  # fmt: skip
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5, abs=1e-6)


def test_kl_is_zero_for_equal_logits_and_respects_the_mask():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 7)), jnp.float32)
    assert float(kl_divergence(logits, logits)) == pytest.approx(0.0, abs=1e-6)
    other = logits.at[1].set(0.0)
    mask = jnp.asarray([[1] * 5, [0] * 5])
    assert float(kl_divergence(logits, other, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_divergence(logits, other)) > 0
    certain = jnp.asarray([[0.0, -jnp.inf, -jnp.inf]])  # a teacher sure of class 0
    assert float(kl_divergence(certain, jnp.zeros((1, 3)))) == pytest.approx(np.log(3), rel=1e-6)


def test_alpha_zero_is_the_student_alone_and_the_soft_term_vanishes_against_itself():
    student, teacher = GPT(STUDENT), GPT(TEACHER)
    params = init_params(STUDENT, jax.random.key(1))
    teacher_params = init_params(TEACHER, jax.random.key(2))
    batch = lm_batch()
    alone, alone_metrics = language_model_loss(student)(params, batch, None)
    hard_only = distillation_loss(student, teacher, teacher_params, DistillConfig(2.0, 0.0))
    loss, metrics = hard_only(params, batch, None)
    assert float(loss) == pytest.approx(float(alone), rel=1e-6)
    assert float(metrics["tokens"]) == float(alone_metrics["tokens"]) == 48
    assert float(metrics["soft_loss"]) > 0
    own = distillation_loss(student, student, params, DistillConfig(3.0, 1.0))
    grads = jax.grad(lambda p: own(p, batch, None)[0])(params)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) < 1e-6


def test_a_student_trained_on_the_teacher_alone_comes_to_agree_with_it():
    student, teacher = GPT(STUDENT), GPT(TEACHER)
    teacher_params = init_params(TEACHER, jax.random.key(2))
    teacher_params = jax.tree.map(lambda p: p * 8, teacher_params)  # a confident teacher
    loss_fn = distillation_loss(student, teacher, teacher_params, DistillConfig(1.0, 1.0))
    optimizer = optax.adam(1e-2)
    state = create_train_state(
        init_params(STUDENT, jax.random.key(1)), optimizer, jax.random.key(0)
    )
    step = jax.jit(make_train_step(loss_fn, optimizer))
    batch = lm_batch(seed=3)
    before = float(loss_fn(state.params, batch, None)[1]["soft_loss"])
    for _ in range(60):
        state, _ = step(state, batch)
    after = float(loss_fn(state.params, batch, None)[1]["soft_loss"])
    assert after < 0.5 * before


def test_a_classifier_distils_with_the_classifier_batch():
    big = ClassifierConfig("bag", vocab_size=30, num_classes=3, embed_dim=16, hidden_size=16)
    small = ClassifierConfig("bag", vocab_size=30, num_classes=3, embed_dim=4, hidden_size=4)
    rng = np.random.default_rng(0)
    batch = {
        "tokens": jnp.asarray(rng.integers(0, 30, (5, 6)), jnp.int32),
        "mask": jnp.ones((5, 6), bool),
        "labels": jnp.asarray(rng.integers(0, 3, 5), jnp.int32),
    }
    params = init_classifier(small, jax.random.key(0))
    loss_fn = distillation_loss(
        TextClassifier(small), TextClassifier(big), init_classifier(big, jax.random.key(1)),
        DistillConfig(2.0, 0.0), task="classifier",
    )  # fmt: skip
    alone = classification_loss(TextClassifier(small))(params, batch, None)[0]
    assert float(loss_fn(params, batch, None)[0]) == pytest.approx(float(alone), rel=1e-6)


def test_distillation_refuses_different_vocabularies_and_bad_settings():
    other = GPTConfig(vocab_size=30, block_size=16, n_layer=1, n_head=2, n_embd=16)
    with pytest.raises(DistillationError, match="vocab_size=24 and the student vocab_size=30"):
        distillation_loss(GPT(other), GPT(TEACHER), None)
    with pytest.raises(DistillationError, match="predicts 5 classes"):
        soft_target_loss(jnp.zeros((2, 5)), jnp.zeros((2, 4)), 1.0)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        DistillConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="alpha must be in"):
        DistillConfig(alpha=1.5)


# Pruning -----------------------------------------------------------------------------------


def random_params(seed):
    rng = np.random.default_rng(seed)
    return {
        "embed": {"embedding": jnp.asarray(rng.normal(size=(10, 4)), jnp.float32)},
        "h_0": {"kernel": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32),
                "bias": jnp.asarray(rng.normal(size=6), jnp.float32)},
        "h_1": {"kernel": jnp.asarray(rng.normal(size=(6, 3)) * 3, jnp.float32)},
    }  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), sparsity=st.floats(0.0, 0.95))
def test_global_pruning_drops_exactly_the_smallest_weights_of_all_kernels(seed, sparsity):
    params = random_params(seed)
    pruned = apply_masks(params, magnitude_masks(params, sparsity))
    kernels = np.concatenate([np.asarray(params[k]["kernel"]).ravel() for k in ("h_0", "h_1")])
    kept = np.concatenate([np.asarray(pruned[k]["kernel"]).ravel() for k in ("h_0", "h_1")])
    dropped = kernels[kept == 0]
    assert dropped.size == round(sparsity * kernels.size)
    if dropped.size and dropped.size < kernels.size:
        assert np.abs(dropped).max() <= np.abs(kept[kept != 0]).min()
    np.testing.assert_array_equal(pruned["embed"]["embedding"], params["embed"]["embedding"])
    np.testing.assert_array_equal(pruned["h_0"]["bias"], params["h_0"]["bias"])
    assert sparsity_of(pruned) == pytest.approx(dropped.size / kernels.size)


def test_layer_pruning_gives_every_kernel_the_same_share_and_global_does_not():
    params = random_params(0)
    by_layer = leaf_sparsities(apply_masks(params, magnitude_masks(params, 0.5, scope="layer")))
    assert by_layer == {"h_0/kernel": 0.5, "h_1/kernel": 0.5}
    spread = leaf_sparsities(apply_masks(params, magnitude_masks(params, 0.5)))
    assert spread["h_0/kernel"] > 0.5 > spread["h_1/kernel"]  # h_1's weights are 3x larger


def test_pruned_weights_stay_zero_through_adamw_and_the_rest_train():
    params = random_params(1)
    masks = magnitude_masks(params, 0.6)
    params = apply_masks(params, masks)
    optimizer = optax.chain(optax.adamw(0.05, weight_decay=0.1), keep_pruned(masks))
    opt_state = optimizer.init(params)

    def loss(p):
        x = jnp.ones((3, 4))
        return jnp.sum(
            (jnp.tanh(x @ p["h_0"]["kernel"] + p["h_0"]["bias"]) @ p["h_1"]["kernel"]) ** 2
        )

    start = params
    for _ in range(5):
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        params = optax.apply_updates(params, updates)
    for name in ("h_0", "h_1"):
        kernel, keep = np.asarray(params[name]["kernel"]), np.asarray(masks[name]["kernel"])
        assert np.all(kernel[~keep] == 0)
        assert np.all(kernel[keep] != np.asarray(start[name]["kernel"])[keep])


def test_the_schedule_rises_fast_then_slowly_to_the_final_sparsity():
    schedule = sparsity_schedule(0.8, 4)
    assert schedule[-1] == pytest.approx(0.8)
    steps = np.diff([0.0, *schedule])
    assert np.all(steps > 0) and np.all(np.diff(steps) < 0)
    assert sparsity_schedule(0.5, 1, initial=0.2) == [pytest.approx(0.5)]


def test_pruning_refuses_bad_amounts_and_masks_that_do_not_fit():
    params = random_params(2)
    for bad in (-0.1, 1.0):
        with pytest.raises(PruningError, match=r"sparsity must be in \[0, 1\)"):
            magnitude_masks(params, bad)
    masks = magnitude_masks(params, 0.5)
    wrong = {**masks, "h_1": {"kernel": jnp.ones((3, 6), bool)}}
    with pytest.raises(PruningError, match="h_1/kernel has shape"):
        apply_masks(params, wrong)
    with pytest.raises(PruningError, match="structure does not match"):
        keep_pruned({"h_0": masks["h_0"]}).init(params)
    with pytest.raises(PruningError, match="no parameter leaf was chosen"):
        magnitude_masks({"bias": jnp.ones(3)}, 0.5)
    with pytest.raises(PruningError, match="initial <= final"):
        sparsity_schedule(0.3, 2, initial=0.5)


# Int8 weights --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_int8_rows_keep_each_rows_largest_weight_and_are_within_half_a_step(seed, scale):
    weights = np.random.default_rng(seed).normal(size=(7, 11)).astype(np.float32) * scale
    weights[3] = 0.0  # a row of zeros
    quantized, steps = (np.asarray(a) for a in int8_rows(weights))
    restored = quantized.astype(np.float32) * steps[:, None]
    assert quantized.dtype == np.int8 and np.abs(quantized).max() <= 127
    assert np.all(np.abs(restored - weights) <= steps[:, None] / 2 * (1 + 1e-5))
    largest = np.argmax(np.abs(weights), axis=1)
    np.testing.assert_allclose(
        restored[np.arange(7), largest], weights[np.arange(7), largest], rtol=1e-6
    )
    assert np.all(restored[3] == 0)


@pytest.mark.parametrize("rows", [1, 8, 40])  # the three ways Dense multiplies int8 weights
def test_an_int8_gpt_computes_what_its_dequantised_weights_do_in_float(rows):
    config = GPTConfig(vocab_size=24, block_size=48, n_layer=2, n_head=2, n_embd=16)
    model, params = GPT(config), init_params(config, jax.random.key(4))
    int8 = quantize_int8(model, params, jnp.zeros((1, 4), jnp.int32))
    dequantised = {}  # the float model with each kernel replaced by int8 · scale, by hand
    flat_int8 = flax.traverse_util.flatten_dict(int8)
    for path, value in flax.traverse_util.flatten_dict(params).items():
        if path[-1] != "kernel":
            dequantised[path] = value
            continue
        q, s = flat_int8[(*path[:-1], "kernel_int8")], flat_int8[(*path[:-1], "kernel_scale")]
        rows_out = np.asarray(q, np.float32) * np.asarray(s)[:, None]  # [out, in]
        out_in = path[-2] == "c_proj" and path[-3] == "mlp"  # the GPT's one [out, in] kernel
        dequantised[path] = jnp.asarray(rows_out if out_in else rows_out.T)
    dequantised_flat = dict(dequantised)
    dequantised = flax.traverse_util.unflatten_dict(dequantised)
    for path, original in flax.traverse_util.flatten_dict(params).items():
        if path[-1] == "kernel":  # within half a step of the original, in its own layout
            step = np.asarray(flat_int8[(*path[:-1], "kernel_scale")])
            error = np.abs(np.asarray(dequantised_flat[path]) - np.asarray(original))
            out_axis = 0 if (path[-2] == "c_proj" and path[-3] == "mlp") else 1
            assert np.all(error <= np.expand_dims(step, 1 - out_axis) / 2 * (1 + 1e-5)), path
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 24, (1, rows)), jnp.int32)
    ours = model.apply({"params": int8}, tokens)
    np.testing.assert_allclose(ours, model.apply({"params": dequantised}, tokens), atol=2e-5)
    assert float(jnp.abs(ours - model.apply({"params": params}, tokens)).max()) < 0.05
    assert weight_bytes(int8) < 0.5 * weight_bytes(params)


def test_int8_generation_runs_and_bad_requests_are_refused():
    config = GPTConfig(vocab_size=24, block_size=32, n_layer=1, n_head=2, n_embd=16)
    model, params = GPT(config), init_params(config, jax.random.key(0))
    params = jax.tree.map(lambda p: p * 20, params)  # confident logits: a stable greedy path
    int8 = quantize_int8(model, params, jnp.zeros((1, 4), jnp.int32))
    ours = generate(model, int8, [[1, 2, 3]], max_new_tokens=8, greedy=True).tokens
    theirs = generate(model, params, [[1, 2, 3]], max_new_tokens=8, greedy=True).tokens
    np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(QuantizationError, match="already int8"):
        quantize_int8(model, int8, jnp.zeros((1, 4), jnp.int32))
    with pytest.raises(QuantizationError, match="no jaxllm.nn.Dense"):
        quantize_int8(Doubling(), {}, jnp.ones(2))


class Doubling(flax.linen.Module):
    """A model without a dense layer."""

    @flax.linen.compact
    def __call__(self, x):
        return x * 2


# Structured pruning ---------------------------------------------------------------------------

BIASED = GPTConfig(vocab_size=24, block_size=32, n_layer=2, n_head=4, n_embd=32, bias=True)


def zeroed_heads_and_neurons(params, pruned_config, pruned_params):
    """The original parameters with every dropped head's output rows and dropped neuron's
    output column set to zero, found by matching the kept weights: the same function as the
    pruned model, computed by the full-size one."""
    masked = jax.tree.map(np.array, params)
    d = pruned_config.head_dim
    for name in (k for k in params if k.startswith("h_")):
        full_rows = np.asarray(params[name]["attn"]["c_proj"]["kernel"])  # [H·D, C]
        kept = np.asarray(pruned_params[name]["attn"]["c_proj"]["kernel"])
        for h in range(full_rows.shape[0] // d):
            block = full_rows[h * d : (h + 1) * d]
            if not any(
                np.array_equal(block, kept[j * d : (j + 1) * d]) for j in range(len(kept) // d)
            ):
                masked[name]["attn"]["c_proj"]["kernel"][h * d : (h + 1) * d] = 0.0
        full_cols = np.asarray(params[name]["mlp"]["c_proj"]["kernel"])  # [C, M]
        kept_cols = np.asarray(pruned_params[name]["mlp"]["c_proj"]["kernel"]).T
        for j in range(full_cols.shape[1]):
            if not any(np.array_equal(full_cols[:, j], col) for col in kept_cols):
                masked[name]["mlp"]["c_proj"]["kernel"][:, j] = 0.0
    return masked


ROTARY = GPTConfig(vocab_size=24, block_size=32, n_layer=2, n_head=4, n_embd=32,
                   positions="rotary")  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "heads", "width"),
    [(BIASED, 4, 128), (BIASED, 2, 64), (BIASED, 1, 17), (ROTARY, 2, 40)],
)
def test_structured_pruning_is_the_full_model_with_the_dropped_parts_zeroed(shape, heads, width):
    params = init_params(shape, jax.random.key(6))
    params = jax.tree.map(
        lambda p: p + 0.05 * jax.random.normal(jax.random.key(7), p.shape), params
    )
    config, pruned = prune_heads_and_neurons(shape, params, heads=heads, mlp_width=width)
    assert (config.n_head, config.head_dim, config.mlp_hidden) == (heads, 8, width)
    assert pruned["h_0"]["attn"]["c_attn"]["kernel"].shape == (32, 3 * heads * 8)
    assert pruned["h_1"]["mlp"]["c_fc"]["kernel"].shape == (32, width)
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 24, (2, 10)), jnp.int32)
    ours = GPT(config).apply({"params": pruned}, tokens)
    masked = zeroed_heads_and_neurons(params, config, pruned)
    np.testing.assert_allclose(ours, GPT(shape).apply({"params": masked}, tokens), atol=2e-5)
    if heads == 4 and width == 128:  # nothing dropped: the original model, GPT-2's shape
        np.testing.assert_allclose(ours, GPT(shape).apply({"params": params}, tokens), atol=2e-5)
        assert config.head_size == config.mlp_width == 0
    prompt = [[1, 2, 3, 4]]  # the KV cache, with narrower heads: as the full model decodes
    small = generate(GPT(config), pruned, prompt, max_new_tokens=6, greedy=True).tokens
    full = generate(GPT(shape), masked, prompt, max_new_tokens=6, greedy=True).tokens
    np.testing.assert_array_equal(small, full)


def test_structured_pruning_keeps_the_heaviest_heads_and_refuses_bad_sizes():
    params = jax.tree.map(np.array, init_params(BIASED, jax.random.key(0)))
    params["h_0"]["attn"]["c_proj"]["kernel"][2 * 8 : 3 * 8] *= 50  # head 2 is the heaviest
    _, pruned = prune_heads_and_neurons(BIASED, params, heads=1, mlp_width=8)
    np.testing.assert_array_equal(
        pruned["h_0"]["attn"]["c_proj"]["kernel"], params["h_0"]["attn"]["c_proj"]["kernel"][16:24]
    )
    with pytest.raises(PruningError, match=r"heads must be in \[1, 4\]"):
        prune_heads_and_neurons(BIASED, params, heads=0, mlp_width=8)
    with pytest.raises(PruningError, match=r"mlp_width must be in \[1, 128\]"):
        prune_heads_and_neurons(BIASED, params, heads=2, mlp_width=129)
