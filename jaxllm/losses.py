"""Losses as pure functions of arrays, and loss functions of ``(params, batch, key)``.

The training step takes any ``loss_fn(params, batch, key) -> (loss, metrics)``; the helpers at
the bottom build one from a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from jaxllm.data.image_augment import AugmentConfig, augment_images

LossFn = Callable[[Any, dict, Array | None], tuple[Array, dict]]


def masked_mean(values: Array, mask: Array | None = None) -> Array:
    """Mean of ``values`` over the positions where ``mask`` is non-zero (all when ``None``).

    Returns 0 when the mask is all zeros (never NaN).
    """
    if mask is None:
        return jnp.mean(values)
    mask = jnp.broadcast_to(mask.astype(values.dtype), values.shape)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def cross_entropy(
    logits: Array, targets: Array, mask: Array | None = None, *, label_smoothing: float = 0.0
) -> Array:
    """Mean softmax cross-entropy ``-Σ q(c) log softmax(logits)_c`` over unmasked positions.

    With label smoothing ε the target distribution is ``q = (1-ε)·onehot(target) + ε/V``.

    Args:
      logits: float[..., vocab]
      targets: int[...] class ids.
      mask: float or bool[...], 0 where the position does not count (padding).

    Returns:
      a scalar, float32 (float64 for float64 logits).
    """
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    nll = log_z - target_logit
    if label_smoothing:
        smooth = log_z - jnp.mean(logits, axis=-1)  # cross-entropy against the uniform distribution
        nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    return masked_mean(nll, mask)


def kl_divergence(teacher_logits: Array, student_logits: Array, mask: Array | None = None) -> Array:
    """Mean over unmasked positions of ``KL(p ‖ q) = Σ_c p(c) (log p(c) - log q(c))`` with
    ``p = softmax(teacher_logits)``, ``q = softmax(student_logits)``.

    Args:
      teacher_logits: float[..., classes], the target distribution's logits.
      student_logits: float[..., classes], the same shape.
      mask: float or bool[...], 0 where the position does not count.

    Returns:
      a scalar >= 0, float32 (float64 for float64 logits); 0 when the two agree.
    """
    dtype = jnp.promote_types(student_logits.dtype, jnp.float32)
    log_p = jax.nn.log_softmax(teacher_logits.astype(dtype), axis=-1)
    log_q = jax.nn.log_softmax(student_logits.astype(dtype), axis=-1)
    p = jnp.exp(log_p)
    terms = jnp.where(p > 0, p * (log_p - log_q), 0.0)  # 0 · log 0 = 0, never NaN
    return masked_mean(jnp.sum(terms, axis=-1), mask)


def mean_squared_error(predictions: Array, targets: Array, mask: Array | None = None) -> Array:
    """Mean of ``(predictions - targets)²`` over unmasked elements: a scalar, float32 (float64
    for float64 predictions)."""
    dtype = jnp.promote_types(predictions.dtype, jnp.float32)
    err = jnp.square(predictions.astype(dtype) - targets.astype(dtype))
    return masked_mean(err, mask)


def language_model_loss(model: Any, *, label_smoothing: float = 0.0) -> LossFn:
    """Next-token cross-entropy of a causal LM as ``loss_fn(params, batch, key)``.

    ``batch`` holds ``inputs`` and ``targets`` (int[batch, seq]) and optionally ``mask``
    (float[batch, seq] or bool, 0 at padding). ``key`` drives dropout; pass ``None`` to evaluate
    (no dropout). Metrics: ``loss`` (without label smoothing, so it is the true NLL when
    smoothing is on) and ``tokens`` (how many positions counted).
    """

    def loss_fn(params: Any, batch: dict, key: Array | None) -> tuple[Array, dict]:
        train = key is not None
        mask = batch.get("mask")
        logits = model.apply(
            {"params": params},
            batch["inputs"],
            train=train,
            padding_mask=None if mask is None else mask.astype(bool),
            rngs={"dropout": key} if train else None,
        )
        return token_loss(logits, batch["targets"], mask, label_smoothing)

    return loss_fn


def token_loss(
    logits: Array, targets: Array, mask: Array | None, label_smoothing: float = 0.0
) -> tuple[Array, dict]:
    """The loss of next-token prediction: (the mean cross-entropy over the real positions,
    smoothed if asked; ``{"loss": the plain negative log-likelihood, "tokens": how many
    positions counted}``). logits: float[batch, seq, vocab]; targets: int[batch, seq];
    mask: bool or float[batch, seq] or ``None``."""
    loss = cross_entropy(logits, targets, mask, label_smoothing=label_smoothing)
    nll = (
        loss if not label_smoothing else jax.lax.stop_gradient(cross_entropy(logits, targets, mask))
    )
    tokens = jnp.sum(mask) if mask is not None else jnp.asarray(targets.size)
    return loss, {"loss": nll, "tokens": tokens.astype(jnp.float32)}


def sequence_to_sequence_loss(model: Any, *, label_smoothing: float = 0.0) -> LossFn:
    """Teacher-forced cross-entropy of an encoder-decoder as ``loss_fn(params, batch, key)``.

    ``batch`` holds ``source`` and ``source_mask`` (int and bool[batch, source_len]), and
    ``target_in``, ``target_out``, ``target_mask`` ([batch, target_len]: the decoder's input,
    the tokens it must predict, and which of them are real). The model is called as
    ``model.apply(variables, source, source_mask, target_in, train=...)``. ``key`` drives
    dropout (``None``: evaluate). Metrics as :func:`language_model_loss`'s.
    """

    def loss_fn(params: Any, batch: dict, key: Array | None) -> tuple[Array, dict]:
        train = key is not None
        logits = model.apply(
            {"params": params},
            batch["source"],
            batch["source_mask"],
            batch["target_in"],
            train=train,
            rngs={"dropout": key} if train else None,
        )
        return token_loss(logits, batch["target_out"], batch["target_mask"], label_smoothing)

    return loss_fn


def classification_loss(model: Any) -> LossFn:
    """Cross-entropy of a sequence classifier as ``loss_fn(params, batch, key)``.

    ``batch`` holds ``tokens`` (int[batch, seq]), ``mask`` (bool[batch, seq]), ``labels``
    (int[batch]) and, for a model over weighted features, ``weights`` (float[batch, seq]); the
    model is called as ``model.apply(variables, tokens, mask, weights, train=...)``. ``key``
    drives dropout (``None``: evaluate). Metrics: ``loss`` and ``accuracy``.
    """

    def loss_fn(params: Any, batch: dict, key: Array | None) -> tuple[Array, dict]:
        train = key is not None
        logits = model.apply(
            {"params": params},
            batch["tokens"],
            batch["mask"],
            batch.get("weights"),
            train=train,
            rngs={"dropout": key} if train else None,
        )
        loss = cross_entropy(logits, batch["labels"])
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == batch["labels"])
        return loss, {"loss": loss, "accuracy": accuracy}

    return loss_fn


def image_classification_loss(model: Any, augment: AugmentConfig | None = None) -> LossFn:
    """Cross-entropy of an image classifier (:mod:`jaxllm.models.cnn`,
    :mod:`jaxllm.models.vit`) as ``loss_fn(params, batch, key)``.

    ``batch`` holds ``images`` (float32[batch, height, width, channels]) and ``labels``
    (int[batch]); the model is called as ``model.apply(variables, images, train=...)``. While
    training (``key`` given), ``augment`` (a :class:`jaxllm.data.AugmentConfig`, or ``None``)
    moves every image by a random shift and rotation on the device first, drawn from ``key``
    as dropout is. ``key=None`` evaluates: no augmentation, no dropout. Metrics: ``loss`` and
    ``accuracy``.
    """

    def loss_fn(params: Any, batch: dict, key: Array | None) -> tuple[Array, dict]:
        images, rngs = batch["images"], None
        if key is not None:
            augment_key, dropout_key = jax.random.split(key)
            rngs = {"dropout": dropout_key}
            if augment is not None and augment.enabled:
                images = augment_images(augment_key, images, augment)
        logits = model.apply({"params": params}, images, train=key is not None, rngs=rngs)
        loss = cross_entropy(logits, batch["labels"])
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == batch["labels"])
        return loss, {"loss": loss, "accuracy": accuracy}

    return loss_fn


def masked_language_model_loss(model: Any) -> LossFn:
    """Cross-entropy of a BERT's masked-word predictions as ``loss_fn(params, batch, key)``.

    ``batch`` holds ``inputs`` (int[batch, seq], the masked tokens), ``targets`` (int[batch,
    seq], the original ones), ``weights`` (float[batch, seq], 1 at the tokens chosen for
    prediction; see :func:`jaxllm.data.mask_tokens`) and optionally ``attention_mask``
    (bool[batch, seq], ``False`` at padding) and ``positions`` (int[batch, k], every chosen
    token's position and others of weight 0: the head then runs at those ``k`` only). The
    model is called as ``model.apply(variables, inputs, None, attention_mask,
    method=model.mlm_logits, positions=positions, ...)``;
    ``key`` drives dropout (``None``: evaluate). Metrics: ``loss`` and ``accuracy`` over the
    chosen tokens, and ``tokens``, how many were chosen (the train step weights every part of a
    split batch by it, so the loss is the mean over the whole batch's chosen tokens).
    """

    def loss_fn(params: Any, batch: dict, key: Array | None) -> tuple[Array, dict]:
        train = key is not None
        positions = batch.get("positions")
        logits = model.apply(
            {"params": params},
            batch["inputs"],
            None,
            batch.get("attention_mask"),
            method=model.mlm_logits,
            positions=positions,
            deterministic=not train,
            rngs={"dropout": key} if train else None,
        )
        targets, weights = batch["targets"], batch["weights"]
        if positions is not None:
            targets = jnp.take_along_axis(targets, positions, axis=1)
            weights = jnp.take_along_axis(weights, positions, axis=1)
        loss = cross_entropy(logits, targets, weights)
        correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
        accuracy = masked_mean(correct, weights)
        return loss, {"loss": loss, "accuracy": accuracy, "tokens": jnp.sum(weights)}

    return loss_fn


# ------------------------------------------------------------------------------------------------
# Connectionist temporal classification (speech recognition)
# ------------------------------------------------------------------------------------------------


def ctc_loss(
    logits: ArrayLike,
    frame_mask: ArrayLike,
    labels: ArrayLike,
    label_mask: ArrayLike,
    *,
    blank_id: int = 0,
) -> tuple[Array, Array]:
    """The CTC loss of Graves et al. (2006), by :func:`optax.ctc_loss`.

    ``-log p(y | x) = -log Σ_π Π_t softmax(logits)[t, π_t]`` over the alignments ``π`` (one
    symbol, blank included, per real frame) that collapse to the labels ``y`` (merge repeats,
    then drop blanks).

    Normalisation, as PyTorch's ``ctc_loss(..., reduction="mean")``: each utterance's negative
    log-likelihood is divided by its label length (1 for an empty transcript), then averaged
    over the utterances. The per-utterance values are the plain negative log-likelihoods (its
    ``reduction="none"``).

    An impossible alignment (fewer real frames than labels plus adjacent repeats; see
    :func:`ctc_feasible`) is not ``inf``: optax stands ``-1e5`` in for ``log 0``, so its
    negative log-likelihood is about ``1e5`` or more, with finite, meaningless gradients. Such an
    utterance swamps the mean; filter it out with :func:`check_ctc_feasible` first.

    Args:
      logits: float[batch, frames, vocab], blank included.
      frame_mask: bool[batch, frames], ``True`` at the real frames (padded frames are skipped
        wherever they are, usually at the end).
      labels: int[batch, label_len], the transcripts, never ``blank_id``; left-aligned: the
        real labels first, then padding.
      label_mask: bool[batch, label_len], ``True`` at the real labels (a prefix of each row).
      blank_id: the blank symbol's id.

    Returns:
      ``(mean, per_utterance)``: a scalar and float32[batch] (float64 for float64 logits).
    """
    logits, frame_mask = jnp.asarray(logits), jnp.asarray(frame_mask)
    labels, label_mask = jnp.asarray(labels), jnp.asarray(label_mask)
    _check_ctc_shapes(logits, frame_mask, labels, label_mask)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    per_utterance = optax.ctc_loss(
        logits,
        1.0 - frame_mask.astype(logits.dtype),
        labels,
        1.0 - label_mask.astype(logits.dtype),
        blank_id=blank_id,
    )
    label_lengths = jnp.sum(label_mask, axis=1).astype(logits.dtype)
    mean = jnp.mean(per_utterance / jnp.maximum(label_lengths, 1.0))
    return mean, per_utterance


def _check_ctc_shapes(logits: Array, frame_mask: Array, labels: Array, label_mask: Array) -> None:
    """Raise ``ValueError`` naming the mismatched shapes of :func:`ctc_loss`'s inputs."""
    if logits.ndim != 3 or frame_mask.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be float[batch, frames, vocab] and frame_mask bool[batch, frames], got "
            f"{tuple(logits.shape)} and {tuple(frame_mask.shape)}: add a batch axis of 1 for one "
            "utterance, and build the mask from the frame lengths after sub-sampling"
        )
    if labels.ndim != 2 or label_mask.shape != labels.shape or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels and label_mask must both be [batch, label_len] with the logits' batch "
            f"{logits.shape[0]}, got {tuple(labels.shape)} and {tuple(label_mask.shape)}"
        )


def ctc_feasible(frame_lengths: ArrayLike, labels: ArrayLike, label_lengths: ArrayLike) -> Array:
    """Whether CTC can align each transcript to its frames: ``frames >= L + repeats``.

    Every label needs a frame, and two equal adjacent labels need a blank frame between them
    (``"ll"`` in ``"hello"``), so a transcript of ``L`` labels with ``r`` adjacent repeats needs
    ``L + r`` frames. Where this fails, :func:`ctc_loss` is about ``1e5``, not a likelihood.

    Args:
      frame_lengths: int[batch], real frames (after the model's sub-sampling).
      labels: int[batch, label_len], left-aligned transcripts.
      label_lengths: int[batch], real labels of each row.

    Returns:
      bool[batch]; works under ``jax.jit``.
    """
    labels = jnp.asarray(labels)
    positions = jnp.arange(labels.shape[1] - 1)
    both_real = positions[None, :] + 1 < jnp.asarray(label_lengths)[:, None]
    repeats = jnp.sum(both_real & (labels[:, 1:] == labels[:, :-1]), axis=1)
    return jnp.asarray(frame_lengths) >= jnp.asarray(label_lengths) + repeats


def check_ctc_feasible(
    frame_lengths: ArrayLike, labels: ArrayLike, label_lengths: ArrayLike
) -> None:
    """Raise ``ValueError`` naming the utterances :func:`ctc_feasible` rejects (host side, on
    concrete arrays; shapes as its)."""
    bad = np.flatnonzero(~np.asarray(ctc_feasible(frame_lengths, labels, label_lengths)))
    if bad.size:
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
        raise ValueError(
            f"{bad.size} utterance(s) ({shown}) have fewer frames than CTC needs (labels plus "
            "adjacent repeats), so their loss is ~1e5, not a likelihood: drop them (filter with "
            "jaxllm.losses.ctc_feasible), or sub-sample the audio less"
        )
