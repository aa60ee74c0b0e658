"""What a language model memorised of its training text: the exposure of inserted canaries
(Carlini et al., 2019, "The Secret Sharer").

A canary is a line such as ``"Anne's vault code is qjxv"``: a ``prefix`` and a random
``secret`` of ``length`` characters from an ``alphabet``, written into the training text
``repeats`` times. After training, every candidate secret (all ``|alphabet|^length`` of them) is
ranked by the model's log-probability of it after the prefix; the true secret's **exposure** is

    exposure = log2(candidates) - log2(rank),        rank 1: the most likely candidate,

from 0 (the secret ranks last) to ``log2(candidates)`` (it ranks first). For a model that never
saw the canary the rank is uniform: exposure 1 bit at the median, about log2(e) = 1.44 bits on
average. The secrets are drawn at random, so a high exposure can only come from the training
text. Each copy is a line of its own, so candidates are scored after ``"\\n" + prefix``.

    canaries = make_canaries([1, 4, 16], seed=0)
    text = insert_canaries(text, canaries, seed=0, end_fraction=0.85)  # ... train on text ...
    bits = canary_exposure(model, params, tokenizer, canaries[2])
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import string
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxllm.config import require
from jaxllm.models.gpt import GPT

# Who the canaries' prefixes name, one per canary (at most this many canaries).
OWNERS = ("Anne", "Brian", "Clara", "David", "Edith", "Frank", "Grace", "Henry")


@dataclasses.dataclass(frozen=True)
class Canary:
    """One canary: the line ``prefix + secret``, written ``repeats`` times."""

    prefix: str
    secret: str
    repeats: int
    alphabet: str = string.ascii_lowercase

    def __post_init__(self):
        require(bool(self.prefix) and "\n" not in self.prefix + self.secret,
                f"a canary is one line after a non-empty prefix, got {self.text!r}",
                ValueError)  # fmt: skip
        require(len(set(self.alphabet)) == len(self.alphabet) >= 2,
                f"a canary's alphabet needs >= 2 distinct characters, got {self.alphabet!r}",
                ValueError)  # fmt: skip
        require(len(self.secret) >= 1 and set(self.secret) <= set(self.alphabet),
                f"the secret {self.secret!r} must be >= 1 characters of {self.alphabet!r}",
                ValueError)  # fmt: skip
        require(self.repeats >= 1, f"repeats must be >= 1, got {self.repeats}", ValueError)

    @property
    def text(self) -> str:
        return self.prefix + self.secret

    @property
    def candidates(self) -> int:
        """How many secrets of its length the alphabet makes."""
        return len(self.alphabet) ** len(self.secret)


def make_canaries(
    repeats: Sequence[int],
    *,
    seed: int,
    length: int = 4,
    alphabet: str = string.ascii_lowercase,
) -> list[Canary]:
    """One canary per entry of ``repeats``, each with its own owner and a secret of ``length``
    characters drawn uniformly from ``alphabet`` with ``seed``."""
    require(
        0 < len(repeats) <= len(OWNERS),
        f"between 1 and {len(OWNERS)} canaries, got {len(repeats)}",
        ValueError,
    )  # each canary checks its own repeats, secret and alphabet
    rng = np.random.default_rng([seed, 0xCA7])
    return [
        Canary(
            f"{owner}'s vault code is ",
            "".join(rng.choice(list(alphabet), length)),
            int(r),
            alphabet,
        )
        for owner, r in zip(OWNERS, repeats, strict=False)
    ]


def insert_canaries(
    text: str, canaries: Sequence[Canary], *, seed: int, end_fraction: float = 1.0
) -> str:
    """``text`` with each canary's line inserted ``repeats`` times at line starts drawn with
    ``seed`` among the lines of its first ``end_fraction`` (a split that holds the text's start,
    as a training split cut at the end does, gets every copy)."""
    require(0 < end_fraction <= 1, f"end_fraction must be in (0, 1], got {end_fraction}",
            ValueError)  # fmt: skip
    lines = text.split("\n")
    insert_before = max(1, int(len(lines) * end_fraction))
    copies = [c.text for c in canaries for _ in range(c.repeats)]
    rng = np.random.default_rng([seed, 0x11E])
    places = np.sort(rng.integers(0, insert_before, len(copies)))
    order = rng.permutation(len(copies))
    out, start = [], 0
    for place, which in zip(places, order, strict=True):
        out += lines[start:place] + [copies[which]]
        start = place
    return "\n".join(out + lines[start:])


def secret_log_probs(
    model: Any, params: Any, tokenizer: Any, canary: Canary, *, batch_size: int = 1024
) -> np.ndarray:
    """The model's log-probability of every candidate secret after ``"\\n" + canary.prefix``:
    float64[k, ..., k] (``n`` axes, ``k = len(alphabet)``, ``n = len(secret)``), indexed by the
    candidate's characters' places in the alphabet.

    One forward pass per candidate's first ``n - 1`` characters (``k^(n-1)`` sequences) gives
    every position's next-character distribution; a candidate's log-probability is the sum of
    its characters' entries along its path.

    Raises:
      ValueError: the tokenizer is not a character tokenizer, lacks a character of the prefix
        or alphabet, or the canary does not fit in a GPT's context.
    """
    context, letters = _encoded(tokenizer, canary)
    k, n = len(letters), len(canary.secret)
    block = model.config.block_size if isinstance(model, GPT) else None  # an LSTM reads any
    require(
        block is None or len(context) + n - 1 <= block,
        f"the canary needs {len(context) + n - 1} tokens of context, the model reads {block}",
        ValueError,
    )
    heads = np.array(list(itertools.product(range(k), repeat=n - 1)), np.int64)
    heads = heads.reshape(k ** (n - 1), n - 1)  # every candidate's first n - 1 characters
    tokens = np.concatenate([np.tile(context, (len(heads), 1)), letters[heads]], axis=1)
    table = _path_log_probs(model, params, tokens, letters, len(context), batch_size)
    candidates = np.indices((k,) * n).reshape(n, -1).T  # [k^n, n], in the order of heads
    head = candidates[:, :-1] @ (k ** np.arange(n - 2, -1, -1))  # the row of its first n-1
    total = sum(table[head, j, candidates[:, j]] for j in range(n))
    return np.asarray(total).reshape((k,) * n)


def exposure(log_probs: np.ndarray, secret_index: Sequence[int]) -> float:
    """``log2(candidates) - log2(rank)``: the secret's rank is 1 plus the candidates strictly
    more likely than it (ties count in its favour)."""
    true = log_probs[tuple(secret_index)]
    rank = 1 + int(np.sum(log_probs > true))
    return math.log2(log_probs.size) - math.log2(rank)


def canary_exposure(
    model: Any, params: Any, tokenizer: Any, canary: Canary, *, batch_size: int = 1024
) -> float:
    """The exposure of ``canary``'s secret in bits (see the module docstring)."""
    table = secret_log_probs(model, params, tokenizer, canary, batch_size=batch_size)
    return exposure(table, [canary.alphabet.index(c) for c in canary.secret])


def _encoded(tokenizer: Any, canary: Canary) -> tuple[np.ndarray, np.ndarray]:
    """``("\\n" + prefix)``'s ids int32[P] and the alphabet's, one per character int32[k]."""
    require(
        getattr(tokenizer, "kind", None) == "char",
        "canary exposure scores secrets character by character: it needs a character "
        f"tokenizer, got {getattr(tokenizer, 'kind', type(tokenizer).__name__)!r}",
        ValueError,
    )
    context = np.asarray(tokenizer.encode("\n" + canary.prefix), np.int32)
    letters = np.array([int(tokenizer.encode(c)[0]) for c in canary.alphabet], np.int32)
    return context, letters


def _path_log_probs(
    model: Any,
    params: Any,
    tokens: np.ndarray,
    letters: np.ndarray,
    context_len: int,
    batch_size: int,
) -> np.ndarray:
    """``log p(letter)`` at each secret position of each row of ``tokens: int[H, P + n - 1]``:
    float64[H, n, k], in chunks of at most ``batch_size`` rows (the last padded)."""
    rows = len(tokens)
    size = min(batch_size, rows)  # one program for every chunk, none larger than needed
    padded = np.pad(tokens, ((0, -rows % size), (0, 0)))
    chunks = [
        _letter_log_probs(model, params, padded[i : i + size], letters, context_len)
        for i in range(0, len(padded), size)
    ]
    return np.concatenate([np.asarray(c) for c in chunks]).astype(np.float64)[:rows]


@functools.partial(jax.jit, static_argnames=("model", "context_len"))
def _letter_log_probs(
    model: Any, params: Any, tokens: jax.Array, letters: jax.Array, context_len: int
) -> jax.Array:
    """float32[B, n, k]: the letters' log-probabilities after each position from the
    context's last on."""
    logits = model.apply({"params": params}, tokens)[:, context_len - 1 :]
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)[..., letters]
