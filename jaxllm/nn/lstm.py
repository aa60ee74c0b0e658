"""Long short-term memory (Hochreiter & Schmidhuber, 1997) over ``lax.scan``, with variational
dropout (Gal & Ghahramani, 2016) and padding masks.

One step, with the gates in PyTorch's order (input, forget, cell, output)::

    i, f, g, o = split(x_t W_x + h_{t-1} W_h + b)
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(c_t)

``x_t W_x`` does not depend on the recurrence, so it is computed for every time step as one
matrix product before the scan; the scan carries only ``h W_h``.

Variational dropout draws one mask per sequence and reuses it at every time step: on each
layer's inputs, on the recurrent state ``h_{t-1}`` inside the recurrence, and on the outputs.
:func:`word_type_dropout` drops whole word types of a sequence (every occurrence of a dropped
word), the embedding dropout of the same paper.

Decoding token by token goes on from a prompt's state: ``apply(..., mutable=[FINAL_STATE])``
also returns every layer's final ``(c, h)`` (:func:`final_states`), and :func:`lstm_step`
advances them one step with the same parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.dense import Dense

# The Flax collection each LSTMDirection sows its final (c, h) into, for decoding to go on from.
FINAL_STATE = "lstm_final_state"


def variational_keep_mask(rng: Array, shape: tuple[int, ...], rate: float) -> Array:
    """Keep-scales for variational dropout: ``0`` or ``1 / (1 - rate)``, one per sequence and
    feature, to multiply every time step with.

    Args:
      rng: the dropout key.
      shape: ``(batch, features)``.
      rate: the probability of dropping a feature of a sequence.

    Returns:
      float32[batch, features]
    """
    keep = jax.random.bernoulli(rng, 1.0 - rate, shape)
    return keep.astype(jnp.float32) / (1.0 - rate)


def word_type_dropout(rng: Array, tokens: Array, vocab_size: int, rate: float) -> Array:
    """Embedding dropout that drops whole word types: each sequence drops each word of the
    vocabulary with probability ``rate``, at every position where it occurs.

    Args:
      rng: the dropout key.
      tokens: int[batch, seq] word ids.
      vocab_size: the number of word ids.
      rate: the probability of dropping a word type from a sequence.

    Returns:
      float32[batch, seq]: ``0`` or ``1 / (1 - rate)``, to multiply the embeddings with.
    """
    keep = variational_keep_mask(rng, (tokens.shape[0], vocab_size), rate)  # (B, V)
    return jnp.take_along_axis(keep, tokens, axis=1)


def reverse_padded(x: Array, lengths: Array) -> Array:
    """Each sequence's first ``lengths[b]`` steps in reverse order, its padding left in place.

    Args:
      x: float[batch, seq, ...], padded at the end.
      lengths: int[batch].

    Returns:
      float[batch, seq, ...]; applying it twice gives ``x`` back.
    """
    t = jnp.arange(x.shape[1])[None, :]  # (1, T)
    index = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    index = index.reshape(*index.shape, *([1] * (x.ndim - 2)))
    return jnp.take_along_axis(x, index, axis=1)


def lstm_scan(
    projected: Array, mask: Array, recurrent_kernel: Array, recurrent_keep: Array | None
) -> tuple[Array, tuple[Array, Array]]:
    """Run the recurrence over time from a zero state, given the inputs already projected.

    Differentiable, with a backward pass written for speed (:func:`_lstm_scan_backward`): the
    backward scan carries only the state's gradients and emits each step's gate gradients, so
    ``∂L/∂W_h`` is one matrix product over every step after it, not a sum inside the loop.

    Args:
      projected: float[batch, seq, 4·hidden], ``x_t W_x + b`` for every step.
      mask: bool[batch, seq], ``False`` at padding: there the state is carried unchanged and
        the output is 0, so the final state is each sequence's state at its own last token.
      recurrent_kernel: float[hidden, 4·hidden], ``W_h``.
      recurrent_keep: float[batch, hidden], the variational dropout scales applied to
        ``h_{t-1}`` at every step (``None``: no dropout). Not differentiated.

    Returns:
      ``(outputs float[batch, seq, hidden], (c, h) each float[batch, hidden])``
    """
    batch, _, width = projected.shape
    if recurrent_keep is None:
        recurrent_keep = jnp.ones((batch, width // 4), projected.dtype)
    return _lstm_scan(projected, mask, recurrent_kernel, recurrent_keep)


@jax.custom_vjp
def _lstm_scan(
    projected: Array, mask: Array, recurrent_kernel: Array, recurrent_keep: Array
) -> tuple[Array, tuple[Array, Array]]:
    outputs, state, _ = _lstm_scan_forward(
        projected, mask, recurrent_kernel, recurrent_keep, save=False
    )
    return outputs, state


def _lstm_scan_forward(
    projected: Array, mask: Array, recurrent_kernel: Array, recurrent_keep: Array, *, save: bool
) -> tuple[Array, tuple[Array, Array], tuple[Array, ...] | None]:
    """The forward scan; with ``save``, also returns, time-major, what the backward pass
    needs: the gate activations ``[i, f, g, o]`` (T, B, 4H), ``c_{t-1}`` and ``tanh(c_t)``
    (T, B, H), and the recurrent input ``h_{t-1} ⊙ keep`` (T, B, H)."""
    batch, _, width = projected.shape
    zeros = jnp.zeros((batch, width // 4), projected.dtype)

    def step(carry: tuple[Array, Array], inputs: tuple[Array, Array]):
        c, h = carry
        x_proj, real = inputs  # (B, 4H), (B,)
        h_in = h * recurrent_keep
        (i, f, g, o), c_new, tanh_c, h_new = _cell(x_proj + h_in @ recurrent_kernel, c)
        real = real[:, None]
        carry = (jnp.where(real, c_new, c), jnp.where(real, h_new, h))
        saved = (jnp.concatenate([i, f, g, o], axis=-1), c, tanh_c, h_in) if save else None
        return carry, (jnp.where(real, h_new, 0.0), saved)

    time_major = (projected.swapaxes(0, 1), mask.swapaxes(0, 1))  # (T, B, ...)
    (c, h), (outputs, saved) = jax.lax.scan(step, (zeros, zeros), time_major)
    return outputs.swapaxes(0, 1), (c, h), saved


def _cell(pre: Array, c: Array) -> tuple[tuple[Array, ...], Array, Array, Array]:
    """The step's equations from its pre-activations ``x_t W_x + b + h_{t-1} W_h``
    float[batch, 4·hidden] and ``c_{t-1}`` float[batch, hidden]: the activated gates
    ``(i, f, g, o)``, ``c_t``, ``tanh(c_t)`` and ``h_t``."""
    i, f, g, o = jnp.split(pre, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c_new = f * c + i * g
    tanh_c = jnp.tanh(c_new)
    return (i, f, g, o), c_new, tanh_c, o * tanh_c


def lstm_cell_step(
    params: Mapping[str, Any], x: Array, state: tuple[Array, Array]
) -> tuple[Array, Array]:
    """One time step of an :class:`LSTMDirection` from a given state, without dropout: what
    decoding token by token runs.

    Args:
      params: the direction's parameters (``input/kernel``, ``recurrent_kernel``, ``bias``).
      x: float[batch, in], the step's input.
      state: ``(c, h)``, each float[batch, hidden].

    Returns:
      the new ``(c, h)``; ``h`` is the step's output.
    """
    c, h = state
    x_proj = x @ params["input"]["kernel"] + params["bias"]  # as LSTMDirection's projection
    _, c_new, _, h_new = _cell(x_proj + h @ params["recurrent_kernel"], c)
    return c_new, h_new


def lstm_step(
    params: Mapping[str, Any], x: Array, states: Sequence[tuple[Array, Array]]
) -> tuple[Array, tuple[tuple[Array, Array], ...]]:
    """One time step of a unidirectional :class:`LSTM` (every layer, no dropout) from each
    layer's state, e.g. the final states of a prompt (:func:`final_states`).

    Args:
      params: the ``LSTM``'s parameters.
      x: float[batch, in], the step's input to the first layer.
      states: one ``(c, h)`` per layer, each float[batch, hidden].

    Returns:
      ``(h of the last layer float[batch, hidden], every layer's new (c, h))``.
    """
    new_states = []
    for layer, state in enumerate(states):
        state = lstm_cell_step(params[_direction_name(layer, False)], x, state)
        new_states.append(state)
        x = state[1]
    return x, tuple(new_states)


def final_states(sown: Mapping[str, Any], num_layers: int) -> tuple[tuple[Array, Array], ...]:
    """Each layer's final ``(c, h)`` in the forward direction, from what an :class:`LSTM`
    sowed into the ``FINAL_STATE`` collection (its ``apply(..., mutable=[FINAL_STATE])``:
    ``variables[FINAL_STATE]`` at the LSTM's own scope)."""
    return tuple(sown[_direction_name(layer, False)]["state"] for layer in range(num_layers))


def _lstm_scan_fwd(projected, mask, recurrent_kernel, recurrent_keep):
    outputs, state, saved = _lstm_scan_forward(
        projected, mask, recurrent_kernel, recurrent_keep, save=True
    )
    return (outputs, state), (saved, mask, recurrent_kernel, recurrent_keep)


def _lstm_scan_backward(residuals, cotangents):
    """Back-propagation through time. Per step, with ``r`` 1 at real tokens and 0 at padding::

    dh = r (dH + dy_t);   dc = r dC + dh ⊙ o ⊙ (1 - tanh²(c_t))
    d[i, f, g, o] = [dc g i(1-i),  dc c_{t-1} f(1-f),  dc i (1-g²),  dh tanh(c_t) o(1-o)]
    dH ← (d[i,f,g,o] W_hᵀ) ⊙ keep + (1 - r) dH;   dC ← dc ⊙ f + (1 - r) dC
    """
    (gates, c_prev, tanh_c, h_in), mask, recurrent_kernel, recurrent_keep = residuals
    d_outputs, (d_c, d_h) = cotangents

    def step(carry: tuple[Array, Array], inputs: tuple[Array, ...]):
        dC, dH = carry
        dy, gate, c_before, tanh_ct, real = inputs
        i, f, g, o = jnp.split(gate, 4, axis=-1)
        r = real[:, None].astype(dy.dtype)
        dh = r * (dH + dy)
        dc = r * dC + dh * o * (1.0 - tanh_ct**2)
        d_pre = jnp.concatenate(
            [
                dc * g * i * (1 - i),
                dc * c_before * f * (1 - f),
                dc * i * (1 - g**2),
                dh * tanh_ct * o * (1 - o),
            ],
            axis=-1,
        )  # (B, 4H)
        dH = (d_pre @ recurrent_kernel.T) * recurrent_keep + (1.0 - r) * dH
        return (dc * f + (1.0 - r) * dC, dH), d_pre

    inputs = (d_outputs.swapaxes(0, 1), gates, c_prev, tanh_c, mask.swapaxes(0, 1))
    _, d_pre = jax.lax.scan(step, (d_c, d_h), inputs, reverse=True)  # (T, B, 4H)
    width = d_pre.shape[-1]
    d_kernel = h_in.reshape(-1, width // 4).T @ d_pre.reshape(-1, width)  # one product: (H, 4H)
    return d_pre.swapaxes(0, 1), None, d_kernel, None


_lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_backward)


class LSTMDirection(nn.Module):
    """One LSTM layer read in one direction: the input projection, then :func:`lstm_scan`.

    Parameters, the gates in the order (input, forget, cell, output): ``input/kernel:
    [in, 4·hidden]`` (``W_x``), ``recurrent_kernel: [hidden, 4·hidden]`` (``W_h``, orthogonal
    init) and ``bias: [4·hidden]`` (the forget gate's part initialised to 1, so that a new cell
    remembers; Jozefowicz et al., 2015). The final ``(c, h)`` is also sown, as ``"state"``, into
    the ``FINAL_STATE`` collection, when the caller makes it mutable.

    Attributes:
      hidden_size: the width of ``h`` and ``c``.
      reverse: read each sequence from its last real token to its first.
    """

    hidden_size: int
    reverse: bool = False

    @nn.compact
    def __call__(
        self, x: Array, mask: Array, recurrent_keep: Array | None
    ) -> tuple[Array, tuple[Array, Array]]:
        """x: float[batch, seq, in], mask: bool[batch, seq] -> (float[batch, seq, hidden],
        the final (c, h)); outputs are in the original time order either way."""
        hidden = self.hidden_size
        projection = Dense(
            4 * hidden, use_bias=False, kernel_init=nn.initializers.lecun_normal(), name="input"
        )  # one matmul for every time step
        recurrent_kernel = self.param(
            "recurrent_kernel", nn.initializers.orthogonal(), (hidden, 4 * hidden), jnp.float32
        )
        bias = self.param("bias", _forget_gate_ones, (4 * hidden,), jnp.float32)
        lengths = jnp.sum(mask, axis=1)
        if self.reverse:
            x, mask = reverse_padded(x, lengths), reverse_padded(mask, lengths)
        projected = projection(x) + bias  # (B, T, 4H)
        outputs, state = lstm_scan(projected, mask, recurrent_kernel, recurrent_keep)
        # Kept only when the caller asks for the collection (mutable=[FINAL_STATE]).
        self.sow(FINAL_STATE, "state", state, init_fn=lambda: state, reduce_fn=lambda _, new: new)
        if self.reverse:
            outputs = reverse_padded(outputs, lengths)
        return outputs, state


class LSTM(nn.Module):
    """A multi-layer, optionally bidirectional LSTM with variational dropout.

    Attributes:
      hidden_size: the width of each direction's state.
      num_layers: stacked layers; each reads the previous one's outputs.
      bidirectional: a second direction per layer reads each sequence backwards; the two
        directions' outputs are concatenated.
      dropout_rate: variational dropout on every layer's inputs, on the recurrent state, and on
        the outputs, one mask per sequence reused at every time step.
    """

    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(
        self, x: Array, mask: Array | None = None, *, deterministic: bool = True
    ) -> tuple[Array, Array]:
        """Read a batch of right-padded sequences.

        Args:
          x: float[batch, seq, in]
          mask: bool[batch, seq], ``True`` at real tokens, padding only at the end of a
            sequence (``None``: every position is real).
          deterministic: no dropout when ``True``; otherwise the ``"dropout"`` RNG is used.

        Returns:
          ``(outputs, final)``: outputs float[batch, seq, directions·hidden] (0 at padding),
          and the last layer's final ``h`` float[batch, directions·hidden]: for the forward
          direction the state at each sequence's own last token, for the backward direction
          the state after reading back to its first.
        """
        _check_inputs(x, mask, self.dropout_rate)
        mask = jnp.ones(x.shape[:2], bool) if mask is None else mask.astype(bool)
        dropout = not deterministic and self.dropout_rate > 0.0
        batch = x.shape[0]

        def keep(width: int) -> Array | None:  # a fresh per-sequence mask, when training
            if not dropout:
                return None
            rng = self.make_rng("dropout")
            return variational_keep_mask(rng, (batch, width), self.dropout_rate)

        finals: list[Array] = []
        for layer in range(self.num_layers):
            x = _scaled(x, keep(x.shape[-1]))  # variational dropout on the layer's inputs
            directions = [False, True] if self.bidirectional else [False]
            results = [
                LSTMDirection(
                    self.hidden_size, reverse=reverse, name=_direction_name(layer, reverse)
                )(x, mask, keep(self.hidden_size))
                for reverse in directions
            ]
            x = jnp.concatenate([outputs for outputs, _ in results], axis=-1)
            finals = [h for _, (_, h) in results]
        return _scaled(x, keep(x.shape[-1])), jnp.concatenate(finals, axis=-1)


def _check_inputs(x: Array, mask: Array | None, dropout_rate: float) -> None:
    """Raise ``ValueError`` naming the problem with an LSTM's inputs or dropout rate."""
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"LSTM dropout_rate must be in [0, 1), got {dropout_rate}")
    if x.ndim != 3:
        raise ValueError(f"LSTM inputs must be float[batch, seq, features], got {x.shape}")
    if mask is None:
        return
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask must be bool[batch, seq] = {x.shape[:2]}, got {mask.shape}")
    if jnp.issubdtype(mask.dtype, jnp.floating):
        raise ValueError(
            "mask must be bool (True at real tokens) or 0/1 integers, not floats: a float "
            "weight is not a padding mask"
        )


def _scaled(x: Array, keep: Array | None) -> Array:
    """``x: [batch, seq, features]`` times a per-sequence mask ``[batch, features]``, if any."""
    return x if keep is None else x * keep[:, None, :].astype(x.dtype)


def _forget_gate_ones(key: Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> Array:
    """A ``[4·hidden]`` bias: 1 for the forget gate, 0 for the others."""
    hidden = shape[0] // 4
    return jnp.zeros(shape, dtype).at[hidden : 2 * hidden].set(1.0)


def _direction_name(layer: int, reverse: bool) -> str:
    return f"layer_{layer}_{'backward' if reverse else 'forward'}"
