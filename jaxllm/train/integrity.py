"""Checksums and finiteness of a state pytree, so a checkpoint can be verified when it is read.

A checkpoint's array files carry no checksum of their own: a flipped byte restores without a
word and the run trains on from wrong numbers. :func:`checksums` gives every array a 64-bit
fingerprint of its exact bits, which the checkpointer stores beside the arrays and compares
after reading them back.

The fingerprint of an array ``x`` is two sums over its elements' bit patterns ``w_i`` (as
unsigned 32-bit words, ``i`` the flat index), modulo 2**32:

  * ``sum_i w_i * (2i + 1)``: every multiplier is odd, so flipping any one bit changes it;
  * ``sum_i mix(w_i + i * 0x9E3779B9)`` with MurmurHash3's finaliser ``mix``, which catches
    every other change with probability 1 - 2**-32.

Integer sums modulo 2**32 do not depend on the order of the additions, so the fingerprint
is the same whether NumPy computes it from a host copy or XLA computes it from shards spread
over devices and processes (:func:`checksums` does the latter only for arrays that this
process cannot read whole).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

_GOLDEN = 0x9E3779B9


def path_string(path: tuple) -> str:
    """``"params/h_0/attn/c_attn/kernel"`` for a pytree key path (dataclasses included)."""
    return "/".join(re.findall(r"\w+", jax.tree_util.keystr(path)))


def leaves_by_path(tree: Any) -> dict[str, Any]:
    """``{"params/h_0/attn/c_attn/kernel": leaf, ...}`` for any pytree of arrays."""
    leaves = jax.tree.flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {path_string(path): leaf for path, leaf in leaves}


def _host_array(x: Any) -> np.ndarray:
    """A NumPy copy of array ``x`` (a PRNG key array as its raw key data, a Python or NumPy
    scalar as a 0-d array)."""
    if jnp.issubdtype(_dtype(x), jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(jax.device_get(x))


def _dtype(x: Any) -> np.dtype:
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _words(x: Any, xp: Any) -> Any:
    """``x``'s bits as a flat uint32 array: one word per element of 1, 2 or 4 bytes (zero
    extended), two or four per element of 8 or 16 bytes. ``xp`` is ``numpy`` or
    ``jax.numpy``."""
    if jnp.issubdtype(_dtype(x), jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    x = xp.asarray(x).reshape(-1)
    if x.dtype == bool:
        return x.astype(xp.uint32)
    unsigned = {1: xp.uint8, 2: xp.uint16}.get(x.dtype.itemsize, xp.uint32)
    bits = x.view(unsigned) if xp is np else jax.lax.bitcast_convert_type(x, unsigned)
    return bits.astype(xp.uint32).reshape(-1)


def _mix(h: Any, xp: Any) -> Any:
    """MurmurHash3's 32-bit finaliser, elementwise."""
    h = h ^ (h >> xp.uint32(16))
    h = h * xp.uint32(0x85EBCA6B)
    h = h ^ (h >> xp.uint32(13))
    h = h * xp.uint32(0xC2B2AE35)
    return h ^ (h >> xp.uint32(16))


def _word_sums(words: Any, start: int, xp: Any) -> tuple[Any, Any]:
    """The two sums of the module docstring over ``words``, whose first flat index is
    ``start``, as uint32 scalars."""
    index = xp.arange(words.shape[0], dtype=xp.uint32) + xp.uint32(start)
    odd = index * xp.uint32(2) + xp.uint32(1)
    first = xp.sum(words * odd, dtype=xp.uint32)
    second = xp.sum(_mix(words + index * xp.uint32(_GOLDEN), xp), dtype=xp.uint32)
    return first, second


# The host sums an array in pieces of this many words, so its temporaries stay small.
_HOST_CHUNK = 1 << 20


def _host_sums(x: np.ndarray) -> tuple[int, int]:
    words = _words(x, np)
    first = second = 0
    for start in range(0, words.shape[0], _HOST_CHUNK):
        a, b = _word_sums(words[start : start + _HOST_CHUNK], start, np)
        first, second = (first + int(a)) % 2**32, (second + int(b)) % 2**32
    return first, second


def _device_sums(x: Any) -> Any:
    return jnp.stack(_word_sums(_words(x, jnp), 0, jnp))


def _device_finite(x: Any) -> Any:
    return jnp.all(jnp.isfinite(x))


def _on_device(leaf_fn: Any, spread: dict[str, Any]) -> dict[str, Any]:
    """``leaf_fn`` of each array of ``spread`` (arrays sharded over several processes),
    computed where the shards live and returned replicated, as host values (a collective)."""
    sharding = next(iter(spread.values())).sharding
    replicated = NamedSharding(sharding.mesh, P()) if isinstance(sharding, NamedSharding) else None
    return jax.device_get(_jitted_per_leaf(leaf_fn, replicated)(spread))


@functools.lru_cache(maxsize=16)
def _jitted_per_leaf(leaf_fn: Any, out_sharding: Any) -> Any:
    """``leaf_fn`` mapped over a tree and jitted, its results placed by ``out_sharding``; one
    per function and sharding, so a run's saves reuse one compiled program."""
    return jax.jit(functools.partial(jax.tree.map, leaf_fn), out_shardings=out_sharding)


def _per_leaf(leaves: dict[str, Any], on_host: Any, on_device: Any) -> dict[str, Any]:
    """``{path: on_host(numpy copy)}`` for the arrays this process holds whole, and
    ``on_device``'s results (a function of one array, jitted) for arrays sharded over several
    processes, computed where they live (a collective: every process calls it)."""
    spread = {p: x for p, x in leaves.items() if not getattr(x, "is_fully_addressable", True)}
    results = _on_device(on_device, spread) if spread else {}
    for path, leaf in leaves.items():
        if path not in spread:
            results[path] = on_host(_host_array(leaf))
    return results


def _hex(sums: Any) -> str:
    first, second = (int(s) for s in sums)
    return f"{first:08x}{second:08x}"


def checksum(x: Any) -> str:
    """A 16-hex-digit fingerprint of the exact bits of array ``x`` (any shape and dtype)."""
    return _hex(_host_sums(_host_array(x)))


def checksums(tree: Any) -> dict[str, str]:
    """``{path: checksum}`` for every array of ``tree`` (a collective when some array is
    sharded over several processes: every process must call it)."""
    sums = _per_leaf(leaves_by_path(tree), _host_sums, _device_sums)
    return {path: _hex(s) for path, s in sums.items()}


def nonfinite_paths(tree: Any) -> list[str]:
    """Paths of the floating-point arrays of ``tree`` that hold a NaN or an infinity (a
    collective, as :func:`checksums`)."""
    floats = {
        path: leaf
        for path, leaf in leaves_by_path(tree).items()
        if jnp.issubdtype(_dtype(leaf), jnp.inexact)
    }
    flags = _per_leaf(floats, lambda x: bool(np.isfinite(x).all()), _device_finite)
    return sorted(path for path, finite in flags.items() if not finite)
