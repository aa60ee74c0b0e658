"""Checkpoint averaging against the mean of the arrays that were saved, in every dtype a
train state holds, and its errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxllm.train import Checkpointer, CheckpointError, create_train_state
from jaxllm.train.averaging import average_checkpoints


def state_with(params):
    return create_train_state(params, optax.sgd(0.1), jax.random.key(0))


def params_at(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {
        "w": rng.normal(size=(3, 4)).astype(np.float32),
        "half": jnp.asarray(rng.normal(size=(5,)), jnp.bfloat16),
        "ids": np.arange(4, dtype=np.int32),  # not averaged: must agree
    }


@pytest.fixture
def checkpointer(tmp_path):
    with Checkpointer(tmp_path / "checkpoints", max_to_keep=10) as c:
        for step in (10, 20, 30):
            c.save(step, state_with(params_at(step)))
        yield c


def test_the_average_is_the_mean_of_the_saved_arrays(checkpointer):
    averaged = average_checkpoints(checkpointer, state_with(params_at(0)), [30, 10])
    saved = [params_at(10), params_at(30)]
    np.testing.assert_allclose(averaged["w"], (saved[0]["w"] + saved[1]["w"]) / 2, rtol=1e-6)
    half = (np.float64(saved[0]["half"]) + np.float64(saved[1]["half"])) / 2
    assert averaged["half"].dtype == jnp.bfloat16 and averaged["w"].dtype == np.float32
    np.testing.assert_allclose(np.float64(averaged["half"]), half, rtol=1e-2)
    np.testing.assert_array_equal(averaged["ids"], np.arange(4))


def test_one_step_gives_that_checkpoint_unchanged(checkpointer):
    one = average_checkpoints(checkpointer, state_with(params_at(0)), [20])
    chex.assert_trees_all_equal(one, {k: np.asarray(v) for k, v in params_at(20).items()})


def test_bad_steps_and_differing_integers_are_named(checkpointer, tmp_path):
    target = state_with(params_at(0))
    for steps, message in (([], "distinct steps"), ([10, 10], "distinct steps"),
                           ([10, 40], r"steps \[40\] are not among")):  # fmt: skip
        with pytest.raises(CheckpointError, match=message):
            average_checkpoints(checkpointer, target, steps)
    other = params_at(40) | {"ids": np.arange(4, dtype=np.int32)[::-1].copy()}
    checkpointer.save(40, state_with(other))
    with pytest.raises(CheckpointError, match="integer parameters differ"):
        average_checkpoints(checkpointer, target, [10, 40])
