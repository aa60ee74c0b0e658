"""Multi-head scaled dot-product attention (Vaswani et al., 2017), with an optional KV cache.

One attention serves every model in jaxllm: causal self-attention (GPT), bidirectional
self-attention with padding masks (BERT) and cross-attention (encoder-decoder).
"""

from __future__ import annotations

import itertools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.dense import Dense
from jaxllm.nn.masks import causal_mask
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
    def zeros(cls, batch: int, max_len: int, num_heads: int, head_dim: int,
              dtype: Any = jnp.float32) -> KVCache:
        shape = (batch * num_heads, max_len, head_dim)
        return cls(keys=jnp.zeros(shape, dtype), values=jnp.zeros(shape, dtype))


# Causal attention is computed in at most this many query blocks of at least MIN_QUERY_BLOCK
# queries each; block i attends to keys 0 .. end of block i only, so the score blocks above the
# diagonal are never computed (37.5% of the work with four blocks). Measured on a 2-core CPU,
# four blocks of 64 cut the GPT training step by ~10% at context 256; at context 128, four
# blocks of 32 instead of two of 64 saved ~2% of the step but added 0.4 s (30%) to its
# compilation, so blocks stay at 64 queries or more.
MAX_QUERY_BLOCKS = 4
MIN_QUERY_BLOCK = 64

# On a single CPU device, the query blocks (of MIN_QUERY_BLOCK queries or more) that attend to
# more than half of the keys are also computed as CPU_ROW_GROUPS independent groups of batch
# rows. XLA:CPU runs independent operations at the same time, one per core, but runs each of
# attention's small batched matmuls at about one core's speed; pieces of similar size keep both
# cores busy. Measured on a 2-core CPU (GPT training step): 3-3.5% faster at context 128 (the
# second of two blocks split), 1-2.5% at 256 (the last two of four); splitting every block into
# 4 groups gained no more and doubled the compilation time. Not with several devices: a batch
# sharded over them would be re-sliced across devices (a 2-layer GPT sharded over 2-8 simulated
# CPU devices took 10-50% longer per step).
CPU_ROW_GROUPS = 2


def dot_product_attention(q: Array, k: Array, v: Array, mask: Array | None = None, *,
                          causal: bool = False, dropout_rate: float = 0.0,
                          dropout_rng: Array | None = None, deterministic: bool = True,
                          row_groups: int | None = None) -> Array:
    """softmax(q kᵀ / sqrt(d) + mask) v, the softmax in float32.

    Args:
      q: float[batch, q_len, heads, head_dim]
      k, v: float[batch, k_len, heads, head_dim]
      mask: bool, broadcastable to [batch, heads, q_len, k_len]; ``False`` blocks a key.
        A query whose every key is blocked (a padding row) gets uniform weights over the keys
        it was compared with, never NaN; its output is meaningless and must be masked out.
      causal: also block every key after its query (needs ``q_len == k_len``); long sequences
        then skip the score blocks above the diagonal instead of computing and masking them.
      row_groups: with ``causal``, compute the query blocks that attend to more than half of the
        keys (and hold ``MIN_QUERY_BLOCK`` queries or more) as this many independent groups of
        batch rows; ``None``: ``CPU_ROW_GROUPS`` when the process has a single device and it
        is a CPU, else 1. The result, dropout included, is the same for any number.

    Returns:
      float[batch, q_len, heads, head_dim]
    """
    batch, q_len, heads = q.shape[:3]
    k_len = k.shape[1]
    if causal and q_len != k_len:
        raise ValueError(f"causal attention needs as many queries as keys, got {q_len} and "
                         f"{k_len}; pass an explicit mask (e.g. causal_mask(q_len, k_len, offset))")
    query_bounds = _query_block_bounds(q_len) if causal else [0, q_len]
    if row_groups is None:
        one_cpu = jax.default_backend() == "cpu" and jax.device_count() == 1
        row_groups = CPU_ROW_GROUPS if one_cpu else 1
    if row_groups < 1:
        raise ValueError(f"row_groups must be >= 1, got {row_groups}")
    if causal and mask is not None:  # full query and key axes, to slice blocks from
        mask = jnp.broadcast_to(mask, (*mask.shape[:-2], q_len, k_len))
    dropout = not deterministic and dropout_rate > 0.0

    blocks = []
    for i, (start, end) in enumerate(itertools.pairwise(query_bounds)):
        keys = end if causal else k_len  # block i attends to keys 0 .. keys-1
        block_mask = mask
        if causal:
            block_mask = causal_mask(end - start, end, offset=start)
            if mask is not None:
                block_mask = jnp.logical_and(block_mask, mask[..., start:end, :end])
        keep = None
        if dropout:  # drawn for the whole batch, so that row groups don't change it
            rng = jax.random.fold_in(dropout_rng, i) if causal else dropout_rng
            keep = jax.random.bernoulli(rng, 1.0 - dropout_rate, (batch, heads, end - start, keys))
        long_block = causal and 2 * keys > k_len and end - start >= MIN_QUERY_BLOCK
        groups = min(row_groups, batch) if long_block else 1
        row_bounds = [batch * g // groups for g in range(groups + 1)]
        blocks.append(_concatenate([
            _attention(q[lo:hi, start:end], k[lo:hi, :keys], v[lo:hi, :keys],
                       _rows(block_mask, lo, hi), _rows(keep, lo, hi), dropout_rate)
            for lo, hi in itertools.pairwise(row_bounds)], axis=0))
    return _concatenate(blocks, axis=1)


def _query_block_bounds(length: int) -> list[int]:
    """Block edges ``[0, ..., length]`` splitting ``length`` queries for causal attention."""
    blocks = max(1, min(MAX_QUERY_BLOCKS, length // MIN_QUERY_BLOCK))
    return [length * i // blocks for i in range(blocks + 1)]


def _rows(x: Array | None, lo: int, hi: int) -> Array | None:
    """Batch rows ``lo:hi`` of an array broadcastable to [batch, heads, q_len, k_len]."""
    return x if x is None or x.ndim < 4 or x.shape[0] == 1 else x[lo:hi]


def _concatenate(parts: list[Array], axis: int) -> Array:
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=axis)


def _attention(q: Array, k: Array, v: Array, mask: Array | None, keep: Array | None,
               dropout_rate: float) -> Array:
    """Dense attention over every (query, key) pair; shapes as in :func:`dot_product_attention`.

    ``keep``: bool[batch, heads, q_len, k_len], the weights dropout keeps (``None``: no dropout).
    """
    scale = 1.0 / jnp.sqrt(q.shape[-1]).astype(jnp.float32)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    weights = _attention_weights(scores, mask, keep, dropout_rate)
    return jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)


def _attention_weights(scores: Array, mask: Array | None, keep: Array | None,
                       dropout_rate: float) -> Array:
    """float32[batch, heads, q_len, k_len] scores -> masked softmax weights, dropout applied."""
    if mask is not None:
        scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1)
    if keep is not None:
        weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
    return weights


def cached_attention(q: Array, cache: KVCache, mask: Array | None = None, *,
                     dropout_rate: float = 0.0, dropout_rng: Array | None = None,
                     deterministic: bool = True) -> Array:
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
        raise ValueError(f"a cache of shape {tuple(cache.keys.shape)} does not fit queries of "
                         f"shape {tuple(q.shape)}: it needs [batch · heads, max_len, head_dim] = "
                         f"[{batch * heads}, max_len, {head_dim}]; make it with KVCache.zeros")
    scale = 1.0 / jnp.sqrt(head_dim).astype(jnp.float32)
    q = q.swapaxes(1, 2).reshape(rows, q_len, head_dim)
    scores = jnp.einsum("nqd,nkd->nqk", q, cache.keys.astype(q.dtype),
                        preferred_element_type=jnp.float32) * scale
    keep = None
    if not deterministic and dropout_rate > 0.0:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, (batch, heads, q_len, max_len))
    weights = _attention_weights(scores.reshape(batch, heads, q_len, max_len), mask, keep,
                                 dropout_rate).reshape(rows, q_len, max_len)
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
    """

    num_heads: int
    dropout_rate: float = 0.0
    use_bias: bool = True
    rotary: bool = False
    out_init_std: float = 0.02
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, context: Array | None = None, *, mask: Array | None = None,
                 causal: bool = False, positions: Array | None = None,
                 cache: KVCache | None = None,
                 cache_index: Array | int = 0,
                 deterministic: bool = True) -> tuple[Array, KVCache | None]:
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

        Returns:
          (float[batch, q_len, width], the updated cache or ``None``)
        """
        batch, q_len, width = x.shape
        if width % self.num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {self.num_heads}")
        head_dim = width // self.num_heads
        dense = lambda features, name, std=0.02: Dense(  # noqa: E731
            features, use_bias=self.use_bias, kernel_init=nn.initializers.normal(std),
            dtype=self.dtype, name=name)

        if context is None:
            qkv = dense(3 * width, "c_attn")(x)  # (B, T, 3C)
            q, k, v = jnp.split(qkv, 3, axis=-1)
        else:
            q = dense(width, "q_proj")(x)
            k, v = jnp.split(dense(2 * width, "kv_proj")(context), 2, axis=-1)
        heads = lambda t: t.reshape(t.shape[0], t.shape[1], self.num_heads, head_dim)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)  # (B, T, nh, hs)

        if self.rotary:
            if positions is None:
                positions = jnp.broadcast_to(jnp.arange(q_len), (batch, q_len))
            q = apply_rotary(q, positions)
            if context is None:
                k = apply_rotary(k, positions)

        dropout_rng = None
        if not deterministic and self.dropout_rate > 0.0:
            dropout_rng = self.make_rng("dropout")
        settings = dict(dropout_rate=self.dropout_rate, dropout_rng=dropout_rng,
                        deterministic=deterministic)
        if cache is None:
            y = dot_product_attention(q, k, v, mask, causal=causal, **settings)
        elif causal:
            raise ValueError("causal=True does not apply with a cache (the queries start at "
                             "cache_index); pass mask=causal_mask(q_len, max_len, offset=cache_index)")
        else:
            def write(buf: Array, t: Array) -> Array:  # (B, T, nh, hs) into rows b·nh + h at slot
                rows = t.swapaxes(1, 2).reshape(-1, t.shape[1], head_dim)
                return jax.lax.dynamic_update_slice(buf, rows.astype(buf.dtype), (0, cache_index, 0))
            cache = KVCache(keys=write(cache.keys, k), values=write(cache.values, v))
            y = cached_attention(q, cache, mask, **settings)
        y = y.reshape(batch, q_len, width)  # re-assemble heads side by side
        y = dense(width, "c_proj", self.out_init_std)(y)
        y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
        return y, cache
