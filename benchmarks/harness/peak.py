"""The machine's achievable matmul throughput, the denominator of MFU on hardware without a
published peak (a CPU's depends on its cores, clocks and vector units)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from harness.timing import time_fn


def matmul_flops(n: int) -> int:
    """FLOPs of an ``(n, n) @ (n, n)`` matmul: ``2·n³`` (one multiply and one add per term)."""
    return 2 * n**3


def measure_matmul_peak(dtype: str = "float32", n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a jitted square matmul ``float[n, n] @ float[n, n]`` on the default JAX device.

    ``2·n³ / median seconds`` over ``repeats`` calls; the first call (compilation) is excluded.
    At ``n = 2048`` the matmul is large enough that dispatch overhead is negligible, so this is
    what XLA's matmul achieves -- a practical peak, below the hardware's theoretical one.
    """
    a_key, b_key = jax.random.split(jax.random.key(0))
    a = jax.random.normal(a_key, (n, n), jnp.dtype(dtype))
    b = jax.random.normal(b_key, (n, n), jnp.dtype(dtype))
    timing = time_fn(jax.jit(jnp.matmul), a, b, warmup=1, repeats=repeats)
    return matmul_flops(n) / timing.median_s
