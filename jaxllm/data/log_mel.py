"""Log-mel features of audio in JAX: framing, a Hann window, the STFT by ``jnp.fft.rfft``, a mel
filterbank and a log, for one utterance or a batch.

    config = MelConfig()                             # 16 kHz, 25 ms windows, 10 ms hop, 80 mels
    features = log_mel(audio, config)                # float32[..., n_frames, n_mels]
    features = batched_log_mel(audios, config)       # float[batch, samples], jitted, in chunks
    batch, frame_counts = log_mel_batch([a, b, c], config)   # utterances of different lengths

The settings and results follow ``librosa.feature.melspectrogram`` (``window="hann"``,
``htk=False``, ``norm="slaney"``) with the same arguments, whose values the tests compare
against; :func:`mel_filterbank` is ``librosa.filters.mel(...).T``, computed here in NumPy (jaxllm
never imports librosa). One default differs: ``pad_mode`` is ``"reflect"`` (as in Whisper and
``torch.stft``), where librosa >= 0.10 pads with zeros (``"constant"``).

Every function takes audio of any leading shape, ``float[..., samples]``, so a batch of equal
lengths is one call; the filterbank and window are constants of the compiled program (the
config is hashable and static under ``jax.jit``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PadMode = Literal["reflect", "constant"]
MelScale = Literal["slaney", "htk"]

# The Slaney mel scale (Auditory Toolbox; librosa's default): linear below 1 kHz, 3 mels per
# 200 Hz, logarithmic above, 27 mels per factor of 6.4.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_LOG_START_HZ = 1000.0
_SLANEY_LOG_START_MEL = _SLANEY_LOG_START_HZ / _SLANEY_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """How audio becomes (log-)mel features; the defaults are a speech recogniser's (Whisper's
    window, hop and 80 mels at 16 kHz).

    Attributes:
        sample_rate: samples per second of the audio (Hz).
        n_fft: samples per frame, the FFT's length; ``n_fft // 2 + 1`` frequency bins.
        hop_length: samples between the starts of consecutive frames.
        win_length: samples under the Hann window (``None``: ``n_fft``); a shorter window is
            centred in the frame and zero outside, as librosa does.
        n_mels: mel bands.
        f_min, f_max: the filterbank's lowest and highest frequency in Hz (``f_max=None``: the
            Nyquist frequency, ``sample_rate / 2``).
        center: pad ``n_fft // 2`` samples each side so frame ``t`` is centred on sample
            ``t * hop_length``; ``False``: frame ``t`` starts there.
        pad_mode: the centre padding, ``"reflect"`` (mirror the audio, without repeating the edge
            sample) or ``"constant"`` (zeros).
        power: the exponent of the STFT's magnitude (2: power, 1: magnitude).
        mel_scale: ``"slaney"`` (librosa's ``htk=False``) or ``"htk"`` (``2595 log10(1 + f/700)``).
        mel_norm: ``"slaney"``: each triangle divided by its width in Hz / 2, so each band has
            unit area (librosa's ``norm="slaney"``); ``None``: triangles of peak 1.
        log_floor: :func:`log_mel` is ``ln(max(mel, log_floor))``.
    """

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    win_length: int | None = None
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    center: bool = True
    pad_mode: PadMode = "reflect"
    power: float = 2.0
    mel_scale: MelScale = "slaney"
    mel_norm: Literal["slaney"] | None = "slaney"
    log_floor: float = 1e-10

    def __post_init__(self) -> None:
        for problem in _config_problems(self):
            raise ValueError(f"MelConfig: {problem}")

    @property
    def window_length(self) -> int:
        """Samples under the window: ``win_length``, else ``n_fft``."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def max_frequency(self) -> float:
        """The filterbank's top frequency in Hz: ``f_max``, else ``sample_rate / 2``."""
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    @property
    def n_freqs(self) -> int:
        """Frequency bins of the STFT: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1


def _config_problems(config: MelConfig) -> list[str]:
    """What is wrong with ``config``, each with the fix (empty when it is valid)."""
    problems = [
        f"{name} must be a positive integer, got {value!r}"
        for name, value in [("sample_rate", config.sample_rate), ("n_fft", config.n_fft),
                            ("hop_length", config.hop_length), ("n_mels", config.n_mels)]
        if not isinstance(value, int) or value <= 0
    ]  # fmt: skip
    if problems:
        return problems
    if not 0 < config.window_length <= config.n_fft:
        problems.append(f"win_length must lie in 1..n_fft={config.n_fft}, got {config.win_length}")
    nyquist = config.sample_rate / 2
    if not 0 <= config.f_min < config.max_frequency <= nyquist:
        problems.append(
            f"need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist:g} Hz, got f_min="
            f"{config.f_min}, f_max={config.f_max}; lower f_max or raise sample_rate"
        )
    if config.pad_mode not in ("reflect", "constant"):
        problems.append(f"pad_mode must be 'reflect' or 'constant', got {config.pad_mode!r}")
    if config.mel_scale not in ("slaney", "htk"):
        problems.append(f"mel_scale must be 'slaney' or 'htk', got {config.mel_scale!r}")
    if config.mel_norm not in ("slaney", None):
        problems.append(f"mel_norm must be 'slaney' or None, got {config.mel_norm!r}")
    if not config.power > 0:
        problems.append(f"power must be positive (2: power, 1: magnitude), got {config.power}")
    if not config.log_floor > 0:
        problems.append(f"log_floor must be positive (ln(0) is -inf), got {config.log_floor}")
    return problems


# ---------------------------------------------------------------------------------------------
# Mel filterbank (NumPy, float64, cast once)


def hz_to_mel(hz: np.ndarray | float, scale: MelScale = "slaney") -> np.ndarray:
    """Mels of frequencies in Hz: HTK ``2595 log10(1 + f / 700)``, or Slaney ``3 f / 200``
    below 1 kHz and ``15 + 27 ln(f / 1000) / ln(6.4)`` above."""
    hz = np.asarray(hz, np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    linear = hz / _SLANEY_HZ_PER_MEL
    above = hz >= _SLANEY_LOG_START_HZ
    safe = np.where(above, hz, _SLANEY_LOG_START_HZ)  # no log of 0 in the unused branch
    logarithmic = _SLANEY_LOG_START_MEL + np.log(safe / _SLANEY_LOG_START_HZ) / _SLANEY_LOG_STEP
    return np.where(above, logarithmic, linear)


def mel_to_hz(mels: np.ndarray | float, scale: MelScale = "slaney") -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = mels * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_LOG_START_HZ * np.exp(_SLANEY_LOG_STEP * (mels - _SLANEY_LOG_START_MEL))
    return np.where(mels >= _SLANEY_LOG_START_MEL, logarithmic, linear)


@functools.lru_cache(maxsize=16)
def mel_filterbank(config: MelConfig) -> np.ndarray:
    """The triangular mel filters, ``float32[n_fft // 2 + 1, n_mels]`` (read-only).

    Band ``m``'s triangle rises from edge ``m`` to ``m + 1`` and falls to ``m + 2``, the
    ``n_mels + 2`` edges equally spaced in mels from ``f_min`` to ``f_max``; its weight at FFT bin
    frequency ``f`` is ``max(0, min((f - e[m]) / (e[m+1] - e[m]), (e[m+2] - f) / (e[m+2] -
    e[m+1])))``, times ``2 / (e[m+2] - e[m])`` with Slaney normalisation. This is
    ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm).T``.
    """
    bin_hz = np.arange(config.n_freqs) * (config.sample_rate / config.n_fft)  # rfft's bins
    mel_edges = np.linspace(
        hz_to_mel(config.f_min, config.mel_scale),
        hz_to_mel(config.max_frequency, config.mel_scale),
        config.n_mels + 2,
    )
    edges_hz = mel_to_hz(mel_edges, config.mel_scale)
    widths = np.diff(edges_hz)  # [n_mels + 1]
    to_bin = edges_hz[:, None] - bin_hz[None, :]  # [n_mels + 2, n_freqs]
    rising = -to_bin[:-2] / widths[:-1, None]
    falling = to_bin[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, n_freqs]
    if config.mel_norm == "slaney":
        weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    filterbank = np.ascontiguousarray(weights.T, dtype=np.float32)
    filterbank.setflags(write=False)  # cached and shared by every caller
    return filterbank


# ---------------------------------------------------------------------------------------------
# Framing and the STFT (JAX)


def hann_window(config: MelConfig) -> np.ndarray:
    """The periodic Hann window ``0.5 - 0.5 cos(2 pi n / N)``, ``n < N = window_length``
    (``scipy.signal.get_window("hann", N, fftbins=True)``), centred in ``float32[n_fft]``
    with zeros around it when ``win_length < n_fft``."""
    length = config.window_length
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    left = (config.n_fft - length) // 2
    return np.pad(window, (left, config.n_fft - length - left)).astype(np.float32)


def n_frames(samples: int, config: MelConfig) -> int:
    """Frames of ``samples`` samples of audio: ``1 + (samples + 2 (n_fft // 2) - n_fft) //
    hop_length`` with centre padding (``1 + samples // hop_length`` for an even ``n_fft``),
    ``1 + (samples - n_fft) // hop_length`` without."""
    padded = samples + 2 * (config.n_fft // 2) if config.center else samples
    if samples < 1 or padded < config.n_fft:
        raise ValueError(
            f"{samples} samples of audio make no frame of n_fft={config.n_fft}: pass at least "
            f"{1 if config.center else config.n_fft} samples, or set center=True to pad"
        )
    return 1 + (padded - config.n_fft) // config.hop_length


def frames(audio: jax.Array | np.ndarray, config: MelConfig) -> jax.Array:
    """Overlapping frames of ``audio: float[..., samples]``: ``float[..., n_frames, n_fft]``,
    frame ``t`` holding padded samples ``t * hop_length`` to ``t * hop_length + n_fft - 1``
    (centre padding: ``n_fft // 2`` samples of ``pad_mode`` each side, as ``librosa.stft``)."""
    audio = jnp.asarray(audio)
    count = n_frames(audio.shape[-1], config)
    if config.center:
        half = config.n_fft // 2
        widths = [(0, 0)] * (audio.ndim - 1) + [(half, half)]
        audio = jnp.pad(audio, widths, mode=config.pad_mode)
    starts = config.hop_length * np.arange(count)
    index = starts[:, None] + np.arange(config.n_fft)[None, :]  # [n_frames, n_fft]
    return audio[..., index]


def power_spectrogram(audio: jax.Array | np.ndarray, config: MelConfig) -> jax.Array:
    """``|STFT|^power`` of ``audio: float[..., samples]``: ``float32[..., n_frames, n_fft // 2
    + 1]``, the STFT being ``rfft(frame * hann_window)`` of each of :func:`frames`."""
    windowed = frames(jnp.asarray(audio, jnp.float32), config) * hann_window(config)
    spectrum = jnp.fft.rfft(windowed, axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)  # |X|^2 without a sqrt
    return power if config.power == 2.0 else power ** (config.power / 2.0)


def mel_spectrogram(audio: jax.Array | np.ndarray, config: MelConfig) -> jax.Array:
    """Mel-band energies ``power_spectrogram(audio) @ mel_filterbank``: ``float32[...,
    n_frames, n_mels]`` (``librosa.feature.melspectrogram`` with the same settings, transposed)."""
    filterbank = jnp.asarray(mel_filterbank(config))
    spectrogram = power_spectrogram(audio, config)
    return jnp.matmul(spectrogram, filterbank, precision=jax.lax.Precision.HIGHEST)


def log_mel(audio: jax.Array | np.ndarray, config: MelConfig) -> jax.Array:
    """Log-mel features ``ln(max(mel_spectrogram(audio), log_floor))`` of ``audio: float[...,
    samples]``: ``float32[..., n_frames, n_mels]``."""
    return jnp.log(jnp.maximum(mel_spectrogram(audio, config), config.log_floor))


jit_log_mel = jax.jit(log_mel, static_argnames="config")
jit_log_mel.__doc__ = "A jitted :func:`log_mel` (``config`` static): one compile per shape."


@functools.partial(jax.jit, static_argnames=("config", "chunk_size"))
def batched_log_mel(
    audio: jax.Array | np.ndarray, config: MelConfig, *, chunk_size: int | None = 8
) -> jax.Array:
    """:func:`log_mel` of ``audio: float[batch, samples]``, ``chunk_size`` utterances at a time
    (``lax.map``; ``None``: all at once): ``float32[batch, n_frames, n_mels]``, the same values.

    A chunk's frames, spectrum and power spectrum (1.6 MB an utterance of 4 s at the defaults)
    stay in the CPU's cache from one step to the next, which on CPU makes a batch of 32 such
    utterances ~1.3x faster than all at once (``benchmarks/log_mel.py``), and bounds that
    memory for long batches. On an accelerator, pass ``None`` to take the batch in one step.
    """
    if audio.ndim != 2:
        raise ValueError(f"batched_log_mel takes float[batch, samples], got shape {audio.shape}")
    if chunk_size is None:
        return log_mel(audio, config)
    return jax.lax.map(functools.partial(log_mel, config=config), audio, batch_size=chunk_size)


# ---------------------------------------------------------------------------------------------
# Batches of utterances of different lengths


class LogMelBatch(NamedTuple):
    """Log-mel features of a batch of utterances, padded to one length.

    Attributes:
        features: ``float32[batch, max_frames, n_mels]``; the frames past an utterance's count
            hold ``ln(log_floor)``, the value of silence.
        frame_counts: ``int32[batch]``, each utterance's own :func:`n_frames`.
    """

    features: jax.Array
    frame_counts: np.ndarray


def log_mel_batch(
    audios: Sequence[np.ndarray],
    config: MelConfig,
    *,
    bucket_frames: int = 32,
    chunk_size: int | None = 8,
) -> LogMelBatch:
    """Log-mel features of utterances ``float[samples_i]`` of different lengths, in one call.

    ``max_frames`` is the longest utterance's frame count rounded up to a multiple of
    ``bucket_frames``, so batches of similar lengths share one compiled program (one compile
    per ``(batch, max_frames)``: at most one per 0.32 s of the longest utterance with the
    default 32 frames of a 10 ms hop, for at most 31 frames of padding) and a model's 2x, 4x
    or 8x subsampling divides ``max_frames``. Each utterance is centre-padded on its own
    before the batch is zero-padded, so its first ``frame_counts[i]`` frames see the same
    samples as ``log_mel(audios[i], config)``'s and equal them (to float rounding).
    ``chunk_size``: utterances computed at a time (:func:`batched_log_mel`).
    """
    if not audios:
        raise ValueError("log_mel_batch: no utterances; pass a non-empty list of 1-D arrays")
    if bucket_frames < 1:
        raise ValueError(f"bucket_frames must be a positive integer, got {bucket_frames}")
    counts = np.array([n_frames(len(_as_mono(a, i)), config) for i, a in enumerate(audios)])
    max_frames = bucket_frames * math.ceil(int(counts.max()) / bucket_frames)
    padded_length = config.n_fft + (max_frames - 1) * config.hop_length
    padded = np.zeros((len(audios), padded_length), np.float32)
    for row, audio, count in zip(padded, audios, counts, strict=True):
        samples = _framing_input(np.asarray(audio, np.float32), int(count), config)
        row[: len(samples)] = samples
    frame_counts = counts.astype(np.int32)
    uncentred = dataclasses.replace(config, center=False)
    features = _masked_log_mel(padded, frame_counts, uncentred, chunk_size)
    return LogMelBatch(features, frame_counts)


def _as_mono(audio: np.ndarray, position: int) -> np.ndarray:
    """``audio`` if it is one utterance ``float[samples]``, else a ValueError naming it."""
    if np.ndim(audio) != 1:
        raise ValueError(
            f"log_mel_batch: utterance {position} has shape {np.shape(audio)}, expected "
            "[samples]; mix channels down first (jaxllm.data.audio.read_wav does)"
        )
    return audio


def _framing_input(audio: np.ndarray, count: int, config: MelConfig) -> np.ndarray:
    """``audio: float32[samples]`` centre-padded as :func:`frames` pads it (if
    ``config.center``), cut to the samples its ``count`` frames read: ``float32[n_fft +
    (count - 1) hop_length]``."""
    if config.center:
        audio = np.pad(audio, config.n_fft // 2, mode=config.pad_mode)
    return audio[: config.n_fft + (count - 1) * config.hop_length]


@functools.partial(jax.jit, static_argnames=("config", "chunk_size"))
def _masked_log_mel(
    padded: jax.Array, frame_counts: jax.Array, config: MelConfig, chunk_size: int | None
) -> jax.Array:
    """:func:`batched_log_mel` of ``padded: float32[batch, samples]``, frames past
    ``frame_counts: int32[batch]`` set to ``ln(log_floor)``: ``float32[batch, max_frames,
    n_mels]``."""
    features = batched_log_mel(padded, config, chunk_size=chunk_size)
    valid = jnp.arange(features.shape[-2])[None, :] < frame_counts[:, None]
    return jnp.where(valid[..., None], features, jnp.log(jnp.float32(config.log_floor)))
