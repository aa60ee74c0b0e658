"""Test set-up: 8 CPU devices for the parallel tests, and a persistent compilation cache so
repeated shapes compile once per machine."""

import os
from pathlib import Path

import jax

_CACHE = Path(os.environ.get("JAXLLM_TEST_CACHE", Path(__file__).resolve().parents[1] / ".cache" / "jax"))
# Before any JAX work: the data-parallel and mesh tests split batches over 8 devices.
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
