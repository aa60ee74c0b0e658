"""A GPT's model FLOPs and model FLOPs utilisation (MFU), counted the way nanoGPT counts them,
and the random next-token batches the GPT benchmarks train on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxllm.models.gpt import GPTConfig


def gpt_flops_per_token(config: GPTConfig, n_params: int) -> int:
    """FLOPs of one training step (forward + backward) per token: ``6·N + 12·L·H·Q·T``.

    This is nanoGPT's ``GPT.estimate_mfu`` exactly (after the PaLM paper, appendix B):

    - ``N`` is nanoGPT's ``get_num_params(non_embedding=True)``: every parameter except the
      learned position embeddings (``block_size · n_embd``). The token embedding stays in
      ``N`` because it is tied to the output projection, whose matmul it then accounts for.
      With rotary positions there is no position table, so nothing is subtracted.
    - ``6·N``: 2 FLOPs per weight per token forward, twice that backward.
    - ``12·L·H·Q·T``: the attention score and weighted-sum matmuls (``L`` layers, ``H`` heads,
      head size ``Q``), with ``T`` the context length ``block_size`` -- not the length of the
      batch's sequences, and without halving for the causal mask, as nanoGPT does.

    Args:
      config: the model's shape (a :class:`~jaxllm.models.GPTConfig`).
      n_params: every parameter of the model, e.g. ``count_params(params)``.
    """
    position_table = config.block_size * config.n_embd if config.positions == "learned" else 0
    n_non_embedding = n_params - position_table
    layers, heads, head_dim, context = (
        config.n_layer,
        config.n_head,
        config.head_dim,
        config.block_size,
    )
    return 6 * n_non_embedding + 12 * layers * heads * head_dim * context


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: ``flops_per_token · tokens_per_s / peak_flops`` (1.0 = the peak)."""
    if peak_flops <= 0:
        raise ValueError(f"peak_flops must be > 0, got {peak_flops}")
    return flops_per_token * tokens_per_s / peak_flops


def random_lm_batch(config: GPTConfig, batch_size: int, seed: int) -> dict[str, np.ndarray]:
    """Uniformly random tokens as a next-token batch: ``inputs``, ``targets``:
    int32[batch, block_size]."""
    tokens = np.random.default_rng(seed).integers(
        0, config.vocab_size, (batch_size, config.block_size + 1), dtype=np.int32
    )
    return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}
