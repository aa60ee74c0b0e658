"""Causal attention in query blocks and groups of batch rows: a variant tuned for XLA:CPU.

The same maths as :func:`jaxllm.nn.attention.dot_product_attention`, computed in pieces that
XLA:CPU runs faster. Chosen explicitly (``MultiHeadAttention(implementation="cpu_blocked")``,
``GPTConfig(attention="cpu_blocked")``); nothing here reads the machine it runs on.

Measured on a 2-core CPU (GPT training step, float32):

- Query blocks. Causal attention is computed in at most ``MAX_QUERY_BLOCKS`` blocks of at least
  ``MIN_QUERY_BLOCK`` queries each; block i attends to keys 0 .. end of block i only, so the
  score blocks above the diagonal are never computed (37.5% of the work with four blocks).
  Four blocks of 64 cut the step by ~10% at context 256; at context 128, four blocks of 32
  instead of two of 64 saved ~2% of the step but added 0.4 s (30%) to its compilation, so
  blocks stay at 64 queries or more.
- Row groups. The query blocks (of ``MIN_QUERY_BLOCK`` queries or more) that attend to more than
  half of the keys are also computed as ``row_groups`` independent groups of batch rows.
  XLA:CPU runs independent operations at the same time, one per core, but runs each of
  attention's small batched matmuls at about one core's speed; pieces of similar size keep both
  cores busy. ``CPU_ROW_GROUPS`` (2) groups were 3-3.5% faster at context 128 (the second of
  two blocks split), 1-2.5% at 256 (the last two of four); splitting every block into 4 groups
  gained no more and doubled the compilation time. Only on a single device: a batch sharded
  over several would be re-sliced across them (a 2-layer GPT sharded over 2-8 simulated CPU
  devices took 10-50% longer per step), so use ``row_groups=1`` there.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.nn.dense_attention import (
    attention_dropout_key,
    check_causal_lengths,
    softmax_attention,
)
from jaxllm.nn.masks import causal_mask

MAX_QUERY_BLOCKS = 4  # query blocks of causal attention, at most (see "Query blocks" above)
MIN_QUERY_BLOCK = 64  # queries in a block, at least: smaller ones cost more compile than they save
CPU_ROW_GROUPS = 2  # row groups measured fastest on a single 2-core CPU device (see "Row groups")


def blocked_dot_product_attention(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None = None,
    *,
    causal: bool = False,
    dropout_rate: float = 0.0,
    dropout_rng: Array | None = None,
    deterministic: bool = True,
    row_groups: int = 1,
) -> Array:
    """softmax(q kᵀ / sqrt(d) + mask) v, the softmax in float32, in query blocks and row groups.

    Args:
      q: float[batch, q_len, heads, head_dim]
      k: float[batch, k_len, heads, head_dim]
      v: float[batch, k_len, heads, head_dim]
      mask: bool, broadcastable to [batch, heads, q_len, k_len]; ``False`` blocks a key.
        A query whose every key is blocked (a padding row) gets uniform weights over the keys
        of its block, never NaN; its output is meaningless and must be masked out.
      causal: also block every key after its query (needs ``q_len == k_len``); the score
        blocks above the diagonal are then skipped instead of computed and masked.
      dropout_rate: dropout on the attention weights, drawn for query block ``i`` from
        ``fold_in(dropout_rng, i)`` (causal) or ``dropout_rng``.
      dropout_rng: the key of that dropout.
      deterministic: no dropout when ``True``.
      row_groups: with ``causal``, compute the query blocks that attend to more than half of the
        keys (and hold ``MIN_QUERY_BLOCK`` queries or more) as this many independent groups of
        batch rows. The result, dropout included, is the same for any number.

    Returns:
      float[batch, q_len, heads, head_dim]
    """
    batch, q_len, heads = q.shape[:3]
    k_len = k.shape[1]
    check_causal_lengths(q_len, k_len, causal)
    if row_groups < 1:
        raise ValueError(f"row_groups must be >= 1, got {row_groups}")
    query_bounds = _query_block_bounds(q_len) if causal else [0, q_len]
    if causal and mask is not None:  # full query and key axes, to slice blocks from
        mask = jnp.broadcast_to(mask, (*mask.shape[:-2], q_len, k_len))
    dropout_key = attention_dropout_key(dropout_rng, dropout_rate, deterministic)

    blocks = []
    for i, (start, end) in enumerate(itertools.pairwise(query_bounds)):
        keys = end if causal else k_len  # block i attends to keys 0 .. keys-1
        block_mask = _block_mask(mask, start, end) if causal else mask
        keep = None
        if dropout_key is not None:  # drawn for the whole batch, so that row groups don't change it
            rng = jax.random.fold_in(dropout_key, i) if causal else dropout_key
            keep = jax.random.bernoulli(rng, 1.0 - dropout_rate, (batch, heads, end - start, keys))
        long_block = causal and 2 * keys > k_len and end - start >= MIN_QUERY_BLOCK
        groups = min(row_groups, batch) if long_block else 1
        blocks.append(
            _attend_in_row_groups(
                q, k, v, block_mask, keep, (start, end), keys, groups, dropout_rate
            )
        )
    return _concatenate(blocks, axis=1)


def _block_mask(mask: Array | None, start: int, end: int) -> Array:
    """The causal mask of query block ``start:end`` over keys ``0 .. end-1``, and ``mask``'s."""
    block_mask = causal_mask(end - start, end, offset=start)
    return block_mask if mask is None else jnp.logical_and(block_mask, mask[..., start:end, :end])


def _attend_in_row_groups(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    keep: Array | None,
    queries: tuple[int, int],
    keys: int,
    groups: int,
    dropout_rate: float,
) -> Array:
    """Queries ``start:end`` (``queries``) attending to keys ``0 .. keys-1``, computed as
    ``groups`` independent groups of batch rows, concatenated; ``mask`` and ``keep`` are the
    block's."""
    start, end = queries
    batch = q.shape[0]
    row_bounds = [batch * g // groups for g in range(groups + 1)]
    return _concatenate(
        [
            softmax_attention(
                q[lo:hi, start:end],
                k[lo:hi, :keys],
                v[lo:hi, :keys],
                _rows(mask, lo, hi),
                _rows(keep, lo, hi),
                dropout_rate,
            )
            for lo, hi in itertools.pairwise(row_bounds)
        ],
        axis=0,
    )


def _query_block_bounds(length: int) -> list[int]:
    """Block edges ``[0, ..., length]`` splitting ``length`` queries for causal attention."""
    blocks = max(1, min(MAX_QUERY_BLOCKS, length // MIN_QUERY_BLOCK))
    return [length * i // blocks for i in range(blocks + 1)]


def _rows(x: Array | None, lo: int, hi: int) -> Array | None:
    """Batch rows ``lo:hi`` of an array broadcastable to [batch, heads, q_len, k_len]."""
    return x if x is None or x.ndim < 4 or x.shape[0] == 1 else x[lo:hi]


def _concatenate(parts: list[Array], axis: int) -> Array:
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=axis)
