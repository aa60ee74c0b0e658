"""Every parallel layout and gradient accumulation give the single-device update.

The tests marked ``multidevice`` need the 8 host devices a run with ``JAXLLM_TEST_DEVICES=8``
has (``conftest.py``); gradient accumulation and the partition rule run on one device. The
two-process tests start subprocesses that make 2 devices each and talk over localhost (gloo
collectives).
"""

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.config import ConfigError
from jaxllm.losses import language_model_loss, mean_squared_error
from jaxllm.models.gpt import GPT, GPTConfig, init_params
from jaxllm.nn.mlp import MLP
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.train import Checkpointer, create_train_state
from jaxllm.train.parallel import (
    FSDP_AXIS,
    DistributedInitError,
    ParallelConfig,
    fsdp_partition_spec,
    initialize_distributed,
    make_layout,
    make_mesh,
)

WORKER = Path(__file__).with_name("multiprocess_worker.py")
OPTIMIZER = make_optimizer(OptimizerConfig(learning_rate=1e-3, weight_decay=0.1, grad_clip=1.0))
GPT_CONFIG = GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=64)
STEPS = 3

LAYOUTS = {
    "pmap-8": ParallelConfig(mode="pmap"),
    "mesh-8x1": ParallelConfig(mode="mesh"),
    "mesh-4x2": ParallelConfig(mode="mesh", data=4, fsdp=2),
    "accumulate-4": ParallelConfig(microbatches=4),
    "mesh-2x4-accumulate-2": ParallelConfig(mode="mesh", data=2, fsdp=4, microbatches=2),
    "pmap-4-accumulate-2": ParallelConfig(mode="pmap", devices=4, microbatches=2),
}


def gpt_problem():
    loss_fn = language_model_loss(GPT(GPT_CONFIG))
    params = init_params(GPT_CONFIG, jax.random.key(0))
    rng = np.random.default_rng(0)
    batches = [
        {
            "inputs": rng.integers(0, 32, (16, 16)).astype(np.int32),
            "targets": rng.integers(0, 32, (16, 16)).astype(np.int32),
        }
        for _ in range(STEPS)
    ]
    return loss_fn, params, batches


def mlp_problem():
    model = MLP(hidden_dim=24, use_bias=True)

    def loss_fn(params, batch, key):
        pred = model.apply({"params": params}, batch["x"])
        loss = mean_squared_error(pred, batch["y"])
        return loss, {"loss": loss, "tokens": jnp.asarray(batch["x"].shape[0], jnp.float32)}

    rng = np.random.default_rng(1)
    batches = [
        {
            "x": rng.normal(size=(32, 8)).astype(np.float32),
            "y": rng.normal(size=(32, 8)).astype(np.float32),
        }
        for _ in range(STEPS)
    ]
    return loss_fn, model.init(jax.random.key(2), batches[0]["x"])["params"], batches


def train(problem, config: ParallelConfig):
    loss_fn, params, batches = problem
    layout = make_layout(config)
    state = layout.place_state(create_train_state(params, OPTIMIZER, jax.random.key(1)))
    step = layout.train_step(loss_fn, OPTIMIZER, microbatches=config.microbatches)
    losses = []
    for batch in batches:
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    return jax.device_get(layout.plain_state(state)), losses


@functools.cache
def reference(problem_name: str):
    return train(PROBLEMS[problem_name](), ParallelConfig())


PROBLEMS = {"gpt": gpt_problem, "mlp": mlp_problem}


def layouts(*names: str) -> list:
    """``names`` as parameters, each layout that spreads over devices marked ``multidevice``
    with the number it uses."""

    def param(name):
        config = LAYOUTS[name]
        if config.mode == "none":
            return name
        devices = config.devices or 8
        return pytest.param(name, marks=pytest.mark.multidevice(devices))

    return [param(name) for name in names or LAYOUTS]


@pytest.mark.parametrize("problem_name", PROBLEMS)
@pytest.mark.parametrize("layout_name", layouts())
def test_layout_equals_single_device_on_full_batch(problem_name, layout_name):
    """Parameters after 3 AdamW steps and every step's loss match one device on the full batch."""
    ref_state, ref_losses = reference(problem_name)
    state, losses = train(PROBLEMS[problem_name](), LAYOUTS[layout_name])
    assert int(state.step) == STEPS
    chex.assert_trees_all_close(state.params, ref_state.params, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(state.opt_state, ref_state.opt_state, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(losses, ref_losses, atol=1e-5)


def test_accumulation_weights_micro_batches_by_their_tokens():
    """Micro-batches holding different numbers of real tokens give the full batch's update.
    Plain SGD, whose update is linear in the gradient, so only the weighting can differ."""
    loss_fn, params, batches = gpt_problem()
    mask = np.ones((16, 16), np.float32)
    mask[:4, 5:] = 0  # the first micro-batch (rows 0-3) is mostly padding
    mask[9, :] = 0
    padded = [dict(b, mask=mask) for b in batches]
    sgd = optax.sgd(0.5)

    def run(config):
        layout = make_layout(config)
        state = layout.place_state(create_train_state(params, sgd, jax.random.key(1)))
        step = layout.train_step(loss_fn, sgd, microbatches=config.microbatches)
        for batch in padded:
            state, metrics = step(state, batch)
        return jax.device_get(layout.plain_state(state)), metrics

    (ref, ref_metrics), (acc, acc_metrics) = (
        run(ParallelConfig()),
        run(ParallelConfig(microbatches=4)),
    )
    chex.assert_trees_all_close(acc.params, ref.params, atol=1e-6, rtol=1e-5)
    assert float(acc_metrics["tokens"]) == float(ref_metrics["tokens"]) == mask.sum()
    assert float(acc_metrics["loss"]) == pytest.approx(float(ref_metrics["loss"]), abs=1e-6)


@pytest.mark.multidevice
def test_mesh_shards_weights_along_fsdp_and_replicates_scalars():
    layout = make_layout(ParallelConfig(mode="mesh", data=4, fsdp=2))
    state = layout.place_state(
        create_train_state(init_params(GPT_CONFIG, jax.random.key(0)), OPTIMIZER, jax.random.key(1))
    )
    kernel = state.params["h_0"]["mlp"]["c_fc"]["kernel"]  # (64, 256): split along the 256
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, FSDP_AXIS)
    assert kernel.addressable_shards[0].data.shape == (64, 128)
    proj = state.params["h_0"]["attn"]["c_proj"]["kernel"]  # (64, 64): the first axis on ties
    assert proj.sharding.spec == jax.sharding.PartitionSpec(FSDP_AXIS, None)
    mu = state.opt_state[1][0].mu["h_0"]["mlp"]["c_fc"]["kernel"]  # Adam's moments follow
    assert mu.sharding.spec == kernel.sharding.spec
    assert state.step.sharding.is_fully_replicated
    counts = [leaf for leaf in jax.tree.leaves(state.opt_state) if leaf.ndim == 0]
    assert counts and all(c.sharding.is_fully_replicated for c in counts)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4096), min_size=0, max_size=3), fsdp=st.sampled_from([1, 2, 4, 8])
)
def test_fsdp_partition_spec_splits_one_divisible_axis(shape, fsdp):
    spec = fsdp_partition_spec(tuple(shape), fsdp)
    sharded = [i for i, axis in enumerate(spec) if axis == FSDP_AXIS]
    assert len(sharded) <= 1
    if sharded:
        (i,) = sharded
        assert fsdp > 1 and shape[i] % fsdp == 0 and len(shape) >= 2
        assert shape[i] == max(s for s in shape if s % fsdp == 0)
    elif fsdp > 1 and len(shape) >= 2 and np.prod(shape) >= 2**12:
        assert all(s % fsdp for s in shape)


@pytest.mark.multidevice
def test_checkpoint_from_pmap_resumes_under_a_mesh_like_an_uninterrupted_run(tmp_path):
    loss_fn, params, batches = gpt_problem()
    full, _ = train((loss_fn, params, batches), ParallelConfig())

    pmap = make_layout(ParallelConfig(mode="pmap"))
    state = pmap.place_state(create_train_state(params, OPTIMIZER, jax.random.key(1)))
    step = pmap.train_step(loss_fn, OPTIMIZER)
    for batch in batches[:2]:
        state, _ = step(state, batch)
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(2, pmap.plain_state(state))

        mesh = make_layout(ParallelConfig(mode="mesh", data=4, fsdp=2))
        target = mesh.place_state(create_train_state(params, OPTIMIZER, jax.random.key(9)))
        resumed, _ = ckpt.restore(target)
    assert resumed.params["h_0"]["mlp"]["c_fc"]["kernel"].sharding.spec[1] == FSDP_AXIS
    resumed, _ = mesh.train_step(loss_fn, OPTIMIZER)(resumed, batches[2])
    chex.assert_trees_all_close(jax.device_get(resumed), full, atol=1e-5, rtol=1e-5)


@pytest.mark.multidevice
def test_clear_errors_for_layouts_that_do_not_fit_the_devices():
    with pytest.raises(ValueError, match="cannot be split evenly over 8 devices"):
        make_layout(ParallelConfig(mode="pmap")).place_batch({"x": np.zeros((12, 3))})
    with pytest.raises(ValueError, match="does not match the 8 devices"):
        make_mesh(jax.devices(), data=3, fsdp=2)
    with pytest.raises(ValueError, match="fsdp must divide 8"):
        make_mesh(jax.devices(), fsdp=3)
    with pytest.raises(ValueError, match="only 8 cpu devices"):
        make_layout(ParallelConfig(mode="pmap", devices=16))


def test_clear_errors_for_configs_that_cannot_work():
    with pytest.raises(ConfigError, match="out of range for 2 processes"):
        ParallelConfig(mode="mesh", num_processes=2, process_id=2)
    with pytest.raises(ConfigError, match="mode must be one of"):
        ParallelConfig(mode="ddp")
    with pytest.raises(ConfigError, match="runs in one process"):
        ParallelConfig(mode="pmap", num_processes=2)
    with pytest.raises(ValueError, match="out of range for 2 processes"):
        initialize_distributed("127.0.0.1:1234", 2, 5)
    with pytest.raises(ValueError, match="not host:port"):
        initialize_distributed("localhost", 2, 0)
    with pytest.raises(ValueError, match="cannot be split into 3 equal micro-batches"):
        train(gpt_problem(), ParallelConfig(microbatches=3))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(tmp_path: Path, *args: str, process_ids=(0, 1), timeout: float = 240):
    """Start the workers ``process_ids`` of a 2-process run on localhost (2 CPU devices each);
    return each one's ``(exit code, output)``."""
    port = free_port()
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or "",
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--out",
                str(tmp_path),
                *args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in process_ids
    ]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append((p.returncode, out))
    finally:
        for p in procs:
            p.kill()
    return outputs


@pytest.mark.slow  # ~15 s on 2 cores; the coordinator test below keeps the worker in `make test`
@pytest.mark.multidevice(1)  # its worker processes make 2 devices each
def test_two_processes_train_like_one_and_their_checkpoint_restores_in_one(tmp_path):
    """2 processes × 2 devices (a 2 × 2 mesh, each process feeding its own rows) end with the
    parameters of one device on the full batch; the checkpoint they wrote restores here."""
    results = run_workers(tmp_path, "--steps", str(STEPS))
    for code, out in results:
        assert code == 0, out[-3000:]
    loss_fn, params, batches = gpt_problem()
    full, _ = train((loss_fn, params, batches), ParallelConfig())
    two = dict(np.load(tmp_path / "params.npz"))
    flat = {
        "/".join(k.key for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_leaves_with_path(full.params)
    }
    assert two.keys() == flat.keys()
    for name, value in flat.items():
        np.testing.assert_allclose(two[name], value, atol=1e-5, err_msg=name)

    with Checkpointer(tmp_path / "checkpoints") as ckpt:
        restored, _ = ckpt.restore(create_train_state(params, OPTIMIZER, jax.random.key(1)))
    chex.assert_trees_all_close(jax.device_get(restored), full, atol=1e-5, rtol=1e-5)


@pytest.mark.multidevice(1)  # a worker process of a 2-process run
def test_a_coordinator_that_never_answers_times_out_with_a_message(tmp_path):
    """Process 1 waiting for a process 0 that was never started gives up after its timeout."""
    results = run_workers(tmp_path, "--init-timeout", "3", process_ids=(1,), timeout=90)
    code, out = results[0]
    assert code != 0
    assert f"{DistributedInitError.__name__}" in out and "could not join the run" in out, out[
        -3000:
    ]


@pytest.mark.multidevice(1)  # a worker process of a 2-process run
def test_a_process_0_whose_peers_never_come_ends_with_one_line(tmp_path):
    """Process 0 alone: at its timeout one error line and status 2, not XLA's abort."""
    results = run_workers(tmp_path, "--init-timeout", "3", process_ids=(0,), timeout=90)
    code, out = results[0]
    assert code == 2, out[-3000:]
    assert "did not all join within 3 s" in out and "stack trace" not in out, out[-3000:]


@pytest.mark.parametrize("layout_name", layouts("pmap-8", "mesh-2x4-accumulate-2"))
def test_bfloat16_compute_composes_with_every_layout(layout_name):
    """float32 parameters, bf16 matmuls, float32 loss: the layouts agree with one device to
    bf16 rounding (they sum the same products in another order)."""
    config = GPTConfig(**{**GPT_CONFIG.__dict__, "dtype": "bfloat16"})
    loss_fn, _, batches = gpt_problem()
    loss_fn = language_model_loss(GPT(config))
    params = init_params(config, jax.random.key(0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    ref, ref_losses = train((loss_fn, params, batches), ParallelConfig())
    state, losses = train((loss_fn, params, batches), LAYOUTS[layout_name])
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state.params))
    np.testing.assert_allclose(losses, ref_losses, atol=1e-2)

    # Adam turns tiny gradient differences into full-size steps on a few weights, so compare
    # the whole update: it must point the same way and have the same size.
    def moved(p):
        pairs = zip(jax.tree.leaves(p), jax.tree.leaves(params), strict=True)
        return np.concatenate([(a - b).ravel() for a, b in pairs])

    ours, theirs = moved(state.params), moved(ref.params)
    assert np.linalg.norm(ours - theirs) < 0.05 * np.linalg.norm(theirs)


@pytest.mark.parametrize("layout_name", layouts("pmap-8", "mesh-4x2", "accumulate-4"))
def test_training_never_deletes_the_callers_arrays(layout_name):
    """The step donates its state; placing copies first keeps the arrays the user passed in."""
    loss_fn, params, batches = gpt_problem()
    state = create_train_state(params, OPTIMIZER, jax.random.key(1))
    layout = make_layout(LAYOUTS[layout_name])
    placed = layout.place_state(state)
    layout.train_step(loss_fn, OPTIMIZER, microbatches=LAYOUTS[layout_name].microbatches)(
        placed, batches[0]
    )
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))
