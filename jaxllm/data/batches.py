"""Language-model batches from a token stream, as pure functions of (seed, step).

Training batches are random windows of one long int32 token stream; the
window offsets come from ``np.random.default_rng([seed, step])``, so the
batch at step ``s`` is the same whether the run started at 0 or resumed at
``s``, and each process slices its rows out of the same global batch.
Evaluation batches are consecutive windows, padded to a fixed shape with a
mask so that a jitted eval step compiles once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from jaxllm.data.tokenizers import DOCUMENT_SEPARATOR, Tokenizer, check_token_ids

__all__ = [
    "check_token_ids",
    "encode_corpus",
    "eval_batches",
    "lm_batch",
    "pad_sequences",
    "windows_at",
]


def encode_corpus(tokenizer: Tokenizer, docs: Sequence[str]) -> np.ndarray:
    """All documents as one token stream: int32[num_tokens].

    Documents are joined by the end-of-text token where the tokenizer has one
    (BPE), otherwise by ``"\\n\\n"`` (char), so the model sees where one
    document stops and the next begins.
    """
    if tokenizer.eos_id is None:
        tokens = tokenizer.encode(DOCUMENT_SEPARATOR.join(docs))
    else:
        separator = np.array([tokenizer.eos_id], dtype=np.int32)
        pieces = []
        for index, doc in enumerate(docs):
            if index:
                pieces.append(separator)
            pieces.append(tokenizer.encode(doc))
        tokens = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    if tokens.size < 2:
        raise ValueError(
            f"The corpus encodes to {tokens.size} token(s); a language model needs at least 2 "
            "(an input and its next-token target)."
        )
    return tokens.astype(np.int32, copy=False)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_stream(tokens: np.ndarray, min_length: int, seq_len: int) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D stream, got shape {tokens.shape}.")
    if tokens.size < min_length:
        raise ValueError(
            f"The token stream has {tokens.size} tokens, too few for seq_len={seq_len} "
            f"(needs at least {min_length}); use a shorter seq_len or more text."
        )
    return tokens


def lm_batch(
    tokens: np.ndarray,
    *,
    seed: int,
    step: int,
    batch_size: int,
    seq_len: int,
    process_index: int = 0,
    process_count: int = 1,
) -> dict[str, np.ndarray]:
    """This process's rows of the global training batch for ``step``.

    The global batch is ``batch_size`` windows of ``seq_len + 1`` tokens at
    offsets drawn uniformly from ``default_rng([seed, step])``;
    ``targets[b, t] = inputs[b, t + 1]`` within the window. Process ``p`` of
    ``P`` gets rows ``[p * B / P, (p + 1) * B / P)``.

    Args:
        tokens: int[num_tokens], the training stream.

    Returns:
        ``{"inputs": int32[B_local, T], "targets": int32[B_local, T]}`` with
        ``B_local = batch_size // process_count`` and ``T = seq_len``.
    """
    _check_positive(batch_size=batch_size, seq_len=seq_len, process_count=process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}.")
    if batch_size % process_count:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by process_count={process_count}; "
            "every process must get the same number of rows."
        )
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be >= 0, got seed={seed}, step={step}.")
    tokens = _check_stream(tokens, seq_len + 1, seq_len)
    # Offsets for the whole global batch are drawn on every process, so a
    # row's window does not depend on how many processes share the batch.
    offsets = np.random.default_rng([seed, step]).integers(
        0, tokens.size - seq_len, size=batch_size
    )
    rows_per_process = batch_size // process_count
    local = offsets[process_index * rows_per_process : (process_index + 1) * rows_per_process]
    return windows_at(tokens, local, seq_len)


def windows_at(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> dict[str, np.ndarray]:
    """The windows of ``seq_len + 1`` tokens starting at ``starts: int[B]`` of ``tokens`` (an
    array or a memory map) as next-token pairs: ``{"inputs": int32[B, T], "targets":
    int32[B, T]}``, ``targets[b, t] = inputs[b, t + 1]`` within the window."""
    windows = np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)]).astype(np.int32)
    return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def eval_batches(
    tokens: np.ndarray,
    *,
    batch_size: int,
    seq_len: int,
    max_batches: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive, non-overlapping windows that score every token of ``tokens`` once.

    Window ``w`` has inputs ``tokens[w*T : w*T + T]`` and targets shifted by
    one, so the targets of all windows together are ``tokens[1:]``, each
    exactly once. The last window and the last batch are padded (token 0,
    mask 0) so every batch has the same shape.

    Args:
        tokens: int[num_tokens], a validation or test stream.
        max_batches: stop after this many batches (None: the whole stream).

    Yields:
        ``{"inputs": int32[B, T], "targets": int32[B, T], "mask": float32[B, T]}``
        with ``mask`` 1 where the target is a real token.
    """
    _check_positive(batch_size=batch_size, seq_len=seq_len)
    if max_batches is not None:
        _check_positive(max_batches=max_batches)
    tokens = _check_stream(tokens, 2, seq_len)
    num_targets = tokens.size - 1
    num_windows = -(-num_targets // seq_len)
    num_batches = -(-num_windows // batch_size)
    if max_batches is not None:
        num_batches = min(num_batches, max_batches)
    span = batch_size * seq_len  # inputs per batch
    for batch in range(num_batches):
        start = batch * span
        window = np.zeros(span + 1, np.int32)  # read a batch at a time: a mapped file stays
        stream = tokens[start : start + span + 1]  # on disk, and padding costs one batch
        window[: stream.size] = stream
        mask = start + np.arange(span) < num_targets
        yield {
            "inputs": window[:-1].reshape(batch_size, seq_len),
            "targets": window[1:].reshape(batch_size, seq_len),
            "mask": mask.reshape(batch_size, seq_len).astype(np.float32),
        }


def pad_sequences(
    seqs: Sequence[Sequence[int] | np.ndarray],
    pad_id: int,
    *,
    side: str = "right",
    length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of different lengths as one padded array and its mask.

    ``side="left"`` right-aligns the sequences, as generation prompts need
    (the next token is then at the same column for every row).

    Args:
        seqs: B sequences of ids.
        length: padded length L (default: the longest sequence).

    Returns:
        ``(tokens int32[B, L], mask bool[B, L])``, mask True on real tokens.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}.")
    lengths = np.array([len(seq) for seq in seqs], dtype=np.int64)
    longest = int(lengths.max(initial=0))
    if length is None:
        length = longest
    elif length < longest:
        raise ValueError(f"length={length} is shorter than the longest sequence ({longest}).")
    columns = np.arange(length)
    if side == "right":
        mask = columns < lengths[:, None]
    else:
        mask = columns >= length - lengths[:, None]
    tokens = np.full((len(seqs), length), pad_id, dtype=np.int32)
    # Row-major boolean assignment fills each row's real slots in order.
    tokens[mask] = np.concatenate([np.asarray(seq, np.int32).reshape(-1) for seq in seqs] or [[]])
    return tokens, mask
