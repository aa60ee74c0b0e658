"""Multi-head scaled dot-product attention (Vaswani et al., 2017), with an optional KV cache.

One attention serves every model in jaxllm: causal self-attention (GPT), bidirectional
self-attention with padding masks (BERT) and cross-attention (encoder-decoder).
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.blocked_attention import blocked_dot_product_attention
from jaxllm.nn.dense import Dense
from jaxllm.nn.dense_attention import (
    attention_dropout_key,
    attention_probabilities,
    attention_weights,
    check_causal_lengths,
    softmax_attention,
)
from jaxllm.nn.masks import causal_mask, combine_masks
from jaxllm.nn.positions import apply_rotary


@flax.struct.dataclass
class KVCache:
    """Keys and values of the tokens seen so far, for incremental decoding.

    Stored with one row per (sequence, head) pair, so each decoding step's attention products
    read the cache in place. In a token-major layout XLA:CPU copied (transposed) every layer's
    whole cache at every step, about a fifth of the decoding time at batch 8; in a
    ``[batch, heads, ...]`` layout it still did at batch 1, where it drops the batch axis.

    Attributes:
      keys: float[batch · heads, max_len, head_dim], row ``b · heads + h`` for sequence ``b``,
        head ``h``.
      values: float[batch · heads, max_len, head_dim], the same rows.
    """

    keys: Array
    values: Array

    @classmethod
    def zeros(
        cls, batch: int, max_len: int, num_heads: int, head_dim: int, dtype: Any = jnp.float32
    ) -> KVCache:
        shape = (batch * num_heads, max_len, head_dim)
        return cls(keys=jnp.zeros(shape, dtype), values=jnp.zeros(shape, dtype))

    def write(self, keys: Array, values: Array, index: Array | int) -> KVCache:
        """This cache with new keys and values written at slots ``index .. index + len``.

        Args:
          keys: float[batch, len, heads, head_dim], stored in the cache's dtype.
          values: float[batch, len, heads, head_dim], the same.
        """

        def write(buffer: Array, new: Array) -> Array:  # (B, T, nh, hs) into rows b·nh + h
            rows = new.swapaxes(1, 2).reshape(-1, new.shape[1], new.shape[3])
            return jax.lax.dynamic_update_slice(buffer, rows.astype(buffer.dtype), (0, index, 0))

        return KVCache(keys=write(self.keys, keys), values=write(self.values, values))

    @classmethod
    def from_heads(cls, keys: Array, values: Array) -> KVCache:
        """A full cache holding ``keys`` and ``values``, each float[batch, len, heads,
        head_dim] (e.g. an encoder output's projections, which cross-attention reads at every
        decoding step)."""

        def rows(new: Array) -> Array:
            return new.swapaxes(1, 2).reshape(-1, new.shape[1], new.shape[3])

        return cls(keys=rows(keys), values=rows(values))


AttentionImplementation = Literal["jax", "cpu_blocked"]
"""How :class:`MultiHeadAttention` computes attention without a cache.

- ``"jax"``: :func:`dot_product_attention`, i.e. ``jax.nn.dot_product_attention`` with the
  implementation JAX picks (in jax 0.10 its XLA one on every backend), the portable default.
- ``"cpu_blocked"``: :func:`jaxllm.nn.blocked_attention.blocked_dot_product_attention`, causal
  attention in query blocks and groups of batch rows, measured faster on XLA:CPU.
"""
ATTENTION_IMPLEMENTATIONS: tuple[str, ...] = typing.get_args(AttentionImplementation)


def dot_product_attention(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None = None,
    *,
    causal: bool = False,
    dropout_rate: float = 0.0,
    dropout_rng: Array | None = None,
    deterministic: bool = True,
) -> Array:
    """softmax(q kᵀ / sqrt(d) + mask) v, the softmax in float32.

    Without dropout this is ``jax.nn.dot_product_attention``. It has no dropout on the
    attention weights, so with dropout the weights are computed whole by
    :func:`softmax_attention`, dropping each with probability ``dropout_rate``:
    ``keep = jax.random.bernoulli(dropout_rng, 1 - dropout_rate, [batch, heads, q_len, k_len])``,
    kept weights scaled by ``1 / (1 - dropout_rate)``.

    Args:
      q: float[batch, q_len, heads, head_dim]
      k: float[batch, k_len, heads, head_dim], the dtype of ``q``.
      v: float[batch, k_len, heads, head_dim], the dtype of ``q``.
      mask: bool, broadcastable to [batch, heads, q_len, k_len]; ``False`` blocks a key.
        A query whose every key is blocked (a padding row) gets uniform weights over the keys,
        never NaN; its output is meaningless and must be masked out.
      causal: also block every key after its query (needs ``q_len == k_len``).
      dropout_rate: dropout on the attention weights, applied unless ``deterministic``.
      dropout_rng: the key of that dropout.
      deterministic: no dropout when ``True``.

    Returns:
      float[batch, q_len, heads, head_dim]
    """
    batch, q_len, heads = q.shape[:3]
    k_len = k.shape[1]
    check_causal_lengths(q_len, k_len, causal)
    dropout_key = attention_dropout_key(dropout_rng, dropout_rate, deterministic)
    if dropout_key is None:
        # Masked scores become -0.7 · float32's max, not -inf: a fully masked row stays uniform.
        mask = None if mask is None else jnp.asarray(mask).astype(bool)
        return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal)
    if causal:
        mask = combine_masks(causal_mask(q_len), mask)
    keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, (batch, heads, q_len, k_len))
    return softmax_attention(q, k, v, mask, keep, dropout_rate)


def cached_attention(
    q: Array,
    cache: KVCache,
    mask: Array | None = None,
    *,
    dropout_rate: float = 0.0,
    dropout_rng: Array | None = None,
    deterministic: bool = True,
) -> Array:
    """softmax(q kᵀ / sqrt(d) + mask) v over every slot of a :class:`KVCache`.

    The same maths as :func:`dot_product_attention` with the cache's keys and values, computed
    in the cache's own layout (one row per sequence and head), so it is never copied.

    Args:
      q: float[batch, q_len, heads, head_dim]
      cache: keys and values float[batch · heads, max_len, head_dim].
      mask: bool, broadcastable to [batch, heads, q_len, max_len]; ``False`` blocks a slot
        (slots not yet written must be blocked).

    Returns:
      float[batch, q_len, heads, head_dim]
    """
    batch, q_len, heads, head_dim = q.shape
    rows, max_len = cache.keys.shape[:2]
    if rows != batch * heads or cache.keys.shape[2] != head_dim:
        raise ValueError(
            f"a cache of shape {tuple(cache.keys.shape)} does not fit queries of "
            f"shape {tuple(q.shape)}: it needs [batch · heads, max_len, head_dim] = "
            f"[{batch * heads}, max_len, {head_dim}]; make it with KVCache.zeros"
        )
    scale = 1.0 / jnp.sqrt(head_dim).astype(jnp.float32)
    q = q.swapaxes(1, 2).reshape(rows, q_len, head_dim)
    scores = (
        jnp.einsum(
            "nqd,nkd->nqk", q, cache.keys.astype(q.dtype), preferred_element_type=jnp.float32
        )
        * scale
    )
    keep = None
    dropout_key = attention_dropout_key(dropout_rng, dropout_rate, deterministic)
    if dropout_key is not None:
        keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, (batch, heads, q_len, max_len))
    weights = attention_weights(
        scores.reshape(batch, heads, q_len, max_len), mask, keep, dropout_rate
    ).reshape(rows, q_len, max_len)
    y = jnp.einsum("nqk,nkd->nqd", weights.astype(q.dtype), cache.values.astype(q.dtype))
    return y.reshape(batch, heads, q_len, head_dim).swapaxes(1, 2)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with fused projections.

    Self-attention when ``context`` is ``None`` (one ``[width, 3·width]`` projection for q, k
    and v), cross-attention otherwise (q from ``x``, k and v from ``context``).

    Attributes:
      num_heads: number of heads; the width must divide by it.
      dropout_rate: dropout on the attention weights and on the output.
      use_bias: biases in the projections.
      rotary: rotate q and k by their positions (RoPE) instead of relying on learned
        absolute position embeddings.
      out_init_std: std of the output projection's init.
      dtype: compute dtype; parameters stay float32.
      implementation: how attention without a cache is computed, one of
        ``ATTENTION_IMPLEMENTATIONS`` (see :data:`AttentionImplementation`); the KV-cache path
        is always :func:`cached_attention`.
      row_groups: groups of batch rows of ``"cpu_blocked"`` causal attention (1 unless it runs
        on a single CPU device; see :mod:`jaxllm.nn.blocked_attention`).
      head_dim: each head's width (``None``: the model width / ``num_heads``); the heads
        together may then be narrower than the model (structurally pruned heads).
    """

    num_heads: int
    dropout_rate: float = 0.0
    use_bias: bool = True
    rotary: bool = False
    out_init_std: float = 0.02
    dtype: Any = jnp.float32
    implementation: AttentionImplementation = "jax"
    row_groups: int = 1
    head_dim: int | None = None

    @nn.compact
    def __call__(
        self,
        x: Array,
        context: Array | None = None,
        *,
        mask: Array | None = None,
        causal: bool = False,
        positions: Array | None = None,
        cache: KVCache | None = None,
        cache_index: Array | int = 0,
        deterministic: bool = True,
        queries: int | None = None,
        context_cache: KVCache | None = None,
    ) -> tuple[Array, KVCache | None]:
        """Attend from ``x`` to itself (or to ``context``).

        Args:
          x: float[batch, q_len, width]
          context: float[batch, k_len, width] for cross-attention, else ``None``.
          mask: bool broadcastable to [batch, heads, q_len, k_len] (with a cache, ``k_len`` is
            the cache's ``max_len``).
          positions: int[batch, q_len] absolute positions of ``x`` (needed with ``rotary``).
          cache: keys/values of earlier tokens; the new ones are written at
            ``cache_index .. cache_index + q_len`` and attention runs over the whole cache.
          causal: each query also attends only to keys at or before it (self-attention without
            a cache; see :func:`dot_product_attention`).
          deterministic: no dropout when ``True``.
          queries: self-attention from the first ``queries`` positions of ``x`` only (to all of
            them), e.g. BERT's last layer, whose ``[CLS]`` output alone is read; without a
            cache, rotary positions or causal masking.
          context_cache: the context's keys and values, projected by an earlier call with
            ``context`` (its second output), for queries from ``x`` (``context``: ``None``).

        Returns:
          (float[batch, q_len, width], the updated cache, ``None`` without one; cross-attention
          returns the context's keys and values); ``q_len`` is ``queries`` when given.
        """
        batch, q_len, width = x.shape
        self._check_settings(width)
        _check_context(context, context_cache, cache, causal, queries, self.rotary)
        if context_cache is not None:
            return self._attend_to_cached_context(x, mask, context_cache, deterministic)
        q, k, v = self._project_heads(x, context)  # (B, T, nh, hs)
        if queries is not None:
            _check_queries(queries, q_len, context, cache, causal, self.rotary)
            q, mask, q_len = _first_queries(q, mask, queries)
        if self.rotary:
            q, k = _rotate(q, k, positions, rotate_keys=context is None)
        dropout_rng = self._dropout_rng(deterministic)
        if cache is None:
            self._record_weights(q, k, mask, causal)
            y = _attend(q, k, v, mask, causal=causal, implementation=self.implementation,
                        row_groups=self.row_groups, dropout_rate=self.dropout_rate,
                        dropout_rng=dropout_rng, deterministic=deterministic)  # fmt: skip
        else:
            y, cache = self._attend_with_cache(
                q, k, v, mask, causal, cache, cache_index, dropout_rng, deterministic
            )
        cache = cache if context is None else KVCache.from_heads(k, v)  # unused in training
        return self._output(y.reshape(batch, q_len, -1), width, deterministic), cache

    def _dropout_rng(self, deterministic: bool) -> Array | None:
        """The attention dropout's key, ``None`` without dropout."""
        if deterministic or self.dropout_rate <= 0.0:
            return None
        return self.make_rng("dropout")

    @nn.nowrap
    def _output(self, y: Array, width: int, deterministic: bool) -> Array:
        """The heads' outputs side by side, float[batch, q_len, heads · head_dim], projected
        back to the model's width, with dropout."""
        y = self._dense(width, "c_proj", self.out_init_std)(y)
        return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)

    @nn.nowrap
    def _attend_to_cached_context(
        self, x: Array, mask: Array | None, context_cache: KVCache, deterministic: bool
    ) -> tuple[Array, KVCache]:
        """Cross-attention from ``x`` to keys and values projected earlier; (out, cache)."""
        batch, q_len, width = x.shape
        head_dim = self.head_dim or width // self.num_heads
        q = self._dense(self.num_heads * head_dim, "q_proj")(x)
        q = q.reshape(batch, q_len, self.num_heads, head_dim)
        dropout_rng = self._dropout_rng(deterministic)
        y = cached_attention(
            q, context_cache, mask, dropout_rate=self.dropout_rate,
            dropout_rng=dropout_rng, deterministic=deterministic,
        )  # fmt: skip
        return self._output(y.reshape(batch, q_len, -1), width, deterministic), context_cache

    def _record_weights(self, q: Array, k: Array, mask: Array | None, causal: bool) -> None:
        """Sow the attention probabilities, float32[batch, heads, q_len, k_len], as
        ``intermediates/attention_weights`` when that collection is mutable (as
        :func:`jaxllm.explain.attention_maps` makes it); otherwise compute nothing."""
        if self.is_mutable_collection("intermediates"):
            weights = attention_probabilities(q, k, mask, causal=causal)
            self.sow("intermediates", "attention_weights", weights)

    @nn.nowrap
    def _attend_with_cache(
        self,
        q: Array,
        k: Array,
        v: Array,
        mask: Array | None,
        causal: bool,
        cache: KVCache,
        cache_index: Array | int,
        dropout_rng: Array | None,
        deterministic: bool,
    ) -> tuple[Array, KVCache]:
        """Write the new keys/values into ``cache``, attend over all of it; (out, cache)."""
        if causal:
            raise ValueError(
                "causal=True does not apply with a cache (the queries start at "
                "cache_index); pass "
                "mask=causal_mask(q_len, max_len, offset=cache_index)"
            )
        cache = cache.write(k, v, cache_index)
        y = cached_attention(
            q,
            cache,
            mask,
            dropout_rate=self.dropout_rate,
            dropout_rng=dropout_rng,
            deterministic=deterministic,
        )
        return y, cache

    @nn.nowrap
    def _check_settings(self, width: int) -> None:
        if self.head_dim is None and width % self.num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {self.num_heads}")
        if self.implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"unknown attention implementation {self.implementation!r}; "
                f"choose one of {list(ATTENTION_IMPLEMENTATIONS)}"
            )
        if not isinstance(self.row_groups, int) or self.row_groups < 1:
            raise ValueError(f"row_groups must be an int >= 1, got {self.row_groups!r}")
        if self.row_groups != 1 and self.implementation != "cpu_blocked":
            raise ValueError(
                f"row_groups={self.row_groups} applies to "
                f"implementation='cpu_blocked' only, not {self.implementation!r}; "
                "leave it at 1"
            )

    @nn.nowrap
    def _dense(self, features: int, name: str, std: float = 0.02) -> Dense:
        return Dense(
            features,
            use_bias=self.use_bias,
            kernel_init=nn.initializers.normal(std),
            dtype=self.dtype,
            name=name,
        )

    @nn.nowrap
    def _project_heads(self, x: Array, context: Array | None) -> tuple[Array, Array, Array]:
        """q from ``x``, k and v from ``context`` (default ``x``), each float[batch, len, heads,
        head_dim]."""
        head_dim = self.head_dim or x.shape[-1] // self.num_heads
        inner = self.num_heads * head_dim  # the model width unless heads were pruned
        if context is None:
            qkv = self._dense(3 * inner, "c_attn")(x)  # (B, T, 3·inner)
            q, k, v = jnp.split(qkv, 3, axis=-1)
        else:
            q = self._dense(inner, "q_proj")(x)
            k, v = jnp.split(self._dense(2 * inner, "kv_proj")(context), 2, axis=-1)

        def heads(t: Array) -> Array:
            return t.reshape(t.shape[0], t.shape[1], self.num_heads, head_dim)

        return heads(q), heads(k), heads(v)


def _check_context(
    context: Array | None,
    context_cache: KVCache | None,
    cache: KVCache | None,
    causal: bool,
    queries: int | None,
    rotary: bool,
) -> None:
    """Raise ``ValueError`` for a cross-attention call that mixes in what it can't use."""
    if context is not None and context_cache is not None:
        raise ValueError(
            "pass either context or context_cache (its projected keys and values), not both"
        )
    if context_cache is not None and (cache is not None or causal or queries is not None or rotary):
        raise ValueError(
            "context_cache is for cross-attention: no self-attention cache, causal mask, "
            "queries or rotary positions"
        )
    if context is not None and cache is not None:
        raise ValueError(
            "cache holds self-attention's keys and values; cross-attention takes its "
            "context's as context_cache (what a call with the context returns)"
        )


def _first_queries(q: Array, mask: Array | None, queries: int) -> tuple[Array, Array | None, int]:
    """The first ``queries`` queries of q (float[batch, q_len, heads, head_dim]), and their
    rows of a per-query mask."""
    q_len = q.shape[1]
    if mask is not None and mask.ndim == 4 and mask.shape[-2] == q_len > 1:
        mask = mask[..., :queries, :]
    return q[:, :queries], mask, queries


def _check_queries(
    queries: int, length: int, context: Array | None, cache: Any, causal: bool, rotary: bool
) -> None:
    if not 1 <= queries <= length:
        raise ValueError(f"queries must be in [1, {length}] (the sequence), got {queries}")
    if context is not None or cache is not None or causal or rotary:
        raise ValueError(
            "queries applies to plain self-attention only: no context, cache, causal mask or "
            "rotary positions"
        )


def _rotate(
    q: Array, k: Array, positions: Array | None, *, rotate_keys: bool
) -> tuple[Array, Array]:
    """RoPE on q (and on k for self-attention), at ``positions`` (default ``0 .. q_len-1``).

    q, k: float[batch, len, heads, head_dim]; positions: int[batch, q_len].
    """
    if positions is None:
        batch, q_len = q.shape[:2]
        positions = jnp.broadcast_to(jnp.arange(q_len), (batch, q_len))
    return apply_rotary(q, positions), (apply_rotary(k, positions) if rotate_keys else k)


def _attend(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    *,
    causal: bool,
    implementation: AttentionImplementation,
    row_groups: int,
    **dropout: Any,
) -> Array:
    """Attention without a cache, by ``implementation``; arguments as in
    :func:`dot_product_attention`."""
    if implementation == "cpu_blocked":
        return blocked_dot_product_attention(
            q, k, v, mask, causal=causal, row_groups=row_groups, **dropout
        )
    return dot_product_attention(q, k, v, mask, causal=causal, **dropout)
