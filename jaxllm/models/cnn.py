"""A small convolutional network for image classification (LeNet's plan, VGG's blocks).

Stages of ``convs_per_stage`` 3×3 convolutions (ReLU, 'SAME' padding) each end in a 2×2
max-pool that halves the height and width; the last feature map is flattened into a hidden
dense layer (ReLU, dropout) and a linear layer of class scores::

    model = CNN(CNNConfig(image_shape=(8, 8, 1), num_classes=10))
    params = init_image_classifier(model, key)   # jaxllm.models.image_classifiers
    logits = model.apply({"params": params}, images)          # float32[batch, 10]

The defaults (32 then 64 channels, a hidden layer of 128) suit scikit-learn's 8×8 digits: two
pools leave a 2×2×64 map.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.models.image_classifiers import check_classifier_input, check_image_classifier_shape


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    """Shape of a :class:`CNN`.

    Attributes:
      image_shape: ``(height, width, channels)`` of the images it reads (``(0, 0, 0)``:
        from the data, which recipes fill in).
      num_classes: classes it scores (0: from the data).
      channels: output channels of each stage's convolutions; one 2×2 max-pool per stage.
      convs_per_stage: 3×3 convolutions per stage.
      hidden: width of the dense layer after the last stage.
      dropout: on the hidden layer's output while training.
    """

    image_shape: tuple[int, int, int] = (0, 0, 0)
    num_classes: int = 0
    channels: tuple[int, ...] = (32, 64)
    convs_per_stage: int = 2
    hidden: int = 128
    dropout: float = 0.25

    def __post_init__(self):
        check_image_classifier_shape(self)
        require(
            len(self.channels) > 0 and all(c > 0 for c in self.channels),
            f"CNNConfig.channels must be one or more positive ints, got {self.channels!r}",
        )
        require(
            self.convs_per_stage > 0 and self.hidden > 0,
            "CNNConfig.convs_per_stage and hidden must be > 0",
        )
        height, width, _ = self.image_shape
        pools = 2 ** len(self.channels)
        require(
            height == 0 or (height >= pools and width >= pools),  # 0: filled in later
            f"{len(self.channels)} stages halve {height}×{width} images {len(self.channels)} "
            f"times, below one pixel: use at most {min(height, width).bit_length() - 1} stages",
        )


class CNN(nn.Module):
    """Convolution stages -> flatten -> dense (ReLU, dropout) -> class scores."""

    config: CNNConfig

    @nn.compact
    def __call__(self, images: Array, *, train: bool = False) -> Array:
        """images: float32[batch, height, width, channels] in [0, 1] -> float32[batch,
        num_classes] logits. ``train`` turns dropout on (it draws from the ``dropout`` rng)."""
        cfg = self.config
        check_classifier_input(cfg, images)
        x = images
        for stage, channels in enumerate(cfg.channels):
            for i in range(cfg.convs_per_stage):
                x = nn.relu(nn.Conv(channels, (3, 3), name=f"conv_{stage}_{i}")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))  # (B, H/2, W/2, C)
        x = x.reshape(x.shape[0], -1)  # (B, H'·W'·C)
        x = nn.relu(nn.Dense(cfg.hidden, name="hidden")(x))
        x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
        return nn.Dense(cfg.num_classes, name="head")(x).astype(jnp.float32)
