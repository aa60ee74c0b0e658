"""Train step and fit loop: the step equals SGD by hand, jit == no-jit, resume == uninterrupted,
NaN handling, early stopping, checkpoints that fail loudly and never take the other checkpoints
with them."""

import functools
import glob
import json
import os
import signal
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxllm.data import lm_batch
from jaxllm.losses import language_model_loss, mean_squared_error
from jaxllm.models import GPT, GPTConfig, init_params
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.train import (
    Checkpointer,
    CheckpointError,
    LoopConfig,
    MetricsWriter,
    NonFiniteLossError,
    TrainingInterrupted,
    create_train_state,
    fit,
    jit_train_step,
    make_train_step,
    read_metrics,
)

CFG = GPTConfig(vocab_size=29, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
OPT = OptimizerConfig(learning_rate=3e-3, warmup_steps=2, decay_steps=20)
STREAM = np.random.default_rng(0).integers(0, 29, 2000).astype(np.int32)


def batch_fn(step):
    return lm_batch(STREAM, seed=1, step=step, batch_size=4, seq_len=16)


@functools.cache
def setup():
    model = GPT(CFG)
    optimizer = make_optimizer(OPT)
    step = make_train_step(language_model_loss(model), optimizer)
    return model, optimizer, step, jit_train_step(step)


def fresh_state():
    _, optimizer, _, _ = setup()
    return create_train_state(init_params(CFG, jax.random.key(0)), optimizer, jax.random.key(1))


def masked_linear_problem():
    """A linear model under a masked squared error that reports its ``tokens`` (the rows
    counted), and a batch of 8 rows of which 3 are padding, all in the first half."""

    def loss_fn(params, batch, key):
        residual = batch["x"] @ params["w"] + params["b"] - batch["y"]  # (8, 2)
        mask = batch["mask"][:, None]
        tokens = jnp.sum(batch["mask"])
        loss = jnp.sum(mask * residual**2) / (2 * tokens)
        return loss, {"loss": loss, "tokens": tokens}

    rng = np.random.default_rng(4)
    params = {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}
    batch = {
        "x": rng.normal(size=(8, 3)).astype(np.float32),
        "y": rng.normal(size=(8, 2)).astype(np.float32),
        "mask": np.array([1, 0, 0, 1, 1, 1, 0, 1], np.float32),
    }
    return loss_fn, params, batch


def numpy_sgd_step(params, batch, learning_rate):
    """One SGD step on the masked loss above, differentiated by hand in float64:
    L = Σ m·r² / (2·Σm), dL/dw = Xᵀ(m·r) / Σm, dL/db = Σ m·r / Σm."""
    x, y, m = (np.asarray(batch[k], np.float64) for k in ("x", "y", "mask"))
    w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
    residual = (x @ w + b - y) * m[:, None]
    grad_w, grad_b = x.T @ residual / m.sum(), residual.sum(0) / m.sum()
    loss = np.sum(residual**2) / (2 * m.sum())
    grad_norm = np.sqrt(np.sum(grad_w**2) + np.sum(grad_b**2))
    return {"w": w - learning_rate * grad_w, "b": b - learning_rate * grad_b}, loss, grad_norm


@pytest.mark.parametrize("microbatches", [1, 2, 4])
def test_train_step_is_the_sgd_step_computed_by_hand(microbatches):
    """Two steps of plain SGD equal the hand-derived gradient in NumPy, however the batch is
    split (the padded rows sit in some micro-batches only, so the token weighting matters)."""
    loss_fn, params, batch = masked_linear_problem()
    step = jit_train_step(make_train_step(loss_fn, optax.sgd(0.3), microbatches=microbatches))
    state = create_train_state(params, optax.sgd(0.3), jax.random.key(0))
    expected = params
    for s in range(2):
        state, metrics = step(state, batch)
        expected, loss, grad_norm = numpy_sgd_step(expected, batch, 0.3)
        assert int(state.step) == s + 1
        assert float(metrics["loss"]) == pytest.approx(loss, rel=1e-5)
        assert float(metrics["grad_norm"]) == pytest.approx(grad_norm, rel=1e-5)
        assert float(metrics["tokens"]) == 5.0
        chex.assert_trees_all_close(jax.device_get(state.params), expected, atol=1e-6, rtol=1e-5)


def test_train_step_jit_equals_no_jit():
    """The jitted GPT step (dropout on) against the same step run op by op with jit disabled
    everywhere, the model's own code included."""
    _, _, step, _ = setup()
    new_state, metrics = jax.jit(step)(fresh_state(), batch_fn(0))
    with jax.disable_jit():
        ref_state, ref_metrics = step(fresh_state(), batch_fn(0))
    # The first step's learning rate is 0 (warm-up), so the gradients show in Adam's moments.
    chex.assert_trees_all_close(new_state.opt_state, ref_state.opt_state, atol=1e-6, rtol=1e-5)
    chex.assert_trees_all_close(new_state.params, ref_state.params, atol=1e-6, rtol=1e-5)
    chex.assert_trees_all_close(metrics, ref_metrics, atol=1e-5, rtol=1e-5)
    assert int(new_state.step) == int(ref_state.step) == 1
    assert float(metrics["grad_norm"]) > 0.1


def test_step_changes_parameters_and_reduces_loss_on_repeated_batch():
    _, _, _, step = setup()
    state, batch = fresh_state(), batch_fn(0)
    losses = []
    for _ in range(15):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0] - 0.3


def test_state_owns_its_parameters_and_the_step_updates_every_leaf_in_place():
    _, optimizer, _, step = setup()
    params = init_params(CFG, jax.random.key(0))
    expected = jax.device_get(params)
    for source in (params, expected):  # device arrays, and NumPy arrays (device_put may share them)
        state = create_train_state(source, optimizer, jax.random.key(1))
        buffers = {x.unsafe_buffer_pointer() for x in jax.tree.leaves(state)}
        state, _ = step(state, batch_fn(0))
        # Donated state: every new leaf is written into a buffer of the old state.
        assert {x.unsafe_buffer_pointer() for x in jax.tree.leaves(state)} <= buffers
    # ...and the caller's arrays were not donated with it.
    chex.assert_trees_all_equal(jax.device_get(params), expected)


def quiet(num_steps, **kw):
    return LoopConfig(num_steps=num_steps, progress=False, **kw)


def test_resume_equals_uninterrupted_run(tmp_path):
    _, _, _, step = setup()
    seen_a, seen_b = [], []

    def recording(seen):
        def fn(s):
            seen.append(s)
            return batch_fn(s)

        return fn

    full = fit(fresh_state(), step, recording(seen_a), quiet(12, log_every=3, checkpoint_every=6))

    ckpt = Checkpointer(tmp_path / "ckpt")
    fit(fresh_state(), step, recording(seen_b), quiet(6, log_every=3), checkpointer=ckpt)
    restored, meta = ckpt.restore(fresh_state())
    assert int(restored.step) == 6 and meta["step"] == 6
    resumed = fit(restored, step, recording(seen_b), quiet(12, log_every=3))
    ckpt.close()
    assert seen_a == seen_b == list(range(12))
    chex.assert_trees_all_close(resumed.state.params, full.state.params, atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_equal(resumed.state.rng, full.state.rng)


def test_metrics_jsonl_has_step_loss_and_val_loss(tmp_path):
    """Each record's loss is the mean of its two steps' losses, recomputed by stepping by hand;
    its tokens/s is 2 steps × 4 × 16 tokens over a time inside the fit's wall time."""
    _, _, _, step = setup()
    with MetricsWriter(tmp_path) as writer:
        start = time.perf_counter()
        fit(
            fresh_state(),
            step,
            batch_fn,
            quiet(8, log_every=2, eval_every=4),
            eval_fn=lambda params: {"loss": 1.5},
            writer=writer,
        )
        wall = time.perf_counter() - start
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    state, losses = fresh_state(), []
    for s in range(8):
        state, metrics = step(state, batch_fn(s))
        losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(
        [r["loss"] for r in records], np.reshape(losses, (4, 2)).mean(1), rtol=1e-6
    )
    seconds = [2 * 4 * 16 / r["tokens_per_s"] for r in records]  # each interval's duration
    assert 0 < sum(seconds) <= wall
    assert [r.get("val_loss") for r in records] == [None, 1.5, None, 1.5]


def test_early_stopping_on_validation_loss():
    _, _, _, step = setup()
    val_losses = iter([3.0, 2.0, 2.5, 2.4, 2.6, 1.0])
    result = fit(
        fresh_state(),
        step,
        batch_fn,
        quiet(60, eval_every=2, patience=3),
        eval_fn=lambda params: {"loss": next(val_losses)},
    )
    assert result.stop_reason == "early_stopping"
    assert int(result.state.step) == 10 and result.best_val_loss == 2.0 and result.best_step == 4


def poisoned_setup(bad_from):
    """A linear model whose loss becomes NaN from step ``bad_from`` on."""

    def loss_fn(params, batch, key):
        loss = mean_squared_error(batch["x"] @ params["w"], batch["y"]) * batch["scale"]
        return loss, {"loss": loss}

    optimizer = make_optimizer(OptimizerConfig(name="sgd", learning_rate=0.1, weight_decay=0.0))
    state = create_train_state({"w": jnp.zeros((3, 1))}, optimizer, jax.random.key(0))

    def batches(s):
        return {
            "x": np.ones((4, 3), np.float32),
            "y": np.ones((4, 1), np.float32),
            "scale": np.float32(np.nan if s + 1 >= bad_from else 1.0),
        }

    return state, jit_train_step(make_train_step(loss_fn, optimizer)), batches


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    state, step, batches = poisoned_setup(bad_from=8)
    ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=5)
    with pytest.raises(NonFiniteLossError, match="diverged at step 8") as err:
        fit(state, step, batches, quiet(20, log_every=3, checkpoint_every=3), checkpointer=ckpt)
    assert "last good checkpoint is step 6" in str(err.value)
    assert ckpt.steps() == [3, 6]
    good, _ = ckpt.restore(poisoned_setup(bad_from=8)[0])  # `state` was donated to the step
    chex.assert_tree_all_finite(good.params)
    ckpt.close()


def test_corrupt_checkpoint_raises_and_leaves_the_others_intact(tmp_path):
    state = fresh_state()
    ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=3)
    for s in (1, 2):
        ckpt.save(s, state.replace(step=jnp.int32(s)), {"note": "x"})
    for f in glob.glob(str(tmp_path / "ckpt" / "2" / "**"), recursive=True):
        if os.path.isfile(f):
            with open(f, "wb") as fh:
                fh.write(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"step 2 .* could not be read"):
        ckpt.restore(state, step=2)
    restored, meta = ckpt.restore(state)  # the newest that verifies
    assert int(restored.step) == 1 and meta["note"] == "x"
    assert ckpt.steps() == [1, 2]  # nothing deleted
    with pytest.raises(CheckpointError, match="no checkpoint for step 7"):
        ckpt.restore(state, step=7)
    ckpt.close()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        Checkpointer(tmp_path / "empty").restore(state)


def test_checkpoint_of_another_model_is_rejected(tmp_path):
    with Checkpointer(tmp_path / "ckpt") as writer:
        writer.save(1, fresh_state())
    ckpt = Checkpointer(tmp_path / "ckpt")  # a new process reading an old run
    other_cfg = GPTConfig(vocab_size=29, block_size=16, n_layer=1, n_head=2, n_embd=32)
    other = create_train_state(
        init_params(other_cfg, jax.random.key(0)), setup()[1], jax.random.key(1)
    )
    with pytest.raises(
        CheckpointError,
        match=r"has shape \(16, 48\), the model expects \(32, 96\).*another model config",
    ):
        ckpt.restore(other)
    ckpt.close()


def _with_weight_named_mlp_projection(tree, path=()):
    """``tree`` as jaxllm saved it when the MLP output projection held ``weight: [out, in]``
    (parameters and Adam's moments alike)."""
    if isinstance(tree, dict):
        in_projection = path[-2:] == ("mlp", "c_proj")
        return {
            (
                "weight" if in_projection and key == "kernel" else key
            ): _with_weight_named_mlp_projection(value, (*path, key))
            for key, value in tree.items()
        }
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_with_weight_named_mlp_projection(value, path) for value in tree))
    if isinstance(tree, tuple | list):
        return type(tree)(_with_weight_named_mlp_projection(value, path) for value in tree)
    return tree


def test_checkpoint_of_the_earlier_dense_naming_is_rejected(tmp_path):
    """Checkpoints from when the MLP output projection's parameter was ``weight`` are not
    converted: restoring one names the parameters that differ and reads nothing."""
    state = fresh_state()
    old = state.replace(
        params=_with_weight_named_mlp_projection(state.params),
        opt_state=_with_weight_named_mlp_projection(state.opt_state),
    )
    assert set(old.params["h_0"]["mlp"]["c_proj"]) == {"weight"}
    with Checkpointer(tmp_path / "ckpt") as writer:
        writer.save(1, old)
    message = (
        r"holds other parameters than the model being restored \(missing \[.*mlp/c_proj/"
        r"kernel.*unexpected \[.*mlp/c_proj/weight.*another model config"
    )
    with Checkpointer(tmp_path / "ckpt") as reader, pytest.raises(CheckpointError, match=message):
        reader.restore(state)


def test_interrupt_saves_the_last_completed_step(tmp_path):
    _, _, _, step = setup()

    def batches(s):
        if s == 5:
            raise KeyboardInterrupt
        return batch_fn(s)

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt):
        fit(fresh_state(), step, batches, quiet(10, log_every=100), checkpointer=ckpt)
    assert ckpt.steps() == [5]
    reference = fit(fresh_state(), step, batch_fn, quiet(5)).state
    restored, _ = ckpt.restore(fresh_state())
    chex.assert_trees_all_close(restored.params, reference.params, atol=1e-6)
    ckpt.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_step_in_progress_and_saves_it(tmp_path, signum):
    _, _, _, step = setup()

    def batches(s):
        if s == 5:  # while step 6 is being prepared
            os.kill(os.getpid(), signum)
        return batch_fn(s)

    ckpt = Checkpointer(tmp_path / "ckpt")
    before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted, match=f"stopped by {signum.name} after step 6"):
        fit(fresh_state(), step, batches, quiet(10, log_every=100), checkpointer=ckpt)
    assert ckpt.steps() == [6]
    assert signal.getsignal(signum) is before  # fit put the previous handler back
    reference = fit(fresh_state(), step, batch_fn, quiet(6)).state
    restored, _ = ckpt.restore(fresh_state())
    chex.assert_trees_all_equal(restored.params, reference.params)
    ckpt.close()


def test_a_signal_during_the_last_step_stops_once_it_is_saved(tmp_path):
    _, _, _, step = setup()

    def batches(s):
        if s == 4:  # while the last step is being prepared
            os.kill(os.getpid(), signal.SIGTERM)
        return batch_fn(s)

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(TrainingInterrupted, match="after step 5"):
        fit(fresh_state(), step, batches, quiet(5, log_every=100), checkpointer=ckpt)
    assert ckpt.steps() == [5]
    ckpt.close()


def test_resuming_sets_aside_the_records_logged_after_the_checkpoint(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 7)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 7, "lo')  # cut off
    with MetricsWriter(tmp_path, tensorboard=False, keep_until=3) as writer:
        writer.write(4, {"loss": 0.5})
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]
    aside = read_metrics(tmp_path / "metrics.jsonl.set-aside")
    assert [r["step"] for r in aside] == [4, 5, 6] and aside[0]["loss"] == 0.25


def test_a_repeat_within_a_second_is_the_same_request(tmp_path):
    _, _, _, step = setup()

    def batches(s):
        if s == 3:  # e.g. a launcher forwarding the Ctrl-C the terminal also sent
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return batch_fn(s)

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(TrainingInterrupted, match="after step 4"):
        fit(fresh_state(), step, batches, quiet(10, log_every=100), checkpointer=ckpt)
    assert ckpt.steps() == [4]
    ckpt.close()


def test_a_second_signal_stops_at_once_without_saving(tmp_path, monkeypatch):
    monkeypatch.setattr("jaxllm.train.stops.REPEAT_WINDOW_S", 0.0)
    _, _, _, step = setup()

    def batches(s):
        if s == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return batch_fn(s)

    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt, match="second SIGTERM") as stopped:
        fit(fresh_state(), step, batches, quiet(10, log_every=100), checkpointer=ckpt)
    assert not isinstance(stopped.value, TrainingInterrupted)
    assert ckpt.steps() == []
    ckpt.close()


def test_train_step_is_traced_once():
    """Repeated steps (new batches, new state) reuse one compilation: no re-tracing."""
    _, optimizer, _, _ = setup()
    model = GPT(CFG)
    step = jax.jit(
        chex.assert_max_traces(make_train_step(language_model_loss(model), optimizer), n=1),
        donate_argnums=0,
    )
    state = fresh_state()
    for s in range(4):
        state, _ = step(state, batch_fn(s))
    assert int(state.step) == 4
