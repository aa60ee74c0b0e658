"""An acoustic model for speech recognition with CTC: log-mel frames in, per-frame character
scores out (Graves et al., 2006; the convolutional sub-sampling of Amodei et al., 2016).

Each utterance's features are normalised (every mel band to zero mean and unit variance over
the utterance's frames), then ``log2(subsample)`` 3×3 convolutions of stride 2 over (time,
mel) halve the frame rate each, so the encoder reads one frame per ``subsample`` (40 ms for 10
ms hops and ``subsample=4``). The encoder is a bidirectional LSTM (:class:`jaxllm.nn.LSTM`) or
bidirectional Transformer blocks (:class:`jaxllm.nn.TransformerBlock`, sinusoidal positions);
a dense layer scores every symbol, the CTC blank included::

    model = AcousticModel(AcousticConfig(vocab_size=29))
    params = init_acoustic_params(model, key)
    logits, mask = model.apply({"params": params}, features, frame_mask)
    # features float32[B, T, n_mels] -> logits float32[B, ceil(T/4), 29], mask bool[B, ceil(T/4)]

Padded frames are zero after every layer that could leak them into real ones, so an utterance
scores the same alone and in a padded batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxllm.config import require
from jaxllm.data.spec_augment import band_means
from jaxllm.nn import LSTM, TransformerBlock, layer_norm, padding_mask, sinusoidal_positions

AcousticEncoder = Literal["bilstm", "transformer"]
NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class AcousticConfig:
    """Shape of a :class:`AcousticModel`.

    Attributes:
      vocab_size: output symbols, the CTC blank included (0: from the alphabet, which recipes
        fill in).
      n_mels: mel bands of the input features.
      subsample: frames per encoder step: 1, 2, 4 or 8 (one stride-2 convolution per halving).
      conv_channels: channels of the sub-sampling convolutions.
      encoder: ``"bilstm"`` or ``"transformer"``.
      n_layer: encoder layers.
      width: encoder width (a BiLSTM's two directions have ``width / 2`` each).
      n_head, mlp_ratio: the Transformer encoder's heads and MLP width / width.
      dropout: on the encoder's inputs, states and outputs while training.
    """

    vocab_size: int = 0
    n_mels: int = 80
    subsample: int = 4
    conv_channels: int = 32
    encoder: AcousticEncoder = "bilstm"
    n_layer: int = 3
    width: int = 256
    n_head: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        require(
            self.vocab_size >= 0, f"AcousticConfig.vocab_size must be >= 0, got {self.vocab_size}"
        )
        require(
            self.subsample in (1, 2, 4, 8),
            f"AcousticConfig.subsample must be 1, 2, 4 or 8, got {self.subsample}",
        )
        require(
            self.encoder in ("bilstm", "transformer"),
            f"AcousticConfig.encoder must be 'bilstm' or 'transformer', got {self.encoder!r}",
        )
        for name in ("n_mels", "conv_channels", "n_layer", "width", "n_head", "mlp_ratio"):
            value = getattr(self, name)
            require(value > 0, f"AcousticConfig.{name} must be > 0, got {value}")
        require(self.width % 2 == 0, f"AcousticConfig.width must be even, got {self.width}")
        require(
            self.encoder != "transformer" or self.width % self.n_head == 0,
            f"AcousticConfig.width ({self.width}) must be divisible by n_head ({self.n_head})",
        )
        require(
            0.0 <= self.dropout < 1.0,
            f"AcousticConfig.dropout must be in [0, 1), got {self.dropout}",
        )

    @property
    def convolutions(self) -> int:
        return self.subsample.bit_length() - 1


def encoder_lengths(frame_lengths: Array, subsample: int) -> Array:
    """int[B] frames -> int[B] encoder steps: ``ceil(frames / 2)`` once per halving, as the
    stride-2 convolutions (padded by one frame on each side) give."""
    for _ in range(subsample.bit_length() - 1):
        frame_lengths = (frame_lengths + 1) // 2
    return frame_lengths


def normalize_features(features: Array, mask: Array) -> Array:
    """float[B, T, M], bool[B, T] -> float[B, T, M]: each mel band of each utterance to zero
    mean and unit variance over its real frames; padded frames are 0."""
    m = mask[..., None].astype(features.dtype)  # (B, T, 1)
    centred = (features - band_means(features, mask)) * m
    variance = band_means(jnp.square(centred), mask)
    return centred * jax.lax.rsqrt(variance + NORM_EPSILON)


class AcousticModel(nn.Module):
    """Normalise -> stride-2 convolutions -> dense -> BiLSTM or Transformer -> symbol scores."""

    config: AcousticConfig

    @nn.compact
    def __call__(
        self, features: Array, frame_mask: Array, *, train: bool = False
    ) -> tuple[Array, Array]:
        """features float32[B, T, n_mels], frame_mask bool[B, T] (``True`` at real frames, all
        at the start) -> (logits float32[B, T', vocab_size], mask bool[B, T']) with ``T'`` =
        ``T`` halved (rounding up) once per convolution."""
        cfg = self.config
        require(cfg.vocab_size > 0, "AcousticConfig.vocab_size is 0: set it (the alphabet + blank)")
        require(
            features.shape[-1] == cfg.n_mels,
            f"the model reads {cfg.n_mels} mel bands, got features of {features.shape[-1]}: "
            f"compute them with MelConfig(n_mels={cfg.n_mels})",
            ValueError,
        )
        lengths = jnp.sum(frame_mask, axis=1)
        x = normalize_features(features, frame_mask)[..., None]  # (B, T, M, 1)
        mask = frame_mask
        for i in range(cfg.convolutions):
            # One frame of zeros on each side (not 'SAME', whose split depends on the parity
            # of T): output t reads frames 2t-1..2t+1 however the batch is padded.
            conv = nn.Conv(cfg.conv_channels, (3, 3), (2, 2), ((1, 1), (1, 1)), name=f"conv_{i}")
            x = nn.relu(conv(x))
            mask = jnp.arange(x.shape[1]) < encoder_lengths(lengths, 2 ** (i + 1))[:, None]
            x = x * mask[:, :, None, None]  # (B, T/2^i, M/2^i, C), 0 at padding
        x = x.reshape(*x.shape[:2], -1)  # (B, T', M'·C)
        x = nn.Dense(cfg.width, name="input_projection")(x) * mask[..., None]
        x = self._encode(x, mask, train)
        logits = nn.Dense(cfg.vocab_size, name="head")(x)
        return logits.astype(jnp.float32), mask

    @nn.nowrap
    def _encode(self, x: Array, mask: Array, train: bool) -> Array:
        """float[B, T', width] -> float[B, T', width], by the configured encoder."""
        cfg = self.config
        if cfg.encoder == "bilstm":
            lstm = LSTM(cfg.width // 2, cfg.n_layer, bidirectional=True, dropout_rate=cfg.dropout)
            outputs, _ = lstm(x, mask, deterministic=not train)
            return outputs
        x = x + sinusoidal_positions(jnp.arange(x.shape[1]), cfg.width)
        x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
        keys = padding_mask(mask)
        for i in range(cfg.n_layer):
            block = TransformerBlock(
                cfg.n_head, mlp_ratio=cfg.mlp_ratio, dropout_rate=cfg.dropout, name=f"block_{i}"
            )
            x, _ = block(x, mask=keys, deterministic=not train)
        return layer_norm(name="ln_f")(x) * mask[..., None]


def init_acoustic_params(model: AcousticModel, key: Array) -> dict[str, Any]:
    """Fresh parameters of ``model`` (its config's vocabulary and mel bands)."""
    features = jnp.zeros((1, 16, model.config.n_mels), jnp.float32)
    mask = jnp.ones((1, 16), bool)
    return jax.jit(model.init)(key, features, mask)["params"]
