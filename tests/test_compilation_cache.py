"""jaxllm.runtime.use_compilation_cache: a second process loads the first one's compiled program.

Each case runs in a fresh interpreter: the test process has its own cache folder (conftest).
"""

import json
import os
import subprocess
import sys

_CHILD = """
import json, jax, jax.numpy as jnp
from jaxllm.runtime import use_compilation_cache
hits = []
def count_hit(event, **kw):
    if event == "/jax/compilation_cache/cache_hits":
        hits.append(event)
jax.monitoring.register_event_listener(count_hit)
folder = use_compilation_cache({folder!r})
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x) @ x.T + 1.0)(jnp.ones((8, 8))))
print(json.dumps({{"folder": folder, "hits": len(hits)}}))
"""


def _child(folder, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"} | env
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(folder=str(folder))],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_compiled_program(tmp_path):
    folder = tmp_path / "xla"
    first = _child(folder)
    assert first == {"folder": str(folder), "hits": 0}
    assert any(folder.iterdir())
    assert _child(folder)["hits"] >= 1


def test_a_folder_the_user_chose_is_kept(tmp_path):
    chosen = tmp_path / "mine"
    seen = _child(tmp_path / "ours", JAX_COMPILATION_CACHE_DIR=str(chosen))
    assert seen["folder"] == str(chosen)
    assert not (tmp_path / "ours").exists()


_FIT_CHILD = """
import json, jax, numpy as np
from jaxllm.runtime import use_compilation_cache
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
)
use_compilation_cache({folder!r})
from jaxllm.classic import LinearConfig, fit_linear
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 5)).astype(np.float32)
fit_linear(X, (X[:, 0] > 0).astype(int), LinearConfig(loss="squared_hinge"))
print(json.dumps({{"hits": len(hits)}}))
"""


def test_a_library_entry_point_is_cached_with_the_default_threshold(tmp_path):
    """``fit_linear``'s solve compiles in well under JAX's own 1 s threshold; opting in once
    still keeps it for the next process."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
    }
    script = _FIT_CHILD.format(folder=str(tmp_path / "xla"))

    def run() -> dict:
        out = subprocess.run([sys.executable, "-c", script], env=environment,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert run()["hits"] == 0
    assert run()["hits"] >= 1
