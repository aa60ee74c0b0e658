"""Which input tokens a prediction rests on: gradient × input and integrated gradients
(Sundararajan, Taly and Yan, 2017) over a model's token embeddings.

Any Flax model that looks its tokens up in an ``nn.Embed`` works unchanged (GPT, BERT, the
LSTM language model, every :class:`~jaxllm.models.TextClassifier` encoder but ``"tfidf_mlp"``):
the embedding's output is replaced through ``flax.linen.intercept_methods``, so gradients reach
the embedded vectors, not the integer ids. What is explained is a scalar per example picked
from the model's output by ``target``::

    # the logit of class 1 of a classifier
    attributions = integrated_gradients(model, params, tokens, class_logit(1), mask)
    # the logit a GPT gives to token 42 after the prompt
    attributions = integrated_gradients(gpt, params, prompt, next_token_logit(42))
    attributions.per_token          # float[batch, seq]: each token's share of the score
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxllm.config import require

Target = Callable[[Any], Array]
"""The model's output -> the explained score, float[batch]."""
# Interpolation points evaluated together (vmapped); the rest run one group after another.
POINTS_PER_GROUP = 16


class AttributionError(ValueError):
    """Attribution cannot run: no (or several) token embeddings found, or bad settings."""


@flax.struct.dataclass
class Attributions:
    """How much of a score each token's embedding accounts for.

    Attributes:
      per_dimension: float32[batch, seq, width], attributions of every embedding coordinate.
      per_token: float32[batch, seq], their sum over the embedding.
      scores: float32[batch], the explained score at the input.
      baseline_scores: float32[batch], the score at the baseline (integrated gradients; for
        gradient × input the score at all-zero embeddings is not computed and this is NaN).
    """

    per_dimension: Array
    per_token: Array
    scores: Array
    baseline_scores: Array


def class_logit(label: int | Array) -> Target:
    """A target: the logit of class ``label`` (one for all, or int[batch]) of [batch, classes]
    logits."""

    def target(logits: Array) -> Array:
        labels = jnp.broadcast_to(jnp.asarray(label), logits.shape[:1])
        return jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]

    return target


def next_token_logit(token: int | Array) -> Target:
    """A target: the logit a language model gives to ``token`` (one for all, or int[batch])
    after the last position of [batch, seq, vocab] logits."""
    return lambda logits: class_logit(token)(logits[:, -1])


def gradient_x_input(
    model: nn.Module,
    params: Any,
    tokens: Array,
    target: Target,
    *model_args: Any,
    embedding: str | None = None,
    **model_kwargs: Any,
) -> Attributions:
    """``e ⊙ ∂f/∂e`` at the token embeddings ``e``: a first-order estimate of each coordinate's
    part in ``f(e) - f(0)``.

    Args:
      model: a Flax module (run without dropout; examples must not interact, as in every
        jaxllm model outside training).
      params: its parameters.
      tokens: int[batch, seq], the model's first argument.
      target: the model's output -> the explained scores float[batch] (e.g.
        :func:`class_logit`).
      *model_args: the model's other arguments (e.g. a classifier's mask).
      **model_kwargs: its keyword arguments (e.g. BERT's ``attention_mask``).
      embedding: the ``nn.Embed`` module whose output is explained, as its path (``"wte"``,
        ``"bert/wte"``); by default the one that is called with ``tokens`` itself.
    """
    model_inputs = (tokens, model_args, model_kwargs)
    embedded = _token_embeddings(model, params, embedding, *model_inputs)
    score = _score_of_embeddings(model, params, target, embedding)
    grads, scores = jax.jit(jax.grad(score, has_aux=True))(embedded, *model_inputs)
    per_dimension = embedded * grads
    return Attributions(
        per_dimension=per_dimension,
        per_token=per_dimension.sum(-1),
        scores=scores,
        baseline_scores=jnp.full_like(scores, jnp.nan),
    )


def integrated_gradients(
    model: nn.Module,
    params: Any,
    tokens: Array,
    target: Target,
    *model_args: Any,
    steps: int = 64,
    baseline: Array | None = None,
    embedding: str | None = None,
    **model_kwargs: Any,
) -> Attributions:
    """``(e - b) ⊙ ∫₀¹ ∂f/∂e (b + α (e - b)) dα`` by the trapezoidal rule over ``steps``
    intervals: attributions that add up to ``f(e) - f(b)`` (completeness), up to the rule's
    error (under 1% at 64 steps in the tests).

    ``model``, ``params``, ``tokens``, ``target``, ``model_args``, ``model_kwargs`` and
    ``embedding`` are as in :func:`gradient_x_input`.

    Args:
      steps: intervals of the path from the baseline to the input (>= 1).
      baseline: float, broadcastable to [batch, seq, width]: the "absent" input (default: zero
        embeddings).
    """
    require(
        isinstance(steps, int) and steps >= 1,
        f"steps must be an int >= 1, got {steps!r}",
        AttributionError,
    )
    model_inputs = (tokens, model_args, model_kwargs)
    embedded = _token_embeddings(model, params, embedding, *model_inputs)
    start = jnp.broadcast_to(0.0 if baseline is None else baseline, embedded.shape)
    score = _score_of_embeddings(model, params, target, embedding)
    integrate = jax.jit(functools.partial(_path_integral, score, steps=steps))
    mean_grad, scores = integrate(embedded, start.astype(embedded.dtype), model_inputs)
    per_dimension = (embedded - start) * mean_grad
    return Attributions(
        per_dimension=per_dimension,
        per_token=per_dimension.sum(-1),
        scores=scores[1],
        baseline_scores=scores[0],
    )


def _path_integral(
    score: Callable[..., tuple[Array, Array]],
    end: Array,
    start: Array,
    model_inputs: tuple,
    *,
    steps: int,
) -> tuple[Array, Array]:
    """``(Σ_i w_i ∂f/∂x at start + α_i (end - start), the scores at α = 0 and 1)`` by the
    trapezoidal rule, its points in groups of ``POINTS_PER_GROUP`` (each vmapped).
    float[batch, seq, width] in, (float[batch, seq, width], float[2, batch]) out."""
    grad = jax.grad(score, has_aux=True)
    alphas, weights = _trapezoid(steps)

    def group(total: Array, point: tuple[Array, Array]) -> tuple[Array, Array]:
        alpha, weight = point  # float[P] each
        grads, values = jax.vmap(lambda a: grad(start + a * (end - start), *model_inputs))(alpha)
        return total + jnp.tensordot(weight, grads, axes=1), values  # values: [P, batch]

    shape = (-1, POINTS_PER_GROUP)
    total, values = jax.lax.scan(
        group, jnp.zeros_like(end), (alphas.reshape(shape), weights.reshape(shape))
    )
    values = values.reshape(-1, end.shape[0])  # [points, batch]
    return total, values[jnp.array([0, steps])]


def _trapezoid(steps: int) -> tuple[Array, Array]:
    """The trapezoidal rule's points ``0, 1/steps, ..., 1`` and weights, padded with points of
    weight 0 at α = 1 to a multiple of ``POINTS_PER_GROUP``."""
    alphas = np.linspace(0.0, 1.0, steps + 1)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    pad = -(steps + 1) % POINTS_PER_GROUP
    alphas = np.concatenate([alphas, np.ones(pad)])
    weights = np.concatenate([weights, np.zeros(pad)])
    return jnp.asarray(alphas, jnp.float32), jnp.asarray(weights, jnp.float32)


def _score_of_embeddings(
    model: nn.Module, params: Any, target: Target, embedding: str | None
) -> Callable[..., tuple[Array, Array]]:
    """``f(e, tokens, args, kwargs) -> (Σ scores, scores float[batch])``: the target scores
    when the token embeddings are ``e``, float[batch, seq, width]. Examples do not interact,
    so the gradient of the sum holds each example's own gradient."""

    def score(embedded: Array, tokens: Array, args: tuple, kwargs: dict) -> tuple[Array, Array]:
        replace = _Replacement(tokens, embedding, embedded)
        with nn.intercept_methods(replace):
            out = model.apply({"params": params}, tokens, *args, **kwargs)
        replace.single_output()
        scores = target(out)
        require(
            scores.shape == tokens.shape[:1],
            f"target must give one score per example, float[{tokens.shape[0]}], got shape "
            f"{scores.shape}",
            AttributionError,
        )
        return jnp.sum(scores), scores

    return score


def _token_embeddings(
    model: nn.Module, params: Any, embedding: str | None, tokens: Array, args: tuple, kwargs: dict
) -> Array:
    """The output of the token ``nn.Embed``: float[batch, seq, width]."""
    require(
        getattr(tokens, "ndim", 0) == 2,
        f"tokens must be int[batch, seq], got {getattr(tokens, 'shape', type(tokens))}",
        AttributionError,
    )
    capture = _Replacement(tokens, embedding, None)
    with nn.intercept_methods(capture):
        model.apply({"params": params}, tokens, *args, **kwargs)
    return capture.single_output()


class _Replacement:
    """An interceptor of ``nn.Embed.__call__`` that finds the token embedding (the module
    named ``path``, or the one called with ``tokens`` itself), records its output and, unless
    ``replacement`` is ``None``, returns ``replacement`` in its place."""

    def __init__(self, tokens: Array, path: str | None, replacement: Array | None):
        self.tokens, self.path, self.replacement = tokens, path, replacement
        self.outputs: dict[str, Array] = {}
        self.embeds: list[str] = []

    def __call__(self, next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
        module = context.module
        if not (isinstance(module, nn.Embed) and context.method_name == "__call__"):
            return next_fun(*args, **kwargs)
        name = "/".join(module.path)
        self.embeds.append(name)
        chosen = name == self.path if self.path is not None else args[0] is self.tokens
        output = next_fun(*args, **kwargs)
        if not chosen:
            return output
        self.outputs[name] = output
        return output if self.replacement is None else self.replacement.astype(output.dtype)

    def single_output(self) -> Array:
        require(
            len(self.outputs) == 1,
            f"found {len(self.outputs)} token embeddings ({sorted(self.outputs)}) among the "
            f"model's nn.Embed calls {self.embeds}; name the one to explain with "
            "embedding='PATH' (e.g. 'wte')",
            AttributionError,
        )
        return next(iter(self.outputs.values()))
