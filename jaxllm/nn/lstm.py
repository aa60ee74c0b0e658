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
import jax.core
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
      x: float[seq, batch, ...], time-major, padded at the end of each sequence.
      lengths: int[batch].

    Returns:
      float[seq, batch, ...]; applying it twice gives ``x`` back.
    """
    t = jnp.arange(x.shape[0])[:, None]  # (T, 1)
    index = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    index = index.reshape(*index.shape, *([1] * (x.ndim - 2)))
    return jnp.take_along_axis(x, index, axis=0)


@jax.custom_vjp
def _lstm_scan(
    projected: Array, mask: Array | None, recurrent_kernel: Array, recurrent_keep: Array | None
) -> tuple[Array, tuple[Array, Array]]:
    outputs, state, _ = _lstm_scan_forward(projected, mask, recurrent_kernel, recurrent_keep)
    return outputs, state


def lstm_scan(
    projected: Array, mask: Array | None, recurrent_kernel: Array, recurrent_keep: Array | None
) -> tuple[Array, tuple[Array, Array]]:
    """Run the recurrence over time from a zero state, given the inputs already projected.

    Time-major, as the loop runs. Differentiable, with a backward pass written for speed
    (:func:`_lstm_scan_backward`): the backward scan carries only the state's gradients and
    emits each step's gate gradients, so ``∂L/∂W_h`` is one matrix product over every step
    after it, not a sum inside the loop.

    Args:
      projected: float[seq, batch, 4·hidden], ``x_t W_x + b`` for every step.
      mask: bool[seq, batch], ``False`` at padding: there the state is carried unchanged and
        the output is 0, so the final state is each sequence's state at its own last token
        (``None``: every step is real, and the loop skips the masking).
      recurrent_kernel: float[hidden, 4·hidden], ``W_h``.
      recurrent_keep: float[batch, hidden], the variational dropout scales applied to
        ``h_{t-1}`` at every step (``None``: no dropout). Not differentiated.

    Returns:
      ``(outputs float[seq, batch, hidden], (c, h) each float[batch, hidden])``
    """
    return _lstm_scan(projected, mask, recurrent_kernel, recurrent_keep)


def _lstm_scan_forward(
    projected: Array, mask: Array | None, recurrent_kernel: Array, recurrent_keep: Array | None
) -> tuple[Array, tuple[Array, Array], tuple[Any, ...]]:
    """The forward scan. Also returns, time-major, what the backward pass needs: the activated
    gates ``(i, f, g, o)`` and the carried ``c``, each float[seq, batch, hidden], and (with a
    mask) the carried ``h`` (without one it equals the outputs)."""
    _, batch, width = projected.shape
    zeros = jnp.zeros((batch, width // 4), projected.dtype)

    def step(carry: tuple[Array, Array], inputs: Any):
        c, h = carry
        x_proj, real = inputs  # (B, 4H), (B,) or None
        h_in = h if recurrent_keep is None else h * recurrent_keep
        gates, c_new, h_new = _cell(x_proj + h_in @ recurrent_kernel, c)
        if real is None:
            return (c_new, h_new), (h_new, gates, c_new, None)
        real = real[:, None]
        c_new, output, h_new = (
            jnp.where(real, c_new, c),
            jnp.where(real, h_new, 0.0),
            jnp.where(real, h_new, h),
        )
        return (c_new, h_new), (output, gates, c_new, h_new)

    (c, h), (outputs, gates, cs, hs) = jax.lax.scan(step, (zeros, zeros), (projected, mask))
    return outputs, (c, h), (gates, cs, outputs if hs is None else hs)


def _activate(pre: Array) -> Array:
    """σ on the input, forget and output gates' pre-activations and tanh on the cell input's,
    in one elementwise pass over float[batch, 4·hidden] (``tanh(x) = 2σ(2x) - 1``): the loop
    then runs one fused kernel per step where four slices would run four."""
    hidden = pre.shape[-1] // 4
    is_cell_input = jnp.arange(4 * hidden) // hidden == 2
    sigma = jax.nn.sigmoid(jnp.where(is_cell_input, 2.0 * pre, pre))
    return jnp.where(is_cell_input, 2.0 * sigma - 1.0, sigma)


def _cell(pre: Array, c: Array) -> tuple[tuple[Array, ...], Array, Array]:
    """The step's equations from its pre-activations ``x_t W_x + b + h_{t-1} W_h``
    float[batch, 4·hidden] and ``c_{t-1}`` float[batch, hidden]: the activated gates
    ``(i, f, g, o)``, ``c_t`` and ``h_t``."""
    i, f, g, o = jnp.split(_activate(pre), 4, axis=-1)
    c_new = f * c + i * g
    return (i, f, g, o), c_new, o * jnp.tanh(c_new)


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
    _, c_new, h_new = _cell(x_proj + h @ params["recurrent_kernel"], c)
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
    outputs, state, (gates, cs, hs) = _lstm_scan_forward(
        projected, mask, recurrent_kernel, recurrent_keep
    )
    return (outputs, state), (gates, cs, hs, mask, recurrent_kernel, recurrent_keep)


def _lstm_scan_backward(residuals, cotangents):
    """Back-propagation through time. Per step, with ``r`` 1 at real tokens and 0 at padding::

    dh = r (dH + dy_t);   dc = r dC + dh ⊙ o ⊙ (1 - tanh²(c_t))
    d[i, f, g, o] = [dc g i(1-i),  dc c_{t-1} f(1-f),  dc i (1-g²),  dh tanh(c_t) o(1-o)]
    dH ← (d[i,f,g,o] W_hᵀ) ⊙ keep + (1 - r) dH;   dC ← dc ⊙ f + (1 - r) dC

    ``c_{t-1}`` and ``h_{t-1}`` are the carried states one step earlier (zero before the
    first); ``tanh(c_t)`` is recomputed, cheaper than storing it.
    """
    gates, cs, hs, mask, recurrent_kernel, recurrent_keep = residuals
    d_outputs, (d_c, d_h) = cotangents
    kernel_t = recurrent_kernel.T  # (4H, H), transposed once, outside the loop

    def step(carry: tuple[Array, Array], inputs: Any):
        dC, dH = carry
        dy, (i, f, g, o), c_t, c_before, real = inputs
        r = None if real is None else real[:, None].astype(dy.dtype)
        dh = dH + dy if r is None else r * (dH + dy)
        tanh_c = jnp.tanh(c_t)
        dc = (dC if r is None else r * dC) + dh * o * (1.0 - tanh_c**2)
        d_pre = jnp.concatenate(
            [
                dc * g * i * (1 - i),
                dc * c_before * f * (1 - f),
                dc * i * (1 - g**2),
                dh * tanh_c * o * (1 - o),
            ],
            axis=-1,
        )  # (B, 4H)
        dH_new = d_pre @ kernel_t
        dH_new = dH_new if recurrent_keep is None else dH_new * recurrent_keep
        dC_new = dc * f
        if r is not None:  # padding passes the state's gradients on unchanged
            dC_new, dH_new = dC_new + (1.0 - r) * dC, dH_new + (1.0 - r) * dH
        return (dC_new, dH_new), d_pre

    inputs = (d_outputs, gates, cs, _one_step_earlier(cs), mask)
    _, d_pre = jax.lax.scan(step, (d_c, d_h), inputs, reverse=True)  # (T, B, 4H)
    h_in = _one_step_earlier(hs)
    h_in = h_in if recurrent_keep is None else h_in * recurrent_keep
    width = d_pre.shape[-1]
    d_kernel = h_in.reshape(-1, width // 4).T @ d_pre.reshape(-1, width)  # one product: (H, 4H)
    return d_pre, None, d_kernel, None


def _one_step_earlier(x: Array) -> Array:
    """float[seq, batch, hidden] shifted one step later in time, zeros first: each step's
    value of the step before."""
    return jnp.concatenate([jnp.zeros_like(x[:1]), x[:-1]])


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
        self, x: Array, mask: Array | None, recurrent_keep: Array | None
    ) -> tuple[Array, tuple[Array, Array]]:
        """Time-major, as :func:`lstm_scan`: x: float[seq, batch, in], mask: bool[seq, batch]
        or ``None`` (no padding) -> (float[seq, batch, hidden], the final (c, h)); outputs are
        in the original time order either way."""
        hidden = self.hidden_size
        projection = Dense(
            4 * hidden, use_bias=False, kernel_init=nn.initializers.lecun_normal(), name="input"
        )  # one matmul for every time step
        recurrent_kernel = self.param(
            "recurrent_kernel", nn.initializers.orthogonal(), (hidden, 4 * hidden), jnp.float32
        )
        bias = self.param("bias", _forget_gate_ones, (4 * hidden,), jnp.float32)
        if self.reverse:
            x, mask = _reversed(x, mask), None if mask is None else _reversed(mask, mask)
        projected = projection(x) + bias  # (T, B, 4H)
        outputs, state = lstm_scan(projected, mask, recurrent_kernel, recurrent_keep)
        # Kept only when the caller asks for the collection (mutable=[FINAL_STATE]).
        self.sow(FINAL_STATE, "state", state, init_fn=lambda: state, reduce_fn=lambda _, new: new)
        if self.reverse:
            outputs = _reversed(outputs, mask)
        return outputs, state


def _reversed(x: Array, mask: Array | None) -> Array:
    """Time-major ``x`` with each sequence's real steps (all of them without a ``mask``) in
    reverse order."""
    return jnp.flip(x, axis=0) if mask is None else reverse_padded(x, jnp.sum(mask, axis=0))


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
        x = x.swapaxes(0, 1)  # time-major from here on: (T, B, C)
        mask = None if mask is None else mask.astype(bool).T  # (T, B)
        dropout = not deterministic and self.dropout_rate > 0.0
        batch = x.shape[1]

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
        outputs = _scaled(x, keep(x.shape[-1])).swapaxes(0, 1)  # (B, T, directions·H)
        return outputs, jnp.concatenate(finals, axis=-1)


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
    if not isinstance(mask, jax.core.Tracer) and bool(jnp.any(mask[:, 1:] > mask[:, :-1])):
        raise ValueError(
            "mask has a real token after padding: the LSTM reads right-padded sequences (each "
            "row's real tokens first); move the padding to the end of each row"
        )


def _scaled(x: Array, keep: Array | None) -> Array:
    """Time-major ``x: [seq, batch, features]`` times a per-sequence mask ``[batch,
    features]``, if any."""
    return x if keep is None else x * keep[None, :, :].astype(x.dtype)


def _forget_gate_ones(key: Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> Array:
    """A ``[4·hidden]`` bias: 1 for the forget gate, 0 for the others."""
    hidden = shape[0] // 4
    return jnp.zeros(shape, dtype).at[hidden : 2 * hidden].set(1.0)


def _direction_name(layer: int, reverse: bool) -> str:
    return f"layer_{layer}_{'backward' if reverse else 'forward'}"
