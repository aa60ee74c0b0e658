"""Test set-up: one device unless asked for more, and a persistent compilation cache so repeated
shapes compile once per machine.

Most tests run on the default single device, the set-up ``make demo`` and most users have. The
tests that need several devices (pmap, meshes, sharding, several processes) are marked
``@pytest.mark.multidevice`` (``multidevice(n)``: n devices, default 8) and run in a process
started with ``JAXLLM_TEST_DEVICES=8``, which splits the host CPU into that many XLA devices
(``make test`` runs both kinds, one pytest process each). A multidevice test collected in a
process with too few devices is skipped, naming the command that runs it, when the process did
not ask for devices, and fails when it asked for too few.
"""

import os
from pathlib import Path

import jax
import pytest

MULTIDEVICE_COMMAND = 'JAXLLM_TEST_DEVICES=8 python -m pytest -m "multidevice and not slow" tests'
DEFAULT_DEVICES = 8  # a bare `multidevice` marker


def _requested_devices() -> int | None:
    value = os.environ.get("JAXLLM_TEST_DEVICES", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(
            f"JAXLLM_TEST_DEVICES must be a positive number of host devices, got {value!r}"
        )
    return int(value)


_ROOT = Path(__file__).resolve().parents[1]
_CACHE = Path(os.environ.get("JAXLLM_TEST_CACHE", _ROOT / ".cache" / "jax"))
_REQUESTED = _requested_devices()
# Before any JAX work. The requested devices are host (CPU) devices, also on a machine with an
# accelerator, whose single device would not do.
if _REQUESTED is not None:
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", _REQUESTED)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

_TOO_FEW_DEVICES = pytest.StashKey[str]()


def devices_needed(item: pytest.Item) -> int:
    """How many devices a test marked ``multidevice`` needs (0: not marked)."""
    marker = item.get_closest_marker("multidevice")
    if marker is None:
        return 0
    return int(marker.args[0] if marker.args else marker.kwargs.get("devices", DEFAULT_DEVICES))


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what it deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needed = {item: devices_needed(item) for item in items}
    if not any(needed.values()):
        return  # JAX's backend is left uninitialised
    available = jax.device_count()
    for item, n in needed.items():
        if n <= available:
            continue
        reason = (
            f"needs {n} devices, this process has {available} (JAXLLM_TEST_DEVICES="
            f"{_REQUESTED or 'unset'}); run it with: {MULTIDEVICE_COMMAND}"
        )
        if _REQUESTED is None:
            item.add_marker(pytest.mark.skip(reason=reason))
        else:  # devices were asked for, and too few came: a broken set-up, not a choice
            item.stash[_TOO_FEW_DEVICES] = reason


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = item.stash.get(_TOO_FEW_DEVICES, None)
    if reason is not None:
        pytest.fail(reason, pytrace=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """A line under the results when multidevice tests were skipped (also from xdist workers)."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "JAXLLM_TEST_DEVICES=unset" in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} multidevice tests were skipped for too few devices "
            f"(JAXLLM_TEST_DEVICES unset); run them with: {MULTIDEVICE_COMMAND}",
            yellow=True,
            bold=True,
        )
