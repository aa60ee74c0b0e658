"""What every image classifier shares (:class:`~jaxllm.models.cnn.CNN`,
:class:`~jaxllm.models.vit.ViT`): its config's checks, fresh parameters, and the call
``model.apply({"params": params}, images, train=...) -> logits``."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.data.images import check_image_shape


def check_image_classifier_shape(config: Any) -> None:
    """The checks every image classifier's config shares: ``image_shape`` three positive ints
    ``(height, width, channels)`` (or ``(0, 0, 0)``: "take it from the data", which recipes
    fill in), ``num_classes >= 2`` (or 0, likewise) and ``0 <= dropout < 1``; a
    :class:`~jaxllm.config.ConfigError` naming the field otherwise."""
    name = type(config).__name__
    shape = tuple(config.image_shape)
    require(
        len(shape) == 3
        and all(isinstance(n, int) for n in shape)
        and (all(n > 0 for n in shape) or shape == (0, 0, 0)),
        f"{name}.image_shape must be (height, width, channels) of positive ints, got {shape!r}",
    )
    classes = config.num_classes
    require(classes >= 2 or classes == 0, f"{name}.num_classes must be >= 2, got {classes}")
    require(0.0 <= config.dropout < 1.0, f"{name}.dropout must be in [0, 1), got {config.dropout}")


def require_filled_in(config: Any) -> None:
    """A model is built for a known image shape and number of classes.

    Raises:
      ConfigError: ``image_shape`` or ``num_classes`` is still the "from the data" 0.
    """
    require(
        config.num_classes > 0 and all(n > 0 for n in config.image_shape),
        f"{type(config).__name__} has image_shape={tuple(config.image_shape)} and "
        f"num_classes={config.num_classes}: set both (0 means 'from the data', which only a "
        "recipe fills in), e.g. image_shape=(8, 8, 1), num_classes=10",
    )


def check_classifier_input(config: Any, images: Array) -> None:
    """What a classifier checks of its input: a config filled in
    (:func:`require_filled_in`) and images of its shape
    (:func:`jaxllm.data.check_image_shape`, an :class:`~jaxllm.data.ImagesError`)."""
    require_filled_in(config)
    check_image_shape(images.shape, config.image_shape)


def init_image_classifier(model: nn.Module, key: Array) -> dict[str, Any]:
    """Fresh parameters of ``model`` (a CNN or ViT) for its config's image shape."""
    require_filled_in(model.config)  # type: ignore[attr-defined]
    images = jnp.zeros((1, *model.config.image_shape), jnp.float32)  # type: ignore[attr-defined]
    return jax.jit(model.init)(key, images)["params"]
