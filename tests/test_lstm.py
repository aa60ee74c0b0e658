"""The LSTM layer: Flax's LSTM cell as the reference, padding, and variational dropout."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.nn.lstm import LSTM, reverse_padded, variational_keep_mask, word_type_dropout

B, T, D, H = 3, 7, 5, 4
LENGTHS = np.array([7, 4, 1])


def inputs(seed: int = 0) -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(seed), (B, T, D))
    mask = jnp.arange(T)[None, :] < jnp.asarray(LENGTHS)[:, None]
    return x, mask


def flax_cell_params(direction: dict) -> dict:
    """Our fused ``[in, 4H]`` / ``[H, 4H]`` / ``[4H]`` weights as ``flax.linen.LSTMCell``'s."""
    x_parts = jnp.split(direction["input"]["kernel"], 4, axis=1)
    h_parts = jnp.split(direction["recurrent_kernel"], 4, axis=1)
    biases = jnp.split(direction["bias"], 4)
    params = {}
    for gate, wx, wh, b in zip("ifgo", x_parts, h_parts, biases, strict=True):
        params[f"i{gate}"] = {"kernel": wx}
        params[f"h{gate}"] = {"kernel": wh, "bias": b}
    return params


class FlaxReference(nn.Module):
    """Flax's own LSTM cell over its own RNN / Bidirectional wrappers, stacked."""

    num_layers: int
    bidirectional: bool

    @nn.compact
    def __call__(self, x, lengths):
        for layer in range(self.num_layers):
            forward = nn.RNN(nn.LSTMCell(H, name=f"layer_{layer}_forward"))
            if self.bidirectional:
                backward = nn.RNN(nn.LSTMCell(H, name=f"layer_{layer}_backward"))
                x = nn.Bidirectional(forward, backward)(x, seq_lengths=lengths)
            else:
                x = forward(x, seq_lengths=lengths)
        return x


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (2, True)])
def test_equals_flax_lstm_cells_with_the_same_weights(num_layers, bidirectional):
    x, mask = inputs()
    model = LSTM(H, num_layers=num_layers, bidirectional=bidirectional)
    params = model.init(jax.random.key(1), x, mask)["params"]
    outputs, final = model.apply({"params": params}, x, mask)
    reference = FlaxReference(num_layers, bidirectional)
    lengths = jnp.asarray(LENGTHS)
    # The reference names its cells as we name our directions (layer_<l>_<direction>).
    wrapped = {"params": {name: flax_cell_params(d) for name, d in params.items()}}
    expected = reference.apply(wrapped, x, lengths)
    real = np.asarray(mask)[..., None]
    np.testing.assert_allclose(np.where(real, outputs, 0), np.where(real, expected, 0), atol=1e-5)
    assert np.all(np.asarray(outputs)[~np.asarray(mask)] == 0)
    # The forward direction's final state is its output at each sequence's last real token.
    last = np.asarray(outputs)[np.arange(B), LENGTHS - 1, :H]
    np.testing.assert_allclose(np.asarray(final)[:, :H], last, atol=1e-6)


def test_padding_gives_each_sequence_the_state_it_has_alone():
    x, mask = inputs(2)
    model = LSTM(H, num_layers=2, bidirectional=True)
    params = model.init(jax.random.key(3), x, mask)
    batched_outputs, batched_final = jax.jit(model.apply)(params, x, mask)
    for b, length in enumerate(LENGTHS):
        alone_outputs, alone_final = model.apply(params, x[b : b + 1, :length])
        np.testing.assert_allclose(batched_final[b], alone_final[0], atol=1e-5)
        np.testing.assert_allclose(batched_outputs[b, :length], alone_outputs[0], atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 999))
def test_reverse_padded_reverses_only_the_real_steps(lengths, seed):
    x = np.random.default_rng(seed).normal(size=(6, len(lengths), 2)).astype(np.float32)
    reversed_x = np.asarray(reverse_padded(jnp.asarray(x), jnp.asarray(lengths)))  # time-major
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(reversed_x[:n, b], x[:n, b][::-1])
        np.testing.assert_array_equal(reversed_x[n:, b], x[n:, b])


def test_variational_masks_are_constant_over_time_and_differ_across_sequences():
    x = jnp.ones((8, 20, 64))
    keep = variational_keep_mask(jax.random.key(0), (8, 64), 0.5)
    dropped = x * keep[:, None, :]
    zero = np.asarray(dropped) == 0
    assert np.all(zero == zero[:, :1, :])  # the same features dropped at every time step
    patterns = {tuple(row) for row in zero[:, 0, :]}
    assert len(patterns) == 8  # each sequence has its own mask
    assert 0.35 < zero.mean() < 0.65
    np.testing.assert_allclose(np.unique(np.asarray(dropped)), [0.0, 2.0])


def test_word_type_dropout_drops_every_occurrence_of_a_word_in_a_sequence():
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 10, size=(16, 40)))
    scale = np.asarray(word_type_dropout(jax.random.key(1), tokens, 10, 0.3))
    tokens = np.asarray(tokens)
    for b in range(16):
        for word in np.unique(tokens[b]):
            assert len(set(scale[b][tokens[b] == word])) == 1  # all kept or all dropped
    # Across sequences the same word is dropped independently.
    per_sequence = [
        tuple(scale[b][tokens[b] == 3][:1]) for b in range(16) if (tokens[b] == 3).any()
    ]
    assert len(set(per_sequence)) == 2
    np.testing.assert_allclose(np.unique(scale), [0.0, 1 / 0.7], rtol=1e-6)


def test_dropout_is_a_function_of_the_key_and_off_when_deterministic():
    x, mask = inputs(4)
    model = LSTM(H, num_layers=2, bidirectional=True, dropout_rate=0.3)
    params = model.init(jax.random.key(5), x, mask)
    eval_out = model.apply(params, x, mask)
    apply = jax.jit(model.apply, static_argnames="deterministic")
    one = apply(params, x, mask, deterministic=False, rngs={"dropout": jax.random.key(6)})
    again = apply(params, x, mask, deterministic=False, rngs={"dropout": jax.random.key(6)})
    other = apply(params, x, mask, deterministic=False, rngs={"dropout": jax.random.key(7)})
    chex.assert_trees_all_equal(one, again)
    assert not np.allclose(one[0], other[0]) and not np.allclose(one[0], eval_out[0])
    no_dropout = LSTM(H, num_layers=2, bidirectional=True).apply(params, x, mask)
    chex.assert_trees_all_close(eval_out, no_dropout)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_gradients_equal_those_of_flax_lstm_cells(num_layers, bidirectional):
    """The hand-written backward pass through time against autodiff of Flax's cells."""
    x, mask = inputs(8)
    model = LSTM(H, num_layers=num_layers, bidirectional=bidirectional)
    params = model.init(jax.random.key(9), x, mask)["params"]
    directions = 2 if bidirectional else 1
    weights = jax.random.normal(jax.random.key(10), (B, T, directions * H))
    real = mask[..., None]

    def ours(p):
        outputs, final = model.apply({"params": p}, x, mask)
        return jnp.sum(jnp.where(real, outputs, 0) * weights) + jnp.sum(final**2)

    def reference(p):
        flax_params = {name: flax_cell_params(d) for name, d in p.items()}
        outputs = FlaxReference(num_layers, bidirectional).apply(
            {"params": flax_params}, x, jnp.asarray(LENGTHS)
        )
        last = outputs[jnp.arange(B), jnp.asarray(LENGTHS) - 1, :H]  # forward final state
        final = last if not bidirectional else jnp.concatenate([last, outputs[:, 0, H:]], -1)
        return jnp.sum(jnp.where(real, outputs, 0) * weights) + jnp.sum(final**2)

    chex.assert_trees_all_close(jax.grad(ours)(params), jax.grad(reference)(params), atol=2e-5)


def plain_lstm_scan(projected, mask, w_h, keep):
    """The recurrence written plainly, time-major, differentiated by JAX: the reference for
    the VJP."""
    hidden = w_h.shape[0]

    def step(carry, inputs):
        c, h = carry
        x_proj, real = inputs
        i, f, g, o = jnp.split(x_proj + (h * keep) @ w_h, 4, axis=-1)
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
        real = real[:, None]
        return (jnp.where(real, c_new, c), jnp.where(real, h_new, h)), jnp.where(real, h_new, 0)

    zeros = jnp.zeros((projected.shape[1], hidden))
    mask = jnp.ones(projected.shape[:2], bool) if mask is None else mask
    return jax.lax.scan(step, (zeros, zeros), (projected, mask))[::-1]


@pytest.mark.parametrize("masking", ["padded", "holes", "none"])
@pytest.mark.parametrize("dropout", [True, False])
def test_backward_pass_equals_autodiff(masking, dropout):
    """The hand-written VJP of the time-major scan against JAX differentiating the plain
    recurrence: with end padding, with gaps inside sequences, without a mask; with and
    without recurrent dropout."""
    from jaxllm.nn.lstm import lstm_scan

    mask = {
        "padded": inputs()[1].T,
        "holes": jax.random.bernoulli(jax.random.key(10), 0.7, (T, B)),
        "none": None,
    }[masking]
    projected = jax.random.normal(jax.random.key(11), (T, B, 4 * H))
    w_h = jax.random.normal(jax.random.key(12), (H, 4 * H)) / 2
    keep = variational_keep_mask(jax.random.key(13), (B, H), 0.4) if dropout else None
    weights = jax.random.normal(jax.random.key(14), (T, B, H))

    def loss(scan, projected, w_h):
        outputs, (c, h) = scan(projected, mask, w_h, keep)
        return jnp.sum(outputs * weights) + jnp.sum(c * h)

    plain_keep = jnp.ones((B, H)) if keep is None else keep
    ours = jax.jit(jax.grad(lambda p, w: loss(lstm_scan, p, w), argnums=(0, 1)))(projected, w_h)
    expected = jax.grad(
        lambda p, w: loss(lambda *a: plain_lstm_scan(*a[:3], plain_keep), p, w), argnums=(0, 1)
    )(projected, w_h)
    chex.assert_trees_all_close(ours, expected, atol=1e-5)


def test_stepping_from_a_state_equals_the_layer_over_the_sequence():
    """lstm_step from zero states, one step at a time, gives the LSTM's outputs; the state a
    prefix leaves (sown into FINAL_STATE) lets the rest be stepped from there."""
    from jaxllm.nn.lstm import FINAL_STATE, final_states, lstm_step

    x, _ = inputs(15)
    model = LSTM(H, num_layers=2)
    params = model.init(jax.random.key(16), x)["params"]
    (outputs, final), sown = model.apply({"params": params}, x, mutable=[FINAL_STATE])
    zeros = jnp.zeros((B, H))
    states = ((zeros, zeros), (zeros, zeros))
    step = jax.jit(lstm_step)
    for t in range(T):
        h, states = step(params, x[:, t], states)
        np.testing.assert_allclose(h, outputs[:, t], atol=1e-6)
    chex.assert_trees_all_close(final_states(sown[FINAL_STATE], 2), states, atol=1e-6)
    np.testing.assert_allclose(final, states[-1][1], atol=1e-6)
    # From the state of the first 3 steps, the 4th step's output.
    _, prefix = model.apply({"params": params}, x[:, :3], mutable=[FINAL_STATE])
    h, _ = lstm_step(params, x[:, 3], final_states(prefix[FINAL_STATE], 2))
    np.testing.assert_allclose(h, outputs[:, 3], atol=1e-6)


def test_lstm_refuses_bad_inputs_clearly():
    layer = LSTM(4, dropout_rate=0.0)
    x = jnp.ones((2, 3, 5))
    params = layer.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="not floats"):
        layer.apply(params, x, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"mask must be bool\[batch, seq\]"):
        layer.apply(params, x, jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match="float\\[batch, seq, features\\]"):
        layer.apply(params, x[0])
    with pytest.raises(ValueError, match=r"dropout_rate must be in \[0, 1\)"):
        LSTM(4, dropout_rate=1.0).init(jax.random.key(0), x)
    integer_mask = jnp.array([[1, 1, 0], [1, 0, 0]])
    chex.assert_trees_all_close(
        layer.apply(params, x, integer_mask), layer.apply(params, x, integer_mask.astype(bool))
    )
