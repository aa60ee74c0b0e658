"""jaxllm.runtime: importing jaxllm changes nothing; ``configure_cpu()`` makes XLA:CPU calls
reuse their memory instead of page-faulting it in each time.

Each case runs in a fresh interpreter, since the settings depend on what the process did
before.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the settings are glibc's",
)

# A jitted call whose temporaries (~64 MiB of float32) dwarf its inputs and outputs; the
# child reports the median number of pages faulted in over nine warm calls (glibc places a
# block where it fits, so an occasional call still maps fresh memory).
_CHILD = """
import json, resource, sys
{before}
import jaxllm, jax, jax.numpy as jnp
{configure}
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


_CONFIGURE = "print(json.dumps({'applied': jaxllm.runtime.configure_cpu()}))"


def _run(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; the JSON object of its last line of output."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAXLLM_REUSE_STEP_MEMORY", "JAX_CPU_ENABLE_ASYNC_DISPATCH")
    }
    environment.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(before: str = "", configure: str = _CONFIGURE, **env: str) -> dict:
    return _run(_CHILD.format(before=before, configure=configure), **env)


def test_calls_reuse_their_temporaries_after_configure_cpu():
    result = _child()
    assert result["async_dispatch"] is False
    assert result["faults_per_call"] < _FEWEST_FAULTS_TO_MAP / 2, result


def test_import_alone_leaves_the_allocator_as_it_was():
    # The same child faults its temporaries in on every call without the settings: the
    # property above is not vacuous, and importing jaxllm does not apply them.
    result = _child(configure="")
    assert result["async_dispatch"] is True
    assert result["faults_per_call"] >= _FEWEST_FAULTS_TO_MAP, result


@pytest.mark.parametrize(
    "before, env",
    [
        ("import jax; jax.devices()", {}),  # JAX fixed its dispatch mode when its backends started
        ("", {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "1"}),  # an explicit dispatch choice is respected
        ("", {"JAXLLM_REUSE_STEP_MEMORY": "0"}),  # a launcher's opt-out
    ],
)
def test_not_applied_where_it_must_not_be(before, env):
    code = f"import json\n{before}\nimport jaxllm\n{_CONFIGURE}"
    assert _run(code, **env) == {"applied": False}


# Imports jaxllm, then reports what changed: JAX's config, its monitoring listeners, whether
# its backends started, and which heavy packages came along. Then, with matplotlib imported
# and its backend chosen by the user, draws a jaxllm plot and reports the backend again.
_IMPORT_CHILD = """
import json, sys
import jax
from jax._src import monitoring
def read_config():  # flags with a context manager are read as attributes, the others from values
    return {name: getattr(jax.config, name, value) for name, value in jax.config.values.items()}
config = read_config()
listeners = len(monitoring.get_event_duration_listeners())
import jaxllm
from jax._src import xla_bridge
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"matplotlib", "orbax", "tensorstore",
                                                               "tensorboardX", "tensorboard"})
changed = sorted(name for name, value in read_config().items() if config[name] != value)
added = len(monitoring.get_event_duration_listeners()) - listeners
report = {"changed": changed, "listeners_added": added,
          "backends_started": xla_bridge.backends_are_initialized(), "heavy": heavy}
import matplotlib
matplotlib.use("svg")
jaxllm.plots.plot_loss([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], sys.argv[1])
report |= {"backend": matplotlib.get_backend(), "pyplot": "matplotlib.pyplot" in sys.modules}
print(json.dumps(report))
"""


def test_importing_jaxllm_changes_nothing(tmp_path):
    png = tmp_path / "loss.png"
    environment = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHILD, str(png)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {
        "changed": [],
        "listeners_added": 0,
        "backends_started": False,
        "heavy": [],
        "backend": "svg",
        "pyplot": False,
    }
    assert png.read_bytes().startswith(b"\x89PNG")


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
