"""A Vision Transformer (Dosovitskiy et al., 2021): an image read as a sequence of patches by the
same Transformer blocks GPT and BERT use.

The image is cut into non-overlapping ``patch_size × patch_size`` patches, in row-major order;
each patch's pixels are flattened and projected to the model width (the patch embedding). A
learned class token is put in front, learned positions are added, and bidirectional pre-LN
blocks read the sequence; the class token's final state, after a LayerNorm, gives the class
scores::

    model = ViT(ViTConfig(image_shape=(8, 8, 1), num_classes=10, patch_size=2))
    params = init_image_classifier(model, key)   # jaxllm.models.image_classifiers
    logits = model.apply({"params": params}, images)          # float32[batch, 10]

Every block's attention weights can be read with :func:`jaxllm.explain.attention_maps`
(position 0 is the class token, position ``1 + i`` patch ``i``).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.models.image_classifiers import check_classifier_input, check_image_classifier_shape
from jaxllm.nn import TransformerBlock, layer_norm


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Shape of a :class:`ViT`.

    Attributes:
      image_shape: ``(height, width, channels)`` of the images it reads (``(0, 0, 0)``:
        from the data, which recipes fill in); height and width
        divisible by ``patch_size``.
      num_classes: classes it scores (0: from the data).
      patch_size: side of each square patch, in pixels (one token per patch).
      n_layer, n_head, n_embd: blocks, heads per block and width.
      mlp_ratio: MLP hidden width / width.
      dropout: on the embeddings, attention weights and residual branches while training.
    """

    image_shape: tuple[int, int, int] = (0, 0, 0)
    num_classes: int = 0
    patch_size: int = 2
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    mlp_ratio: int = 2
    dropout: float = 0.1

    def __post_init__(self):
        check_image_classifier_shape(self)
        for name in ("patch_size", "n_layer", "n_head", "n_embd", "mlp_ratio"):
            value = getattr(self, name)
            require(value > 0, f"ViTConfig.{name} must be > 0, got {value}")
        require(
            self.n_embd % self.n_head == 0,
            f"ViTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})",
        )
        height, width, _ = self.image_shape
        require(
            height % self.patch_size == 0 and width % self.patch_size == 0,
            f"{height}×{width} images do not split into {self.patch_size}×{self.patch_size} "
            "patches: choose a patch_size that divides both sides",
        )

    @property
    def num_patches(self) -> int:
        height, width, _ = self.image_shape
        return (height // self.patch_size) * (width // self.patch_size)


def image_patches(images: Array, patch_size: int) -> Array:
    """float[batch, H, W, C] -> float[batch, (H/p)·(W/p), p·p·C]: the non-overlapping
    ``p × p`` patches in row-major order, each flattened row by row (channels last)."""
    batch, height, width, channels = images.shape
    p = patch_size
    x = images.reshape(batch, height // p, p, width // p, p, channels)  # (B, H/p, p, W/p, p, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, H/p, W/p, p, p, C)
    return x.reshape(batch, (height // p) * (width // p), p * p * channels)


class ViT(nn.Module):
    """Patch embedding + class token + positions -> blocks -> LayerNorm -> class scores."""

    config: ViTConfig

    @nn.compact
    def __call__(self, images: Array, *, train: bool = False) -> Array:
        """images: float32[batch, height, width, channels] in [0, 1] -> float32[batch,
        num_classes] logits. ``train`` turns dropout on (it draws from the ``dropout`` rng)."""
        cfg = self.config
        check_classifier_input(cfg, images)
        init = nn.initializers.normal(0.02)
        patches = image_patches(images, cfg.patch_size)  # (B, N, p·p·C)
        x = nn.Dense(cfg.n_embd, name="patch_embedding")(patches)  # (B, N, D)
        cls = self.param("class_token", init, (1, 1, cfg.n_embd))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, cfg.n_embd)), x], axis=1)
        x = x + self.param("positions", init, (cfg.num_patches + 1, cfg.n_embd))  # (B, 1+N, D)
        x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
        for i in range(cfg.n_layer):
            block = TransformerBlock(
                cfg.n_head,
                mlp_ratio=cfg.mlp_ratio,
                dropout_rate=cfg.dropout,
                mlp_activation="gelu",
                name=f"block_{i}",
            )
            x, _ = block(x, deterministic=not train)
        x = layer_norm(name="ln_f")(x[:, 0])  # the class token, (B, D)
        return nn.Dense(cfg.num_classes, name="head")(x).astype(jnp.float32)
