"""Log-mel features in JAX against librosa (the test-only reference), and their batching.

Parity tolerance for the spectrograms, per element: ``|ours - librosa| <= 1e-4 * |librosa| +
1e-6 * max|librosa|``, that is 1e-4 relative on every element, with an absolute slack of a
millionth of the utterance's peak for the near-zero elements whose float32 FFT rounding
(~1e-7 of a frame's energy) is larger than 1e-4 of themselves. Filterbanks: 1e-6 absolute.

Few distinct shapes and configs, each compiled once: audio of ``SAMPLES`` samples and the
four ``CONFIGS``.
"""

import dataclasses

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data.log_mel import (
    MelConfig,
    batched_log_mel,
    frames,
    hann_window,
    jit_log_mel,
    log_mel,
    log_mel_batch,
    mel_filterbank,
    mel_spectrogram,
    n_frames,
)

SAMPLES = 8000
CONFIGS = {
    "default": MelConfig(),  # 16 kHz, n_fft 400, hop 160, 80 Slaney mels, reflect padding
    "constant_pad": MelConfig(pad_mode="constant", n_fft=512, hop_length=128, n_mels=40),
    "odd_fft_band": MelConfig(
        sample_rate=22050,
        n_fft=511,
        hop_length=128,
        win_length=300,
        n_mels=64,
        f_min=30.0,
        f_max=8000.0,
    ),  # fmt: skip
    "htk_unnormed": MelConfig(
        sample_rate=8000,
        n_fft=256,
        hop_length=80,
        n_mels=32,
        mel_scale="htk",
        mel_norm=None,
        f_max=3000.0,
    ),  # fmt: skip
}
jit_mel_spectrogram = jax.jit(mel_spectrogram, static_argnames="config")


def librosa_filterbank(config: MelConfig) -> np.ndarray:
    return librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.f_min,
        fmax=config.f_max, htk=config.mel_scale == "htk", norm=config.mel_norm,
    ).T  # fmt: skip


def librosa_mel(audio: np.ndarray, config: MelConfig) -> np.ndarray:
    """``librosa.feature.melspectrogram`` with ``config``'s settings, ``[..., frames, mels]``."""
    mel = librosa.feature.melspectrogram(
        y=audio, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, window="hann", center=config.center,
        pad_mode=config.pad_mode, power=config.power, n_mels=config.n_mels, fmin=config.f_min,
        fmax=config.f_max, htk=config.mel_scale == "htk", norm=config.mel_norm,
    )  # fmt: skip
    return np.swapaxes(mel, -1, -2)


def assert_matches_librosa(ours: jax.Array, reference: np.ndarray) -> None:
    """The parity tolerance of the module docstring."""
    values = np.asarray(ours)
    assert values.shape == reference.shape
    np.testing.assert_allclose(values, reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())


def noise(seed: int = 0, shape: tuple[int, ...] = (SAMPLES,)) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def chirp(rate: int) -> np.ndarray:
    """A sweep from 50 Hz to 90% of the Nyquist frequency over ``SAMPLES`` samples."""
    times = np.arange(SAMPLES) / rate
    return (0.5 * scipy.signal.chirp(times, 50.0, times[-1], 0.45 * rate)).astype(np.float32)


@pytest.mark.parametrize("name", CONFIGS)
def test_mel_filterbank_equals_librosa(name):
    config = CONFIGS[name]
    ours = mel_filterbank(config)
    assert ours.shape == (config.n_fft // 2 + 1, config.n_mels) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, librosa_filterbank(config), rtol=0, atol=1e-6)
    assert not ours.flags.writeable  # the cached array cannot be changed by a caller


@pytest.mark.parametrize("name", CONFIGS)
def test_mel_spectrogram_equals_librosa_on_noise_and_a_chirp(name):
    config = CONFIGS[name]
    for audio in (noise(), chirp(config.sample_rate)):
        assert_matches_librosa(jit_mel_spectrogram(audio, config), librosa_mel(audio, config))


def test_magnitude_spectrogram_and_uncentred_frames_equal_librosa():
    config = dataclasses.replace(CONFIGS["default"], power=1.0, center=False)
    audio = noise(1)
    assert_matches_librosa(jit_mel_spectrogram(audio, config), librosa_mel(audio, config))


def scipy_hann(length: int) -> np.ndarray:
    """The periodic Hann window librosa uses (``fftbins=True``)."""
    return np.asarray(scipy.signal.get_window("hann", length, fftbins=True))


def test_hann_window_is_periodic_and_centred_like_librosa():
    config = CONFIGS["odd_fft_band"]  # a 300-sample window in a 511-sample frame
    expected = librosa.util.pad_center(scipy_hann(300), size=511)
    np.testing.assert_allclose(hann_window(config), expected, atol=1e-7)
    np.testing.assert_allclose(hann_window(MelConfig(n_fft=8)), scipy_hann(8), atol=1e-7)


@pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")  # librosa on short audio
@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(1, 5000),
    n_fft=st.sampled_from([256, 400, 511]),
    hop=st.sampled_from([80, 128, 160]),
    center=st.booleans(),
)
def test_n_frames_equals_librosa_frame_count(samples, n_fft, hop, center):
    config = MelConfig(n_fft=n_fft, hop_length=hop, center=center)
    if not center and samples < n_fft:
        with pytest.raises(ValueError, match="make no frame"):
            n_frames(samples, config)
        return
    stft = librosa.stft(np.zeros(samples, np.float32), n_fft=n_fft, hop_length=hop,
                        center=center, pad_mode="constant")  # fmt: skip
    assert n_frames(samples, config) == stft.shape[-1]


def test_frames_hold_the_reflect_padded_audio():
    config = MelConfig(n_fft=8, hop_length=3)
    audio = np.arange(10, dtype=np.float32)
    padded = np.pad(audio, 4, mode="reflect")
    expected = np.stack([padded[3 * t : 3 * t + 8] for t in range(n_frames(10, config))])
    np.testing.assert_array_equal(frames(audio, config), expected)


def test_jit_equals_eager_and_batch_equals_each_example():
    config = CONFIGS["default"]
    batch = noise(2, (3, SAMPLES))
    batched = np.asarray(jit_log_mel(batch, config))
    assert batched.shape == (3, n_frames(SAMPLES, config), config.n_mels)
    np.testing.assert_allclose(log_mel(batch[0], config), batched[0], rtol=1e-5, atol=1e-5)
    for i, audio in enumerate(batch):
        np.testing.assert_allclose(jit_log_mel(audio, config), batched[i], rtol=1e-6, atol=1e-6)
    vmapped = jax.jit(jax.vmap(log_mel, in_axes=(0, None)), static_argnums=1)(batch, config)
    np.testing.assert_allclose(vmapped, batched, rtol=1e-6, atol=1e-6)
    for chunk_size in (2, None):  # two chunks, one short; the whole batch
        chunked = batched_log_mel(batch, config, chunk_size=chunk_size)
        np.testing.assert_allclose(chunked, batched, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"takes float\[batch, samples\], got shape \(8000,\)"):
        batched_log_mel(batch[0], config)


def test_log_mel_is_the_floored_natural_log():
    config = CONFIGS["default"]
    audio = noise(3)
    audio[:2000] = 0.0  # silent frames meet the floor
    mel = np.asarray(jit_mel_spectrogram(audio, config))
    features = np.asarray(jit_log_mel(audio, config))
    np.testing.assert_allclose(features, np.log(np.maximum(mel, 1e-10)), rtol=1e-6, atol=1e-6)
    assert features.min() == pytest.approx(np.log(1e-10))


def test_log_mel_batch_pads_to_a_bucket_and_keeps_each_utterance():
    config = CONFIGS["default"]
    lengths = (SAMPLES, 3001, 170)  # 51, 19 and 2 frames
    audios = [noise(seed, (n,)) for seed, n in enumerate(lengths)]
    features, counts = log_mel_batch(audios, config, bucket_frames=20)
    np.testing.assert_array_equal(counts, [n_frames(n, config) for n in lengths])
    assert counts.dtype == np.int32 and features.shape == (3, 60, config.n_mels)
    for audio, count, padded in zip(audios, counts, np.asarray(features), strict=True):
        alone = np.asarray(jit_log_mel(audio, config))
        np.testing.assert_allclose(padded[:count], alone, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(padded[count:], np.float32(np.log(1e-10)))


def test_log_mel_batch_without_centre_padding():
    config = dataclasses.replace(CONFIGS["htk_unnormed"], center=False)
    audios = [noise(5, (3000,)), noise(6, (300,))]  # 35 and 1 frames
    features, counts = log_mel_batch(audios, config, chunk_size=None)
    np.testing.assert_array_equal(counts, [35, 1])
    assert features.shape == (2, 64, config.n_mels)
    for audio, count, padded in zip(audios, counts, np.asarray(features), strict=True):
        assert_matches_librosa(padded[:count], np.log(librosa_mel(audio, config)))


def test_log_mel_batch_rejects_what_it_cannot_pad():
    config = CONFIGS["default"]
    with pytest.raises(ValueError, match="no utterances"):
        log_mel_batch([], config)
    with pytest.raises(ValueError, match=r"utterance 1 has shape \(2, 100\).*mix channels down"):
        log_mel_batch([np.zeros(100), np.zeros((2, 100))], config)
    with pytest.raises(ValueError, match="0 samples of audio make no frame"):
        log_mel_batch([np.zeros(0)], config)
    with pytest.raises(ValueError, match="bucket_frames must be a positive integer"):
        log_mel_batch([np.zeros(100)], config, bucket_frames=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"n_fft": 0}, "n_fft must be a positive integer"),
     ({"hop_length": -1}, "hop_length must be a positive integer"),
     ({"n_mels": 0}, "n_mels must be a positive integer"),
     ({"win_length": 500}, "win_length must lie in 1..n_fft=400"),
     ({"f_max": 9000.0}, r"need 0 <= f_min < f_max <= sample_rate / 2 = 8000 Hz.*lower f_max"),
     ({"f_min": 8000.0}, "need 0 <= f_min < f_max"),
     ({"pad_mode": "edge"}, "pad_mode must be 'reflect' or 'constant'"),
     ({"mel_scale": "mel"}, "mel_scale must be 'slaney' or 'htk'"),
     ({"mel_norm": "l2"}, "mel_norm must be 'slaney' or None"),
     ({"power": 0.0}, "power must be positive"),
     ({"log_floor": 0.0}, "log_floor must be positive")],
)  # fmt: skip
def test_mel_config_rejects_bad_settings(change, message):
    with pytest.raises(ValueError, match=f"MelConfig: {message}"):
        MelConfig(**change)


def test_short_audio_reflects_like_numpy():
    config = MelConfig(n_fft=64, hop_length=16, n_mels=8)
    audio = noise(4, (20,))  # shorter than the 32-sample padding
    padded = np.pad(audio, 32, mode="reflect")
    expected = np.stack([padded[16 * t : 16 * t + 64] for t in range(n_frames(20, config))])
    np.testing.assert_allclose(frames(jnp.asarray(audio), config), expected)
