"""The language-model side of the architecture study: a GPT training step (op by op and
compiled), and decoding at batch 1 against batch 64 under the bound that reading the weights
once per token step puts on it."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from harness.flops import gpt_flops_per_token, random_lm_batch
from harness.timing import time_fn, timed_call
from jaxllm.generate import generate
from jaxllm.losses import language_model_loss
from jaxllm.models.gpt import GPT, GPTConfig, count_params, init_params
from jaxllm.optim import OptimizerConfig, make_optimizer
from jaxllm.train import create_train_state, make_train_step
from study.computations import Computation

GPT_LAYERS, GPT_HEADS, GPT_CONTEXT, GPT_BATCH, GPT_VOCAB = 2, 4, 64, 8, 256
OPTIMIZER = OptimizerConfig(name="adamw", learning_rate=1e-3)
DECODE_WIDTH, DECODE_LAYERS, DECODE_VOCAB = 256, 4, 50_257
DECODE_PROMPT, DECODE_TOKENS = 8, 32


def gpt_config(width: int) -> GPTConfig:
    """The study's GPT: ``GPT_LAYERS`` layers of ``width``, context ``GPT_CONTEXT``."""
    return GPTConfig(
        vocab_size=GPT_VOCAB,
        block_size=GPT_CONTEXT,
        n_layer=GPT_LAYERS,
        n_head=GPT_HEADS,
        n_embd=width,
        dtype="float32",
    )


def _gpt_inputs(width: int, rng: np.random.Generator) -> tuple[Any, dict]:
    config = gpt_config(width)
    params = init_params(config, jax.random.key(int(rng.integers(2**31))))
    state = create_train_state(params, make_optimizer(OPTIMIZER), jax.random.key(1))
    return state, random_lm_batch(config, GPT_BATCH, int(rng.integers(2**31)))


def _gpt_step(state: Any, batch: dict) -> Any:
    """One AdamW step of the study's GPT (its width is read from the parameters)."""
    width = state.params["wte"]["embedding"].shape[1]
    step = make_train_step(language_model_loss(GPT(gpt_config(width))), make_optimizer(OPTIMIZER))
    return step(state, batch)


def _gpt_flops(width: int) -> float:
    config = gpt_config(width)
    n_params = count_params(init_params(config, jax.random.key(0)))
    return float(gpt_flops_per_token(config, n_params) * GPT_BATCH * GPT_CONTEXT)


GPT_STEP = Computation(
    name="gpt_step",
    what=f"one AdamW training step of a {GPT_LAYERS}-layer GPT of width n, batch {GPT_BATCH} × "
    f"{GPT_CONTEXT} tokens (nanoGPT's FLOP count)",
    sizes=(64, 128, 256),
    quick_sizes=(64,),
    python_size=64,
    inputs=_gpt_inputs,
    flops=_gpt_flops,
    input_bytes=lambda n: 4.0 * 4 * (GPT_LAYERS * 12 * n * n + GPT_VOCAB * n),  # params, Adam
    python=None,
    numpy=None,
    jax=_gpt_step,
)


def decoding_rows(batches: tuple[int, ...], bandwidth: float, repeats: int) -> list[dict]:
    """Greedy KV-cache decoding of a GPT-2-shaped model (vocab 50,257, ``DECODE_LAYERS`` ×
    ``DECODE_WIDTH``) at each batch size: new tokens/s, and the bound of reading every weight
    once per step, ``bandwidth / weight bytes × batch`` tokens/s, which batch 1 is held by."""
    config = GPTConfig(
        vocab_size=DECODE_VOCAB,
        block_size=DECODE_PROMPT + DECODE_TOKENS,
        n_layer=DECODE_LAYERS,
        n_head=4,
        n_embd=DECODE_WIDTH,
        dtype="float32",
    )
    params = init_params(config, jax.random.key(0))
    weight_bytes = 4.0 * count_params(params)
    rows = []
    for batch in batches:
        prompts = np.random.default_rng(batch).integers(0, DECODE_VOCAB, (batch, DECODE_PROMPT))

        def run(prompts=prompts):
            result = generate(
                GPT(config), params, prompts, max_new_tokens=DECODE_TOKENS, greedy=True
            )
            return result.tokens

        first, _ = timed_call(run)
        seconds = time_fn(run, warmup=0, repeats=repeats).median_s
        tokens_per_s = batch * DECODE_TOKENS / seconds
        bound = bandwidth / weight_bytes * batch
        rows.append(
            {
                "batch": batch,
                "tokens_per_s": tokens_per_s,
                "first_call_s": first,
                "weight_bytes": weight_bytes,
                "weight_read_bound": bound,
                "fraction_of_bound": tokens_per_s / bound,
            }
        )
    return rows
