"""jaxllm.runtime: XLA:CPU calls reuse their memory instead of page-faulting it in each time.

Each case runs in a fresh interpreter, since the settings depend on what the process did
before importing jaxllm.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the settings are glibc's")

# A jitted call whose temporaries (~64 MiB of float32) dwarf its inputs and outputs; the
# child reports the median number of pages faulted in over nine warm calls (glibc places a
# block where it fits, so an occasional call still maps fresh memory).
_CHILD = """
import json, resource, sys
{before}
import jaxllm, jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.sum(jnp.tanh(jnp.outer(x, x) * 0.5) @ x))
x = jnp.linspace(0.0, 1.0, 4096)
f(x).block_until_ready()
faults = []
for _ in range(9):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(json.dumps({{"faults_per_call": sorted(faults)[len(faults) // 2],
                  "async_dispatch": jax.config.read("jax_cpu_enable_async_dispatch")}}))
"""

# One [4096, 4096] float32 temporary (64 MiB) takes 16,384 faults of 4 KiB pages to map in, or
# 32 where the kernel backs it with 2 MiB transparent huge pages; reusing it takes none.
_FEWEST_FAULTS_TO_MAP = 4096 * 4096 * 4 // (2 << 20)


def _child(before: str = "", **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("JAXLLM_REUSE_STEP_MEMORY", "JAX_CPU_ENABLE_ASYNC_DISPATCH")}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", _CHILD.format(before=before)], env=environment,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_calls_reuse_their_temporaries_after_import():
    result = _child()
    assert result["async_dispatch"] is False
    assert result["faults_per_call"] < _FEWEST_FAULTS_TO_MAP / 2, result


def test_opt_out_leaves_the_process_as_it_was():
    # The same child faults its temporaries in on every call without the settings: the
    # property above is not vacuous.
    result = _child(JAXLLM_REUSE_STEP_MEMORY="0")
    assert result["async_dispatch"] is True
    assert result["faults_per_call"] >= _FEWEST_FAULTS_TO_MAP, result


def test_not_applied_once_jax_has_started_its_backends():
    result = _child(before="import jax; jax.devices()")
    assert result["async_dispatch"] is True


def test_an_explicit_dispatch_choice_is_respected():
    result = _child(JAX_CPU_ENABLE_ASYNC_DISPATCH="1")
    assert result["async_dispatch"] is True


def test_memory_is_handed_back_after_long_compilations_only(monkeypatch):
    from jaxllm import runtime

    class FakeLibc:
        trims = 0

        def malloc_trim(self, pad):
            FakeLibc.trims += 1
            return 1

    monkeypatch.setattr(runtime, "_glibc", FakeLibc)
    runtime._trim_after_compile(runtime._COMPILE_EVENT, 0.01, fun_name="tiny")
    runtime._trim_after_compile("/jax/some/other/event", 5.0)
    assert FakeLibc.trims == 0
    runtime._trim_after_compile(runtime._COMPILE_EVENT, 2.0, fun_name="step")
    assert FakeLibc.trims == 1
