"""The architecture study's computations, each written once per programming style.

A :class:`Computation` holds one computation at a parametrised ``size`` in up to three
forms: ``python`` (lists and loops: one scalar operation after another, as a traditional
program runs), ``numpy`` (whole-array operations in compiled C loops and BLAS), and ``jax`` (a
pure ``jax.numpy`` function, run op by op or under ``jax.jit``). All forms take the same
inputs (:attr:`Computation.inputs`; the Python form gets arrays as nested lists) and return
the same numbers; a test holds them to that. A form that does not apply is ``None``: TF-IDF
is string work, which has no JAX form.

The computations:

- ``matmul``: ``A @ B`` for ``float32[n, n]`` matrices.
- ``mlp_step``: one SGD step (forward, backward, update) of a two-layer ReLU network with a
  softmax cross-entropy loss, batch 64, ``n`` inputs and ``n`` hidden units, 10 classes.
- ``attention``: causal self-attention ``softmax(q kᵀ / √d + mask) v`` over ``n`` positions,
  width 64.
- ``logistic_gd``: 20 steps of full-batch gradient descent on the logistic loss, ``n`` rows of
  32 features.
- ``word2vec_step``: one skip-gram negative-sampling step over ``n`` (centre, context) pairs
  with 5 noise words each, 10,000 words × 100 dimensions (jaxllm's ``skipgram_update``).
- ``tfidf``: TF-IDF of ``n`` documents of 20 words from a Zipf-distributed vocabulary (jaxllm's
  ``fit_transform``, host NumPy, as the NumPy form); its work is counted in tokens.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MLP_BATCH, MLP_CLASSES, MLP_LR = 64, 10, 0.1
ATTENTION_WIDTH = 64
LOGISTIC_FEATURES, LOGISTIC_STEPS, LOGISTIC_LR = 32, 20, 0.5
W2V_VOCAB, W2V_DIM, W2V_NEGATIVES, W2V_LR = 10_000, 100, 5, 0.025
TFIDF_WORDS, TFIDF_VOCAB = 20, 50_000


@dataclasses.dataclass(frozen=True)
class Computation:
    """One computation in every style.

    Attributes:
      name, what: a key and a one-line description.
      sizes, quick_sizes: the sizes measured by default and with ``--quick``.
      python_size: the size the pure-Python form runs at (its time at larger sizes is
        extrapolated by the FLOP count, and marked so).
      inputs: ``(size, rng) -> tuple of inputs`` (arrays, or a list of strings).
      flops: ``size -> work`` of one call, in ``unit``s (FLOPs: multiply-adds count 2).
      input_bytes: ``size -> bytes`` of the inputs (for the memory check).
      python, numpy, jax: the computation in each style (``None`` where one does not apply).
      unit: what ``flops`` counts: ``"FLOP"`` (placed on the roofline) or ``"token"``.
    """

    name: str
    what: str
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    python_size: int
    inputs: Callable[[int, np.random.Generator], tuple[Any, ...]]
    flops: Callable[[int], float]
    input_bytes: Callable[[int], float]
    python: Callable[..., Any] | None
    numpy: Callable[..., Any] | None
    jax: Callable[..., Any] | None
    unit: str = "FLOP"


# ---------------------------------------------------------------------------------------------
# Pure-Python helpers: matrices as lists of rows.


def _matmul(a: list, b: list) -> list:
    columns = list(zip(*b, strict=True))
    return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in columns] for row in a]


def _transpose(a: list) -> list:
    return [list(column) for column in zip(*a, strict=True)]


def _softmax_rows(z: list) -> list:
    out = []
    for row in z:
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = sum(exps)
        out.append([e / total for e in exps])
    return out


# ---------------------------------------------------------------------------------------------
# matmul


def _matmul_inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return tuple(rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))


MATMUL = Computation(
    name="matmul",
    what="A @ B, float32[n, n]",
    sizes=(64, 256, 1024, 2048),
    quick_sizes=(64, 512),
    python_size=96,
    inputs=_matmul_inputs,
    flops=lambda n: 2.0 * n**3,
    input_bytes=lambda n: 2 * 4.0 * n * n,
    python=_matmul,
    numpy=np.matmul,
    jax=jnp.matmul,
)


# ---------------------------------------------------------------------------------------------
# mlp_step: x float32[B, n], one-hot targets float32[B, 10], W1 [n, n], W2 [n, 10]


def _mlp_inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    x = rng.standard_normal((MLP_BATCH, n), dtype=np.float32)
    targets = np.eye(MLP_CLASSES, dtype=np.float32)[rng.integers(MLP_CLASSES, size=MLP_BATCH)]
    w1 = rng.standard_normal((n, n), dtype=np.float32) / np.sqrt(n, dtype=np.float32)
    w2 = rng.standard_normal((n, MLP_CLASSES), dtype=np.float32) / np.sqrt(n, dtype=np.float32)
    return x, targets, w1, w2


def _mlp_python(x: list, targets: list, w1: list, w2: list) -> tuple[list, list]:
    pre = _matmul(x, w1)
    hidden = [[max(v, 0.0) for v in row] for row in pre]
    probs = _softmax_rows(_matmul(hidden, w2))
    scale = 1.0 / len(x)
    d_logits = [
        [(p - t) * scale for p, t in zip(pr, tr, strict=True)]
        for pr, tr in zip(probs, targets, strict=True)
    ]
    d_w2 = _matmul(_transpose(hidden), d_logits)
    d_hidden = _matmul(d_logits, _transpose(w2))
    d_pre = [
        [d if p > 0 else 0.0 for d, p in zip(dr, pr, strict=True)]
        for dr, pr in zip(d_hidden, pre, strict=True)
    ]
    d_w1 = _matmul(_transpose(x), d_pre)
    return _sgd(w1, d_w1), _sgd(w2, d_w2)


def _sgd(w: list, g: list) -> list:
    return [
        [a - MLP_LR * b for a, b in zip(wr, gr, strict=True)] for wr, gr in zip(w, g, strict=True)
    ]


def _mlp_numpy(x, targets, w1, w2) -> tuple[np.ndarray, np.ndarray]:
    pre = x @ w1
    hidden = np.maximum(pre, 0)
    logits = hidden @ w2
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exps / exps.sum(axis=1, keepdims=True)
    d_logits = (probs - targets) / x.shape[0]
    d_hidden = (d_logits @ w2.T) * (pre > 0)
    return w1 - MLP_LR * (x.T @ d_hidden), w2 - MLP_LR * (hidden.T @ d_logits)


def _mlp_jax(x, targets, w1, w2) -> tuple[jax.Array, jax.Array]:
    def loss(weights):
        logits = jnp.maximum(x @ weights[0], 0) @ weights[1]
        return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=1))

    g1, g2 = jax.grad(loss)((w1, w2))
    return w1 - MLP_LR * g1, w2 - MLP_LR * g2


MLP_STEP = Computation(
    name="mlp_step",
    what=f"one SGD step of a 2-layer ReLU MLP, batch {MLP_BATCH}, n inputs, n hidden, "
    f"{MLP_CLASSES} classes",
    sizes=(64, 256, 1024, 2048),
    quick_sizes=(64, 512),
    python_size=64,
    inputs=_mlp_inputs,
    # forward x·W1, h·W2; backward hᵀ·dz, dz·W2ᵀ, xᵀ·dh (no gradient for x): 2 FLOPs a term
    flops=lambda n: MLP_BATCH * (4.0 * n * n + 6.0 * n * MLP_CLASSES),
    input_bytes=lambda n: 4.0 * (MLP_BATCH * (n + MLP_CLASSES) + n * n + n * MLP_CLASSES),
    python=_mlp_python,
    numpy=_mlp_numpy,
    jax=_mlp_jax,
)


# ---------------------------------------------------------------------------------------------
# attention: q, k, v float32[n, 64]


def _attention_inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return tuple(rng.standard_normal((n, ATTENTION_WIDTH), dtype=np.float32) for _ in range(3))


def _attention_python(q: list, k: list, v: list) -> list:
    scale = 1.0 / math.sqrt(len(q[0]))
    scores = [
        [sum(a * b for a, b in zip(q[i], k[j], strict=True)) * scale for j in range(i + 1)]
        for i in range(len(q))
    ]
    weights = _softmax_rows(scores)
    return [
        [sum(w * v[j][c] for j, w in enumerate(row)) for c in range(len(v[0]))] for row in weights
    ]


def _attention_numpy(q, k, v) -> np.ndarray:
    n = q.shape[0]
    scores = (q @ k.T) / np.float32(np.sqrt(q.shape[1]))
    scores = np.where(np.tri(n, dtype=bool), scores, -np.inf)
    exps = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (exps / exps.sum(axis=1, keepdims=True)) @ v


def _attention_jax(q, k, v) -> jax.Array:
    n = q.shape[0]
    scores = (q @ k.T) / jnp.sqrt(jnp.float32(q.shape[1]))
    scores = jnp.where(jnp.tri(n, dtype=bool), scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=1) @ v


ATTENTION = Computation(
    name="attention",
    what=f"causal self-attention over n positions, width {ATTENTION_WIDTH}",
    sizes=(128, 512, 2048),
    quick_sizes=(128, 512),
    python_size=128,
    inputs=_attention_inputs,
    flops=lambda n: 4.0 * n * n * ATTENTION_WIDTH,  # q kᵀ and weights @ v, full (masked) squares
    input_bytes=lambda n: 3 * 4.0 * n * ATTENTION_WIDTH + 4.0 * n * n,  # and the score matrix
    python=_attention_python,
    numpy=_attention_numpy,
    jax=_attention_jax,
)


# ---------------------------------------------------------------------------------------------
# logistic_gd: X float32[n, 32], y float32[n] in {0, 1}; from zero weights


def _logistic_inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    x = rng.standard_normal((n, LOGISTIC_FEATURES), dtype=np.float32)
    truth = rng.standard_normal(LOGISTIC_FEATURES, dtype=np.float32)
    return x, (x @ truth > 0).astype(np.float32)


def _logistic_python(x: list, y: list) -> list:
    w = [0.0] * len(x[0])
    for _ in range(LOGISTIC_STEPS):
        grad = [0.0] * len(w)
        for row, target in zip(x, y, strict=True):
            z = sum(a * b for a, b in zip(row, w, strict=True))
            error = 1.0 / (1.0 + math.exp(-z)) - target
            for j, value in enumerate(row):
                grad[j] += error * value
        w = [wj - LOGISTIC_LR * gj / len(x) for wj, gj in zip(w, grad, strict=True)]
    return w


def _logistic_numpy(x, y, learning_rate: float = LOGISTIC_LR) -> np.ndarray:
    w = np.zeros(x.shape[1], np.float32)
    for _ in range(LOGISTIC_STEPS):
        error = 1 / (1 + np.exp(-(x @ w))) - y
        w = w - np.float32(learning_rate) * (x.T @ error) / np.float32(x.shape[0])
    return w


def _logistic_jax(x, y, learning_rate: Any = LOGISTIC_LR) -> jax.Array:
    """A Python loop of ``jax.numpy`` operations: op by op when called as it is, one unrolled
    program under ``jax.jit``."""
    w = jnp.zeros(x.shape[1], jnp.float32)
    for _ in range(LOGISTIC_STEPS):
        error = jax.nn.sigmoid(x @ w) - y
        w = w - learning_rate * (x.T @ error) / x.shape[0]
    return w


LOGISTIC_GD = Computation(
    name="logistic_gd",
    what=f"{LOGISTIC_STEPS} full-batch gradient-descent steps of logistic regression, n rows × "
    f"{LOGISTIC_FEATURES} features",
    sizes=(1_000, 100_000, 1_000_000),
    quick_sizes=(1_000, 100_000),
    python_size=2_000,
    inputs=_logistic_inputs,
    flops=lambda n: LOGISTIC_STEPS * 4.0 * n * LOGISTIC_FEATURES,
    input_bytes=lambda n: 4.0 * n * (LOGISTIC_FEATURES + 1),
    python=_logistic_python,
    numpy=_logistic_numpy,
    jax=_logistic_jax,
)

# ---------------------------------------------------------------------------------------------
# word2vec_step: W_in, W_out float32[V, 100]; centres, contexts int32[n]; negatives int32[n, 5]


def _word2vec_inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    w_in = (rng.random((W2V_VOCAB, W2V_DIM), dtype=np.float32) - 0.5) / W2V_DIM
    w_out = rng.standard_normal((W2V_VOCAB, W2V_DIM), dtype=np.float32) * 0.1
    words = rng.integers(W2V_VOCAB, size=(n, 2 + W2V_NEGATIVES)).astype(np.int32)
    return w_in, w_out, words[:, 0], words[:, 1], words[:, 2:]


def _word2vec_python(w_in: list, w_out: list, centres: list, contexts: list, negatives: list):
    w_in, w_out = [row[:] for row in w_in], [row[:] for row in w_out]
    grads_h, updates = [], []
    for centre, context, noise in zip(centres, contexts, negatives, strict=True):
        h, grad_h = w_in[centre], [0.0] * len(w_in[centre])
        for k, target in enumerate([context, *noise]):
            if k > 0 and target == context:
                continue
            u = w_out[target]
            f = sum(a * b for a, b in zip(h, u, strict=True))
            g = (
                ((1.0 if k == 0 else 0.0) - 1.0 / (1.0 + math.exp(-f))) * W2V_LR
                if abs(f) < 6
                else 0.0
            )
            grad_h = [a + g * b for a, b in zip(grad_h, u, strict=True)]
            updates.append((target, [g * a for a in h]))
        grads_h.append((centre, grad_h))
    for target, change in updates:  # every pair read the weights before the step, as a batch
        w_out[target] = [a + b for a, b in zip(w_out[target], change, strict=True)]
    for centre, change in grads_h:
        w_in[centre] = [a + b for a, b in zip(w_in[centre], change, strict=True)]
    return w_in, w_out


def _word2vec_numpy(w_in, w_out, centres, contexts, negatives):
    targets = np.concatenate([contexts[:, None], negatives], axis=1)
    use = np.concatenate([np.ones_like(contexts[:, None], bool), negatives != contexts[:, None]], 1)
    h, u = w_in[centres], w_out[targets]
    f = np.einsum("bd,bkd->bk", h, u)
    labels = (np.arange(f.shape[1]) == 0).astype(np.float32)
    with np.errstate(over="ignore"):  # exp(-f) of a large negative score: σ = 0, cut anyway
        g = np.where(np.abs(f) < 6, labels - 1 / (1 + np.exp(-f)), 0) * W2V_LR * use
    w_out, w_in = w_out.copy(), w_in.copy()
    np.add.at(w_out, targets, g[..., None] * h[:, None, :])
    np.add.at(w_in, centres, np.einsum("bk,bkd->bd", g, u))
    return w_in, w_out


def _word2vec_jax(w_in, w_out, centres, contexts, negatives):
    from jaxllm.embeddings.word2vec import skipgram_update

    weights = jnp.ones(centres.shape, jnp.float32)
    lr = jnp.float32(W2V_LR)
    w_in, w_out, _ = skipgram_update(w_in, w_out, centres, contexts, negatives, weights, lr)
    return w_in, w_out


WORD2VEC_STEP = Computation(
    name="word2vec_step",
    what=f"one skip-gram negative-sampling step, n pairs × {1 + W2V_NEGATIVES} output words, "
    f"{W2V_VOCAB:,} × {W2V_DIM} vectors",
    sizes=(1_024, 16_384, 131_072),
    quick_sizes=(1_024, 16_384),
    python_size=256,
    inputs=_word2vec_inputs,
    # h·u, g·h and g·u for each of the 1+K output words: 3 multiply-adds per dimension
    flops=lambda n: 6.0 * n * (1 + W2V_NEGATIVES) * W2V_DIM,
    input_bytes=lambda n: 4.0 * (2 * W2V_VOCAB * W2V_DIM + n * (2 + W2V_NEGATIVES)),
    python=_word2vec_python,
    numpy=_word2vec_numpy,
    jax=_word2vec_jax,
)


# ---------------------------------------------------------------------------------------------
# tfidf: n documents of 20 words


def _tfidf_inputs(n: int, rng: np.random.Generator) -> tuple[list[str]]:
    ranks = np.minimum(rng.zipf(1.3, size=(n, TFIDF_WORDS)), TFIDF_VOCAB) - 1
    return ([" ".join(f"w{rank}" for rank in row) for row in ranks],)


def _tfidf_python(docs: list[str]) -> list[dict[str, float]]:
    """scikit-learn's defaults by hand: counts, smooth idf, l2-normalised rows."""
    counts = []
    for doc in docs:
        row: dict[str, int] = {}
        for token in doc.split():
            row[token] = row.get(token, 0) + 1
        counts.append(row)
    df: dict[str, int] = {}
    for row in counts:
        for token in row:
            df[token] = df.get(token, 0) + 1
    idf = {t: math.log((1 + len(docs)) / (1 + d)) + 1 for t, d in df.items()}
    rows = []
    for row in counts:
        weighted = {t: c * idf[t] for t, c in row.items()}
        norm = math.sqrt(sum(v * v for v in weighted.values()))
        rows.append({t: v / norm for t, v in weighted.items()})
    return rows


def _tfidf_numpy(docs: list[str]):
    from jaxllm.classic import fit_transform

    return fit_transform(docs)


TFIDF = Computation(
    name="tfidf",
    what=f"TF-IDF of n documents of {TFIDF_WORDS} words (Zipf, {TFIDF_VOCAB:,}-word vocabulary)",
    sizes=(1_000, 100_000, 500_000),
    quick_sizes=(1_000, 20_000),
    python_size=5_000,
    inputs=_tfidf_inputs,
    flops=lambda n: float(n * TFIDF_WORDS),
    input_bytes=lambda n: 8.0 * n * TFIDF_WORDS * 4,  # the text, its tokens and their counts
    python=_tfidf_python,
    numpy=_tfidf_numpy,
    jax=None,
    unit="token",
)

COMPUTATIONS: dict[str, Computation] = {
    c.name: c for c in (MATMUL, MLP_STEP, ATTENTION, LOGISTIC_GD, WORD2VEC_STEP, TFIDF)
}


def logistic_numpy(x: np.ndarray, y: np.ndarray, learning_rate: float) -> np.ndarray:
    """``logistic_gd``'s NumPy form at another learning rate (the sweep's problems)."""
    return _logistic_numpy(x, y, learning_rate)


def logistic_jax(x: Any, y: Any, learning_rate: Any) -> jax.Array:
    """``logistic_gd``'s JAX form at a traced learning rate (``jax.vmap`` over a sweep)."""
    return _logistic_jax(x, y, learning_rate)


def as_lists(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """The inputs as the Python form takes them: arrays as nested lists of numbers."""
    return tuple(x.tolist() if isinstance(x, np.ndarray) else x for x in inputs)
