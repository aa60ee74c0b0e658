"""Checkpoints that can be trusted: per-array checksums verified on restore, fallback to the
newest checkpoint that verifies, non-finite states never saved nor restored."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxllm.train import (
    Checkpointer,
    CorruptCheckpointError,
    LoopConfig,
    NonFiniteLossError,
    NonFiniteStateError,
    create_train_state,
    fit,
)
from jaxllm.train.integrity import (
    _device_sums,
    _hex,
    _host_sums,
    _on_device,
    checksum,
    checksums,
    nonfinite_paths,
)

DTYPES = [np.float32, np.float16, jnp.bfloat16, np.int32, np.int8, np.uint8, np.bool_]


def reference_checksum(x: np.ndarray) -> str:
    """The module docstring's definition, one element at a time in Python integers."""
    x = np.asarray(x)
    words = x.astype(np.uint32) if x.dtype == np.bool_ else x.view(f"u{x.dtype.itemsize}")
    first = second = 0
    for i, w in enumerate(int(v) for v in words.reshape(-1)):
        first = (first + w * (2 * i + 1)) % 2**32
        h = (w + i * 0x9E3779B9) % 2**32
        h ^= h >> 16
        h = (h * 0x85EBCA6B) % 2**32
        h ^= h >> 13
        h = (h * 0xC2B2AE35) % 2**32
        h ^= h >> 16
        second = (second + h) % 2**32
    return f"{first:08x}{second:08x}"


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 7), min_size=0, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_checksum_matches_its_definition_on_host_and_device(dtype, shape, seed):
    x = (np.random.default_rng(seed).normal(size=shape) * 50).astype(dtype)
    expected = reference_checksum(x)
    assert checksum(x) == expected
    assert _hex(jax.device_get(jax.jit(_device_sums)(jnp.asarray(x)))) == expected


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 9 * 5 - 1), st.integers(0, 31), st.integers(0, 2**16))
def test_any_single_bit_flip_changes_the_checksum(index, bit, seed):
    x = np.random.default_rng(seed).normal(size=(9, 5)).astype(np.float32)
    flipped = x.copy()
    flipped.view(np.uint32).reshape(-1)[index] ^= np.uint32(1 << bit)
    assert checksum(flipped) != checksum(x)


def test_the_host_sums_large_arrays_in_pieces_as_one(monkeypatch):
    x = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    whole = _host_sums(x)
    monkeypatch.setattr("jaxllm.train.integrity._HOST_CHUNK", 16)
    assert _host_sums(x) == whole


def test_scalars_of_every_width_and_python_numbers_have_checksums():
    for x in (np.float64(1.5), np.int64(-3), np.complex64(1 + 2j), 3, 2.5, True):
        assert len(checksum(x)) == 16
    assert checksum(np.float64(1.5)) != checksum(np.float64(-1.5))
    assert nonfinite_paths({"a": float("nan"), "b": 1}) == ["a"]


def test_swapped_elements_change_the_checksum():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert checksum(x[::-1].copy()) != checksum(x)
    assert checksum(x.T.copy()) != checksum(x)  # same bits, other order


def test_checksum_of_a_sharded_array_equals_the_host_one():
    devices = np.array(jax.devices())
    x = np.random.default_rng(0).normal(size=(len(devices) * 4, 6)).astype(np.float32)
    sharded = jax.device_put(x, NamedSharding(jax.sharding.Mesh(devices, ("d",)), P("d")))
    assert _hex(jax.device_get(jax.jit(_device_sums)(sharded))) == checksum(x)
    assert _hex(_on_device(_device_sums, {"x": sharded})["x"]) == checksum(x)
    assert checksums({"x": sharded}) == {"x": checksum(x)}


def test_nonfinite_paths_names_only_the_float_arrays_that_hold_nan_or_inf():
    tree = {"a": jnp.ones(3), "b": {"c": jnp.array([1.0, jnp.inf])}, "n": jnp.arange(3)}
    assert nonfinite_paths(tree) == ["b/c"]
    assert nonfinite_paths({"d": jnp.array([jnp.nan], jnp.bfloat16)}) == ["d"]


def small_state(value=0.5):
    import optax

    noise = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)  # incompressible
    params = {"w": value + jnp.asarray(noise), "b": jnp.zeros(4)}
    return create_train_state(params, optax.adam(1e-2), jax.random.key(0))


def flip_a_bit_in_the_largest_array_file(step_dir) -> None:
    """Flip one bit in the middle of the largest file of array data (mostly the incompressible
    ``w``: the zeros of Adam's moments compress to little)."""
    files = [f for f in glob.glob(f"{step_dir}/state/**/d/*", recursive=True)]
    path = max(files, key=os.path.getsize)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))


def test_a_flipped_byte_in_array_data_is_refused_and_the_newest_good_one_restored(tmp_path, capfd):
    ckpt = Checkpointer(tmp_path / "ckpt")
    for step in (1, 2):
        ckpt.save(step, small_state(float(step)).replace(step=jnp.int32(step)))
    flip_a_bit_in_the_largest_array_file(tmp_path / "ckpt" / "2")
    with pytest.raises(CorruptCheckpointError, match="step 2 .* differ from the checksums"):
        ckpt.restore(small_state(), step=2)
    restored, _ = ckpt.restore(small_state(), set_aside=True)
    assert int(restored.step) == 1
    np.testing.assert_array_equal(restored.params["w"], small_state(1.0).params["w"])
    assert "warning: checkpoint step 2" in capfd.readouterr().err
    assert ckpt.steps() == [1]  # moved, not deleted:
    assert (tmp_path / "ckpt-set-aside" / "2" / "state").is_dir()
    ckpt.close()


def test_restoring_an_older_step_to_continue_sets_the_newer_ones_aside(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    for step in (1, 2, 3):
        ckpt.save(step, small_state().replace(step=jnp.int32(step)))
    restored, _ = ckpt.restore(small_state(), step=1, set_aside=True)
    assert int(restored.step) == 1 and ckpt.steps() == [1]
    ckpt.save(2, restored.replace(step=jnp.int32(2)))  # the run goes on without a clash
    assert sorted(os.listdir(tmp_path / "ckpt-set-aside")) == ["2", "3"]
    ckpt.close()


def test_a_non_finite_state_is_never_saved_nor_restored(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, small_state())
    with pytest.raises(NonFiniteStateError, match=r"step 2 was not saved: params/w hold NaN"):
        ckpt.save(2, small_state(float("nan")))
    assert ckpt.steps() == [1]
    # A checkpoint written without jaxllm's checks (e.g. by an older version) is refused too.
    import orbax.checkpoint as ocp

    bad = ocp.args.Composite(
        state=ocp.args.StandardSave(small_state(float("inf"))),
        metadata=ocp.args.JsonSave({"step": 3}),
    )
    ckpt._manager.save(3, args=bad, force=True)
    with pytest.raises(CorruptCheckpointError, match="step 3 .* NaN or infinite .*params/w"):
        ckpt.restore(small_state(), step=3)
    assert int(ckpt.restore(small_state())[0].step) == 0  # falls back to step 1's state
    ckpt.close()


def test_fit_stops_on_a_non_finite_validation_loss_and_names_the_last_good_checkpoint(tmp_path):
    import optax

    def step_fn(state, batch):
        return state.replace(step=state.step + 1), {"loss": jnp.float32(1.0)}

    calls = iter([1.0, float("nan")])
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(NonFiniteLossError, match="step 4: validation loss nan.*step 2"):
        fit(
            create_train_state({"w": jnp.ones(2)}, optax.sgd(0.1), jax.random.key(0)),
            step_fn,
            lambda s: {},
            LoopConfig(num_steps=6, eval_every=2, progress=False),
            eval_fn=lambda params: {"loss": next(calls)},
            checkpointer=ckpt,
        )
    assert ckpt.steps() == [2]
    ckpt.close()


def checkpoint_files(step_dir) -> list[str]:
    return sorted(
        os.path.relpath(f, step_dir)
        for f in glob.glob(f"{step_dir}/**", recursive=True)
        if os.path.isfile(f)
    )


def test_damage_to_any_file_of_a_checkpoint_is_refused_or_harmless(tmp_path):
    """A byte flipped in, or the second half cut from, each file of a checkpoint in turn: the
    restore either refuses it or gives back exactly what was saved -- never other numbers."""
    import shutil

    saved = small_state(3.0).replace(step=jnp.int32(7))
    with Checkpointer(tmp_path / "good") as writer:
        writer.save(7, saved)
    files = checkpoint_files(tmp_path / "good" / "7")
    assert any("/d/" in f for f in files) and "_CHECKPOINT_METADATA" in files
    outcomes = {}
    for name in files:
        for damage in ("flip", "truncate"):
            shutil.rmtree(tmp_path / "hurt", ignore_errors=True)
            shutil.copytree(tmp_path / "good", tmp_path / "hurt")
            path = tmp_path / "hurt" / "7" / name
            data = bytearray(path.read_bytes())
            if damage == "flip" and data:
                data[len(data) // 2] ^= 0x10
            else:
                data = data[: len(data) // 2]
            path.write_bytes(bytes(data))
            try:
                with Checkpointer(tmp_path / "hurt") as reader:
                    restored, _ = reader.restore(small_state(), step=7)
            except CorruptCheckpointError:  # so `--resume` falls back past it
                outcomes[name, damage] = "refused"
                continue
            jax.tree.map(np.testing.assert_array_equal, restored, saved)
            outcomes[name, damage] = "harmless"
    # Damage to the file that holds the arrays' bytes is caught; files orbax no longer reads
    # (superseded database nodes, commit markers) may be damaged without effect.
    largest = max(files, key=lambda f: os.path.getsize(tmp_path / "good" / "7" / f))
    assert outcomes[largest, "flip"] == outcomes[largest, "truncate"] == "refused"
    assert outcomes["metadata/metadata", "flip"] == "refused"  # the checksums themselves
