"""WAV reading and writing, channel mix-down, resampling and the errors of jaxllm.data.audio.

The reference files are built here by hand (``wave`` for PCM headers, ``struct`` for the RIFF
chunks ``wave`` cannot write), from integer sample codes whose float values are known.
"""

import struct
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxllm.data.audio import AudioError, check_audible, read_wav, resample, write_wav

# Sample codes at -full scale, -half, 0, +half, +full scale - 1 step, per sample width in bytes.
CODES = {width: [-(2 ** (8 * width - 1)), -(2 ** (8 * width - 2)), 0, 2 ** (8 * width - 2),
                 2 ** (8 * width - 1) - 1] for width in (1, 2, 3, 4)}  # fmt: skip
EXPECTED = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float64)  # the last one less a step


def pcm_code_bytes(codes: list[int], width: int) -> bytes:
    """Little-endian PCM bytes of integer codes: 8-bit unsigned (code + 128), else signed."""
    if width == 1:
        return bytes(code + 128 for code in codes)
    return b"".join(code.to_bytes(width, "little", signed=True) for code in codes)


def write_pcm(path, frames: bytes, width: int, channels: int = 1, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)


def riff(fmt_body: bytes, data: bytes) -> bytes:
    """A RIFF/WAVE file of one ``fmt `` and one ``data`` chunk, built by hand."""
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def fmt_body(tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_codes_read_as_code_over_full_scale(tmp_path, width):
    path = tmp_path / f"{8 * width}bit.wav"
    write_pcm(path, pcm_code_bytes(CODES[width], width), width, rate=8000)
    audio, rate = read_wav(path)
    assert rate == 8000 and audio.dtype == np.float32 and audio.shape == (5,)
    expected = np.array(CODES[width], np.float64) / 2 ** (8 * width - 1)
    np.testing.assert_array_equal(audio, expected.astype(np.float32))
    np.testing.assert_allclose(audio, EXPECTED, atol=2 ** (1 - 8 * width))


@settings(max_examples=25, deadline=None)
@given(
    audio=hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-1.0, 1.0)),
    width=st.sampled_from([1, 2, 3, 4]),
)
def test_write_then_read_is_within_half_a_step(tmp_path_factory, audio, width):
    path = tmp_path_factory.mktemp("round_trip") / "audio.wav"
    write_wav(path, audio, 22050, sample_width=width)
    back, rate = read_wav(path)
    step = 2.0 ** (1 - 8 * width)
    top = 1.0 - step  # the largest code; 1.0 is clipped to it
    assert rate == 22050 and back.shape == audio.shape
    np.testing.assert_allclose(back, np.minimum(audio, top), atol=step / 2 + 1e-7)


def test_write_wav_writes_pcm_that_wave_reads(tmp_path):
    path = tmp_path / "out.wav"
    write_wav(path, np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]), 16000)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        codes = np.frombuffer(wav.readframes(6), "<i2")
    np.testing.assert_array_equal(codes, [-32768, -16384, 0, 16384, 32767, 32767])


def test_stereo_is_mixed_down_to_the_mean_of_its_channels(tmp_path):
    left, right = [1000, -2000, 3000], [3000, 2000, -3000]
    interleaved = [code for pair in zip(left, right, strict=True) for code in pair]
    path = tmp_path / "stereo.wav"
    write_pcm(path, pcm_code_bytes(interleaved, 2), 2, channels=2)
    audio, _ = read_wav(path)
    np.testing.assert_allclose(audio, (np.array(left) + np.array(right)) / 2 / 32768, atol=1e-7)


def test_ieee_float_and_extensible_headers_are_read(tmp_path):
    values = np.array([0.25, -0.75, 1.5, 0.0], np.float32)  # floats are not clipped
    float_path = tmp_path / "float.wav"
    float_path.write_bytes(riff(fmt_body(3, 1, 16000, 32), values.astype("<f4").tobytes()))
    np.testing.assert_array_equal(read_wav(float_path)[0], values)
    # WAVE_FORMAT_EXTENSIBLE: 22 more bytes, the sub-format GUID starting with the PCM tag
    guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    extension = struct.pack("<HHI", 22, 16, 0) + guid
    codes = [16384, -8192]
    ext_path = tmp_path / "extensible.wav"
    ext_path.write_bytes(riff(fmt_body(0xFFFE, 1, 16000, 16) + extension,
                              pcm_code_bytes(codes, 2)))  # fmt: skip
    np.testing.assert_array_equal(read_wav(ext_path)[0], [0.5, -0.25])


def sine(frequency: float, rate: int, seconds: float) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)


def peak_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("from_rate", [44100, 8000])
def test_read_wav_resamples_keeping_frequency_and_duration(tmp_path, from_rate):
    path = tmp_path / "sine.wav"
    write_wav(path, sine(440.0, from_rate, 1.0), from_rate)
    audio, rate = read_wav(path, sample_rate=16000)
    assert rate == 16000 and audio.dtype == np.float32 and len(audio) == 16000
    assert abs(peak_frequency(audio, 16000) - 440.0) <= 1.0  # 1 Hz bins
    middle = audio[1000:-1000]  # away from the filter's edge effects
    np.testing.assert_allclose(np.abs(middle).max(), 0.5, atol=0.01)


@settings(max_examples=20, deadline=None)
@given(
    samples=st.integers(1, 3000),
    rates=st.sampled_from([(44100, 16000), (22050, 16000), (16000, 48000), (8000, 16000)]),
)
def test_resampled_length_is_the_ceiling_of_samples_times_the_ratio(samples, rates):
    from_rate, to_rate = rates
    out = resample(np.zeros(samples, np.float32), from_rate, to_rate)
    assert len(out) == -(-samples * to_rate // from_rate)


def test_resample_to_the_same_rate_changes_nothing():
    audio = np.array([0.1, -0.2, 0.3], np.float32)
    np.testing.assert_array_equal(resample(audio, 16000, 16000), audio)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: no such file; check the path"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="cannot read it"):
        read_wav(tmp_path)  # a directory


def test_non_wav_bytes_are_not_a_wav_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_bytes(b"ID3\x03\x00 this is an mp3, really")
    with pytest.raises(AudioError, match=r"notes\.wav: not a WAV file.*ffmpeg"):
        read_wav(path)
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="not a WAV file"):
        read_wav(path)


def test_truncated_files_say_how_many_bytes_are_missing(tmp_path):
    whole = tmp_path / "whole.wav"
    write_pcm(whole, pcm_code_bytes(list(range(100)), 2), 2)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:-51])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated WAV, its 'data' chunk should "
                       r"hold 200 bytes, the file has 149"):  # fmt: skip
        read_wav(cut)
    cut.write_bytes(data[:30])  # inside the fmt chunk
    with pytest.raises(AudioError, match=r"truncated WAV, its 'fmt' chunk"):
        read_wav(cut)
    cut.write_bytes(data[:36])  # the header only, no data chunk
    with pytest.raises(AudioError, match=r"no 'data' chunk"):
        read_wav(cut)


@pytest.mark.parametrize(
    ("tag", "bits", "named"),
    [(1, 40, "40-bit integer PCM"), (1, 12, "12-bit integer PCM"), (6, 8, "8-bit A-law"),
     (3, 16, "16-bit IEEE float"), (0x55, 16, "16-bit MP3")],
)  # fmt: skip
def test_unsupported_encodings_name_themselves_and_the_conversion(tmp_path, tag, bits, named):
    path = tmp_path / "odd.wav"
    path.write_bytes(riff(fmt_body(tag, 1, 16000, bits), bytes(bits)))
    with pytest.raises(AudioError, match=rf"odd\.wav: unsupported WAV encoding, {named};.*sox"):
        read_wav(path)


def test_empty_and_inconsistent_wavs_are_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    write_pcm(empty, b"", 2)
    with pytest.raises(AudioError, match=r"empty\.wav: empty WAV, it holds no samples"):
        read_wav(empty)
    odd = tmp_path / "odd_frames.wav"
    odd.write_bytes(riff(fmt_body(1, 2, 16000, 16), bytes(6)))  # 1.5 stereo frames
    with pytest.raises(AudioError, match="not whole frames of 4 bytes"):
        read_wav(odd)
    bad_align = fmt_body(1, 1, 16000, 16)[:12] + struct.pack("<HH", 3, 16)
    wrong = tmp_path / "wrong.wav"
    wrong.write_bytes(riff(bad_align, bytes(6)))
    with pytest.raises(AudioError, match="corrupt WAV header"):
        read_wav(wrong)
    nan = tmp_path / "nan.wav"
    nan.write_bytes(riff(fmt_body(3, 1, 16000, 32), np.array([0.0, np.nan], "<f4").tobytes()))
    with pytest.raises(AudioError, match="NaN or infinite"):
        read_wav(nan)


def test_silence_reads_but_check_audible_rejects_it(tmp_path):
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(1600), 16000)
    audio, _ = read_wav(path)  # a valid file
    with pytest.raises(AudioError, match=r"silence\.wav: silent audio \(peak amplitude 0 < "):
        check_audible(audio, path)
    with pytest.raises(AudioError, match="silent audio"):
        check_audible(np.full(10, 5e-5, np.float32), "quiet")
    with pytest.raises(AudioError, match="silent audio"):
        check_audible(np.zeros(0, np.float32), "nothing")
    check_audible(np.array([0.0, -0.01], np.float32), "speech")  # audible: no error
    check_audible(np.full(10, 5e-5, np.float32), "quiet", threshold=1e-5)
