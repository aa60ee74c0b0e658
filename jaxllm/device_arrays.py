"""Host arrays onto the device without compiling anything: :func:`to_device`.

``jnp.asarray(numpy_array)`` runs a small compiled program for each shape and dtype it meets
(JAX 0.10: 5-35 ms the first time). Where shapes follow the data, as a TF-IDF matrix's number
of stored entries does, every call meets a new one, and the programs pile up in JAX's cache.
``jax.device_put`` copies the bytes and compiles nothing.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax import Array


def to_device(array: Any, dtype: Any = None) -> Array:
    """``array`` (NumPy, a list, a scalar, or already a JAX array) as a JAX array of ``dtype``
    (default: its own, as NumPy reads it) on the default device. A host array is converted on
    the host, compiling nothing; a JAX array of another ``dtype`` is converted on its device
    (``astype``, which compiles once per shape, as any JAX operation does)."""
    if isinstance(array, jax.Array):
        return array if dtype is None or array.dtype == dtype else array.astype(dtype)
    return jax.device_put(np.asarray(array, dtype=dtype))
