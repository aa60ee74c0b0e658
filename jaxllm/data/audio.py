"""WAV files in and out, as mono float32 audio in [-1, 1] at the sample rate a model wants.

    audio, rate = read_wav("speech.wav", sample_rate=16000)   # float32[samples], 16000
    check_audible(audio, "speech.wav")                        # AudioError if all silent
    write_wav("copy.wav", audio, rate)                        # 16-bit PCM

:func:`read_wav` parses the RIFF chunks itself (the standard library's ``wave`` refuses
floating-point WAVs) and reads:

- integer PCM of 8 bits (unsigned), 16, 24 or 32 bits (signed), scaled by ``2 ** (bits - 1)``
  into [-1, 1) (float32 rounds a 32-bit sample within 2**-24 of 1 up to 1.0);
- IEEE floating point of 32 or 64 bits, as stored (not clipped);
- either one also in a ``WAVE_FORMAT_EXTENSIBLE`` header.

Conversions, documented and tested: several channels are mixed down to their mean; with
``sample_rate`` given, audio at another rate is resampled (:func:`resample`). Silence is
not an error when reading (a silent file is a valid file); a caller that needs speech calls
:func:`check_audible`. Everything else (no file, not a WAV, a truncated or corrupt header,
A-law, ADPCM, MP3 or another encoding, no samples) raises :class:`AudioError`, whose message
names the file and says how to fix or convert it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import wave
from pathlib import Path

import numpy as np

PathLike = str | os.PathLike

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {
    0x0001: "integer PCM", 0x0002: "Microsoft ADPCM", 0x0003: "IEEE float", 0x0006: "A-law",
    0x0007: "mu-law", 0x0011: "IMA ADPCM", 0x0055: "MP3", 0xFFFE: "extensible",
}  # fmt: skip
SUPPORTED_BITS = {WAVE_FORMAT_PCM: (8, 16, 24, 32), WAVE_FORMAT_IEEE_FLOAT: (32, 64)}
# How to make a file this module reads, for the error messages.
CONVERT_HINT = "convert it to 16-bit PCM, e.g. `sox IN -b 16 -e signed-integer OUT.wav` or " \
    "`ffmpeg -i IN -c:a pcm_s16le OUT.wav`"  # fmt: skip
DEFAULT_SILENCE_THRESHOLD = 1e-4  # peak amplitude; 16-bit PCM's quietest step is 3e-5


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class WavFormat:
    """A WAV file's ``fmt`` chunk: ``format_tag`` (1 PCM, 3 IEEE float; an extensible header's
    sub-format), ``channels``, ``sample_rate`` (Hz), ``bits`` per sample, ``block_align``
    (bytes per frame of all channels)."""

    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    block_align: int


# ---------------------------------------------------------------------------------------------
# Reading


def read_wav(path: PathLike, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """``(audio, rate)``: the file's samples as mono ``float32[samples]`` and their rate in Hz.

    Channels are averaged; with ``sample_rate`` given, audio at another rate is resampled to
    it (:func:`resample`) and ``rate == sample_rate``. Raises :class:`AudioError` for a missing
    file, a file that is not a RIFF/WAVE file, a truncated or corrupt one, an unsupported
    encoding or sample width, and a file of no samples.
    """
    data = _read_bytes(path)
    chunks = riff_chunks(data, path)
    if b"fmt " not in chunks:
        raise AudioError(f"{path}: corrupt WAV, no 'fmt ' chunk; {CONVERT_HINT}")
    if b"data" not in chunks:
        raise AudioError(f"{path}: corrupt WAV, no 'data' chunk (no samples); {CONVERT_HINT}")
    wav_format = parse_format(chunks[b"fmt "], path)
    audio = decode_samples(chunks[b"data"], wav_format, path).mean(axis=1, dtype=np.float32)
    if sample_rate is not None and sample_rate != wav_format.sample_rate:
        return resample(audio, wav_format.sample_rate, sample_rate), sample_rate
    return audio, wav_format.sample_rate


def _read_bytes(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file; check the path") from None
    except OSError as error:
        raise AudioError(f"{path}: cannot read it ({error.strerror}); check the path") from None


def riff_chunks(data: bytes, path: PathLike = "<bytes>") -> dict[bytes, bytes]:
    """The chunks of a RIFF/WAVE file, ``{chunk id: body}`` (the first of each id).

    A chunk whose stated size runs past the end of the file is truncated: an AudioError if it
    is ``fmt `` or ``data``, else ignored with the rest of the file (bytes after the chunks
    that are too few to be a chunk header, too).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        start = data[:12]
        raise AudioError(
            f"{path}: not a WAV file (a RIFF/WAVE header starts 'RIFF....WAVE', this file "
            f"starts {start!r}); {CONVERT_HINT}"
        )
    chunks: dict[bytes, bytes] = {}
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = data[position : position + 4], _u32(data, position + 4)
        body = data[position + 8 : position + 8 + size]
        if len(body) < size:
            if chunk_id in (b"fmt ", b"data"):
                raise AudioError(
                    f"{path}: truncated WAV, its {chunk_id.decode().strip()!r} chunk should "
                    f"hold {size} bytes, the file has {len(body)}; copy or record it again"
                )
            break
        chunks.setdefault(chunk_id, body)
        position += 8 + size + size % 2  # chunks are padded to an even size
    return chunks


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]


def parse_format(body: bytes, path: PathLike = "<bytes>") -> WavFormat:
    """The :class:`WavFormat` of a ``fmt `` chunk's ``body``; an AudioError unless it is a
    supported encoding and width with a consistent frame size."""
    if len(body) < 16:
        raise AudioError(f"{path}: corrupt WAV, its 'fmt ' chunk has {len(body)} of 16 bytes")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID's first two bytes
    if tag not in SUPPORTED_BITS or bits not in SUPPORTED_BITS[tag]:
        encoding = _FORMAT_NAMES.get(tag, f"format 0x{tag:04x}")
        raise AudioError(
            f"{path}: unsupported WAV encoding, {bits}-bit {encoding}; read_wav reads 8/16/24/"
            f"32-bit integer PCM and 32/64-bit IEEE float: {CONVERT_HINT}"
        )
    if channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise AudioError(
            f"{path}: corrupt WAV header ({channels} channels, {rate} Hz, {block_align} bytes "
            f"a frame of {bits}-bit samples); {CONVERT_HINT}"
        )
    return WavFormat(tag, channels, rate, bits, block_align)


def decode_samples(raw: bytes, wav_format: WavFormat, path: PathLike = "<bytes>") -> np.ndarray:
    """The samples of a ``data`` chunk as ``float32[frames, channels]``: integers divided by
    ``2 ** (bits - 1)`` (8-bit ones, unsigned, less 128 first), floats as they are."""
    if len(raw) % wav_format.block_align:
        raise AudioError(
            f"{path}: corrupt WAV, its data chunk of {len(raw)} bytes is not whole frames of "
            f"{wav_format.block_align} bytes; {CONVERT_HINT}"
        )
    if not raw:
        raise AudioError(f"{path}: empty WAV, it holds no samples; record or export it again")
    scale = 2.0 ** (wav_format.bits - 1)
    if wav_format.format_tag == WAVE_FORMAT_IEEE_FLOAT:
        values = np.frombuffer(raw, f"<f{wav_format.bits // 8}")
        if not np.isfinite(values).all():
            raise AudioError(f"{path}: the WAV holds NaN or infinite samples; export it again")
    elif wav_format.bits == 8:
        values = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / scale
    elif wav_format.bits == 24:
        values = _int24_samples(raw) / scale
    else:
        values = np.frombuffer(raw, f"<i{wav_format.bits // 8}") / scale
    return values.astype(np.float32).reshape(-1, wav_format.channels)


def _int24_samples(raw: bytes) -> np.ndarray:
    """Little-endian 3-byte signed integers: ``int32[n]``."""
    triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    unsigned = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    return (unsigned ^ 0x800000) - 0x800000  # sign-extend bit 23


# ---------------------------------------------------------------------------------------------
# Conversions and checks


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio: float[..., samples]`` at ``from_rate`` Hz resampled to ``to_rate`` Hz:
    ``float32[..., ceil(samples * to_rate / from_rate)]``.

    Polyphase filtering (``scipy.signal.resample_poly``, up and down by the rates divided by
    their greatest common divisor; a Kaiser-windowed sinc low-pass at the lower Nyquist
    frequency), so frequencies below both Nyquist frequencies keep their place.
    """
    if from_rate < 1 or to_rate < 1:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate} Hz")
    audio = np.asarray(audio, np.float32)
    if from_rate == to_rate:
        return audio
    common = math.gcd(from_rate, to_rate)
    import scipy.signal  # loaded on first use: importing jaxllm stays light

    resampled = scipy.signal.resample_poly(audio, to_rate // common, from_rate // common, axis=-1)
    return resampled.astype(np.float32)


def check_audible(
    audio: np.ndarray, name: PathLike, threshold: float = DEFAULT_SILENCE_THRESHOLD
) -> None:
    """Raise :class:`AudioError` when ``audio: float[samples]`` (from ``name``) is silent: its
    peak amplitude below ``threshold`` (default 1e-4, about -80 dB of full scale)."""
    peak = float(np.max(np.abs(audio))) if np.size(audio) else 0.0
    if peak < threshold:
        raise AudioError(
            f"{name}: silent audio (peak amplitude {peak:.2g} < {threshold:g}), nothing to "
            "transcribe; check the recording's input and gain, or lower the threshold"
        )


# ---------------------------------------------------------------------------------------------
# Writing


def write_wav(path: PathLike, audio: np.ndarray, sample_rate: int, sample_width: int = 2) -> None:
    """Write ``audio: float[samples]`` (or ``float[samples, channels]``) as integer PCM of
    ``sample_width`` bytes (1: 8-bit unsigned, 2, 3 or 4: signed).

    Samples are clipped to [-1, 1], scaled by ``2 ** (8 sample_width - 1)``, rounded and
    clipped to the integer range, so :func:`read_wav` gives back every sample in
    [-1, 1 - 2 ** (1 - 8 sample_width)] to within half a step.
    """
    if sample_width not in (1, 2, 3, 4):
        raise ValueError(f"sample_width must be 1, 2, 3 or 4 bytes, got {sample_width}")
    audio = np.asarray(audio, np.float64)
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be [samples] or [samples, channels], got {audio.shape}")
    frames = audio.reshape(len(audio), -1)  # [samples, channels]
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(frames.shape[1])
        out.setsampwidth(sample_width)
        out.setframerate(sample_rate)
        out.writeframes(pcm_bytes(frames, sample_width))


def pcm_bytes(audio: np.ndarray, sample_width: int) -> bytes:
    """Little-endian PCM bytes of ``audio: float[...]`` in [-1, 1], ``sample_width`` bytes a
    sample (see :func:`write_wav`)."""
    scale = 2 ** (8 * sample_width - 1)
    codes = np.clip(np.round(np.clip(audio, -1.0, 1.0) * scale), -scale, scale - 1)
    if sample_width == 1:
        return (codes + 128).astype(np.uint8).tobytes()
    as_int32 = codes.astype("<i4").reshape(-1, 1).view(np.uint8)  # 4 bytes, little-endian
    return as_int32[:, :sample_width].tobytes()
