"""The synthetic speech set: sentence choice, noise at a set SNR, the split plan (voices and
sentences held out), building with a fake speaker, the manifest and its errors, espeak-ng's
command line (a fake program here), and real espeak-ng when it is installed."""

import dataclasses
import importlib.util
import io
import json
import math
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from jaxllm.data.audio import read_wav
from jaxllm.data.speech_set import (
    SPEECH_ALPHABET,
    SPLITS,
    EspeakCommand,
    SpeechSetConfig,
    SpeechSetError,
    add_noise,
    build_speech_set,
    check_voices,
    find_espeak,
    load_speech_set,
    made_with,
    normalize_speech_text,
    plan_speech_set,
    speech_sentences,
    split_sentences,
    streamed_wav_audio,
    synthesize,
    training_voices,
    unpacked_espeak,
    voices_to_check,
)

RATE = 16000


def _load_tool():
    """``tools/make_speech_set.py`` (a repository script, not part of the package)."""
    path = Path(__file__).resolve().parents[2] / "tools" / "make_speech_set.py"
    spec = importlib.util.spec_from_file_location("make_speech_set", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_speaker(text: str, *, voice: str, speed: int, pitch: int, sample_rate: int):
    """A tone 10 ms a character (slower at lower speeds), its frequency set by voice and pitch."""
    samples = int(sample_rate * 0.01 * len(text) * 170 / speed)
    frequency = 100 + 10 * pitch + 7 * sum(map(ord, voice)) % 300
    t = np.arange(samples) / sample_rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def tiny_config(corpus: Path, **changes) -> SpeechSetConfig:
    base = SpeechSetConfig(
        sentences=20,
        voices=("en-us", "en+f2", "en-gb-scotland"),
        variants=(),
        test_voices=("en-us-nyc",),
        valid_fraction=0.2,
        test_fraction=0.2,
        train_repeats=2,
        eval_repeats=3,
        corpus=str(corpus),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A text file of 30 distinct speakable sentences, and some that are not."""
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    lines = [
        f"The {words[i % 12]} and {words[(i * 5 + 1) % 12]} met {words[i // 12]}."
        for i in range(30)
    ]
    lines += ["It cost 3 pounds.", "HAMLET.", "Use x = y + 1 here."]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- sentences -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("So foul and fair a day I have not seen.", "so foul and fair a day i have not seen"),
        ("\u2018Tis true: \u201cdon\u2019t\u201d stop\u2014now.", "tis true don't stop now"),
        (
            "The kings' crowns (all three) are well-known.",
            "the kings crowns all three are well known",
        ),  # fmt: skip
        ("Caf\u00e9  au\n lait", "cafe au lait"),
        ("It is 3 o'clock.", None),
        ("Set x = y + 1 now", None),
        ("See str.join for that", None),
        ("KING HENRY THE FIFTH.", None),
        ("\u4e2d\u6587 text", None),
        ("...", None),
    ],
)
def test_normalize_speech_text(raw, expected):
    assert normalize_speech_text(raw) == expected


def test_speech_sentences_split_filter_deduplicate_in_order():
    texts = [
        "First one here. Second one is here!\nIt goes on a line.\n\nA new paragraph starts",
        "first one here. Too short. This has 4 numbers like 4. " + "word " * 13 + "end.",
    ]
    got = speech_sentences(texts, min_words=3, max_words=12)
    assert got == [
        "first one here",
        "second one is here",
        "it goes on a line",
        "a new paragraph starts",
    ]
    assert all(set(sentence) <= set(SPEECH_ALPHABET) for sentence in got)
    assert speech_sentences(texts, max_chars=15) == ["first one here"]


# --- noise ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("snr_db", [30.0, 10.0, 0.0, -5.0])
def test_add_noise_hits_the_snr(snr_db):
    t = np.arange(5 * RATE) / RATE
    clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.7)).astype(np.float32)
    noisy = add_noise(clean, snr_db, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    noise = noisy.astype(np.float64) - clean
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(measured - snr_db) < 0.1
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.02  # white


def test_add_noise_inf_unchanged_and_errors():
    clean = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    np.testing.assert_array_equal(add_noise(clean, math.inf, np.random.default_rng(0)), clean)
    with pytest.raises(ValueError, match="silent"):
        add_noise(np.zeros(100, np.float32), 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="snr_db"):
        add_noise(clean, math.nan, np.random.default_rng(0))


# --- the plan ------------------------------------------------------------------------------------


def test_config_refuses_test_voices_in_training():
    with pytest.raises(ValueError, match="held-out voices must be new"):
        SpeechSetConfig(voices=("en-us", "en+f2"), variants=(), test_voices=("en+f2",))
    with pytest.raises(ValueError, match="held-out voices must be new"):
        SpeechSetConfig(voices=("en-us", "en"), variants=("m1", "f2"), test_voices=("en+f2",))
    with pytest.raises(ValueError, match="give accents only"):
        SpeechSetConfig(voices=("en-us", "en+f2"), variants=("m1",), test_voices=("en-us-nyc",))
    with pytest.raises(ValueError, match="empty"):
        SpeechSetConfig(speeds=())


def test_default_counts_and_held_out_accents_and_timbres():
    config = SpeechSetConfig()
    assert config.split_sentence_counts() == {"train": 5520, "valid": 240, "test": 240}
    accents = {voice.partition("+")[0] for voice in config.test_voices}
    timbres = {voice.partition("+")[2] for voice in config.test_voices}
    assert not accents & set(config.voices) and not timbres & set(config.variants)
    sentences = [f"sentence number {i}" for i in range(6000)]
    planned = plan_speech_set(config, sentences)
    counts = {split: sum(u.split == split for u in planned) for split in SPLITS}
    assert counts == {"train": 11040, "valid": 720, "test": 720}


def test_accents_and_timbres_are_drawn_independently(corpus):
    config = tiny_config(corpus, voices=("en-us", "en"), variants=("m1", "f2", "klatt"))
    assert training_voices(config) == [
        f"{a}+{v}" for a in ("en-us", "en") for v in ("m1", "f2", "klatt")
    ]
    planned = plan_speech_set(
        dataclasses.replace(config, train_repeats=20), speech_sentences([corpus.read_text()])
    )
    heard = {u.voice for u in planned if u.split != "test"}
    assert heard == set(training_voices(config))  # all six pairs, from 240 + 12 draws
    assert {u.voice for u in planned if u.split == "test"} == {"en-us-nyc"}
    # Enough to show every accent takes variants and every variant exists: 2 + 3 - 1 probes.
    assert voices_to_check(config) == ["en-us+m1", "en+m1", "en-us+f2", "en-us+klatt"]


def test_plan_holds_out_voices_and_sentences(corpus):
    config = tiny_config(corpus)
    sentences = speech_sentences([corpus.read_text()])
    planned = plan_speech_set(config, sentences)
    by_split = {split: [u for u in planned if u.split == split] for split in SPLITS}
    texts = {split: {u.text for u in us} for split, us in by_split.items()}
    assert [len(texts[s]) for s in SPLITS] == [12, 4, 4]
    assert [len(by_split[s]) for s in SPLITS] == [24, 12, 12]
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]
    assert not texts["valid"] & texts["test"]
    assert {u.voice for u in by_split["test"]} <= set(config.test_voices)
    assert {u.voice for u in by_split["train"] + by_split["valid"]} <= set(config.voices)
    assert len({u.voice for u in by_split["train"]}) == 3  # every training voice is used
    for split in ("valid", "test"):  # eval_repeats == len(snr_db): every sentence at every SNR
        for text in texts[split]:
            levels = sorted(u.snr_db for u in by_split[split] if u.text == text)
            assert levels == [10, 20, math.inf]
    for split, us in by_split.items():
        assert [u.number for u in us] == list(range(len(us)))
        assert {u.path for u in us} == {f"{split}/{n:05d}.wav" for n in range(len(us))}


def test_plan_is_deterministic_by_seed(corpus):
    sentences = speech_sentences([corpus.read_text()])
    config = tiny_config(corpus)
    assert plan_speech_set(config, sentences) == plan_speech_set(config, sentences)
    other = plan_speech_set(dataclasses.replace(config, seed=1), sentences)
    assert other != plan_speech_set(config, sentences)
    assert (
        split_sentences(config, sentences)["test"]
        != split_sentences(dataclasses.replace(config, seed=1), sentences)["test"]
    )


def test_too_few_sentences_says_what_to_do(corpus):
    with pytest.raises(SpeechSetError, match="--sentences"):
        split_sentences(tiny_config(corpus, sentences=31), ["a b c"] * 30)


# --- building and reading ------------------------------------------------------------------------


@pytest.fixture
def built(tmp_path, corpus) -> tuple[Path, SpeechSetConfig]:
    config = tiny_config(corpus)
    out = build_speech_set(config, tmp_path / "speech", speak=fake_speaker, progress=False)
    return out, config


def test_build_and_load_round_trip(built):
    out, config = built
    assert not out.with_name("speech.partial").exists()
    splits = load_speech_set(out)
    assert [len(splits[s]) for s in SPLITS] == [24, 12, 12]
    summary = json.loads((out / "config.json").read_text())
    assert summary["utterances"] == {"train": 24, "valid": 12, "test": 12}
    assert summary["config"]["snr_db"] == [None, 20.0, 10.0]
    for utterance in splits["train"][:6] + splits["test"][:6]:
        audio, rate = read_wav(utterance.path)
        assert rate == RATE and abs(len(audio) / rate - utterance.seconds) < 1e-3
        clean = fake_speaker(utterance.text, voice=utterance.voice, speed=utterance.speed,
                             pitch=utterance.pitch, sample_rate=RATE)  # fmt: skip
        np.testing.assert_allclose(utterance.audio(), audio)
        if math.isinf(utterance.snr_db):
            np.testing.assert_allclose(audio, clean, atol=1e-4)
        else:
            noise = audio.astype(np.float64) - clean
            measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
            assert abs(measured - utterance.snr_db) < 0.2  # 16-bit rounding


def test_build_is_deterministic_and_thread_count_free(built, tmp_path):
    out, config = built
    again = build_speech_set(config, tmp_path / "again", speak=fake_speaker, progress=False,
                             workers=1)  # fmt: skip
    assert (out / "manifest.jsonl").read_text() == (again / "manifest.jsonl").read_text()
    for name in ("train/00003.wav", "test/00005.wav"):
        assert (out / name).read_bytes() == (again / name).read_bytes()


def test_made_with_knows_the_settings_of_a_set(built, tmp_path):
    out, config = built
    assert made_with(out, config)
    assert not made_with(out, dataclasses.replace(config, pitches=(40,)))
    assert not made_with(tmp_path / "nothing", config)
    (out / "config.json").write_text("{")
    assert not made_with(out, config)


def test_build_refuses_to_overwrite(built):
    out, config = built
    with pytest.raises(SpeechSetError, match="overwrite=True"):
        build_speech_set(config, out, speak=fake_speaker, progress=False)
    changed = dataclasses.replace(config, train_repeats=1)
    build_speech_set(changed, out, speak=fake_speaker, progress=False, overwrite=True)
    assert len(load_speech_set(out)["train"]) == 12
    assert not out.with_name("speech.old").exists()


def test_load_missing_set(tmp_path, monkeypatch):
    with pytest.raises(SpeechSetError, match="make data"):
        load_speech_set(tmp_path / "nowhere")
    monkeypatch.setenv("JAXLLM_DATA_DIR", str(tmp_path))
    with pytest.raises(SpeechSetError, match=str(tmp_path / "speech")):
        load_speech_set()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"split": "train"}', "field 'path'"),
    ],
)
def test_load_broken_manifest_line(built, line, problem):
    out, _ = built
    lines = (out / "manifest.jsonl").read_text().splitlines()
    lines[4] = line
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SpeechSetError, match=f"line 5: {problem}"):
        load_speech_set(out)


def test_load_missing_wav(built):
    out, _ = built
    (out / "valid" / "00002.wav").unlink()
    with pytest.raises(SpeechSetError, match=r"line 27: its WAV file .*valid/00002.wav"):
        load_speech_set(out)


# --- espeak-ng's command line --------------------------------------------------------------------

FAKE_ESPEAK = """
import json, os, struct, sys
import numpy as np
with open(os.environ["FAKE_ARGV_FILE"], "w") as f:
    json.dump(sys.argv[1:], f)
if sys.argv[1] != "-v" or sys.argv[2] == "nobody":
    sys.stderr.write("Error: The specified espeak-ng voice does not exist.\\n")
    sys.exit(1)
samples = (10000 * np.sin(np.arange(2205 * len(sys.argv[-1])) / 5)).astype("<i2").tobytes()
header = b"RIFF" + struct.pack("<I", 0x7FFFF024) + b"WAVEfmt " + struct.pack(
    "<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16) + b"data" + struct.pack("<I", 0x7FFFF000)
sys.stdout.buffer.write(header + samples)
"""


def test_synthesize_passes_text_safely_and_resamples(tmp_path):
    script = tmp_path / "fake_espeak.py"
    script.write_text(FAKE_ESPEAK)
    argv_file = tmp_path / "argv.json"
    espeak = EspeakCommand((sys.executable, str(script)), (("FAKE_ARGV_FILE", str(argv_file)),))
    text = "-v it's $(rm -rf /); `ls` | cat"
    audio = synthesize(espeak, text, voice="en+f2", speed=170, pitch=40)
    assert json.loads(argv_file.read_text()) == [
        "-v", "en+f2", "-s", "170", "-p", "40", "--stdout", "--", text,
    ]  # fmt: skip
    assert audio.dtype == np.float32 and len(audio) == 1600 * len(text)  # 0.1 s a character
    with pytest.raises(SpeechSetError, match="voice does not exist"):
        synthesize(espeak, "hello", voice="nobody", speed=170, pitch=50)


def test_streamed_wav_audio():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(np.array([0, 16384, -16384], "<i2").tobytes())
    data = bytearray(buffer.getvalue())
    data[40:44] = (0x7FFFF000).to_bytes(4, "little")  # what a pipe gets
    audio, rate = streamed_wav_audio(bytes(data))
    assert rate == 22050 and audio.tolist() == [0.0, 0.5, -0.5]
    with pytest.raises(SpeechSetError, match="wrote no WAV"):
        streamed_wav_audio(b"")


def test_unpacked_espeak_environment(tmp_path):
    with pytest.raises(SpeechSetError, match="make data.*apt-get install espeak-ng"):
        unpacked_espeak(tmp_path)
    lib = tmp_path / "usr" / "lib" / "x86_64-linux-gnu"
    for path in ("usr/bin/espeak-ng", "usr/lib/x86_64-linux-gnu/libespeak-ng.so.1",
                 "usr/lib/x86_64-linux-gnu/pulseaudio/libpulsecommon-16.1.so",
                 "usr/lib/x86_64-linux-gnu/espeak-ng-data/phontab"):  # fmt: skip
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    env = dict(unpacked_espeak(tmp_path).env)
    assert env["LD_LIBRARY_PATH"].split(":")[:2] == [str(lib), str(lib / "pulseaudio")]
    assert env["ESPEAK_DATA_PATH"] == str(lib)


def test_absent_espeak_errors_and_cli_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("JAXLLM_DATA_DIR", str(tmp_path))
    with pytest.raises(SpeechSetError, match="run `make data`"):
        find_espeak()
    tool = _load_tool()
    assert tool.main(["--out", str(tmp_path / "speech"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make data" in err and "apt-get install espeak-ng" in err
    assert not (tmp_path / "speech").exists()


def test_update_keeps_a_set_of_the_same_settings_and_makes_another_again(
    tmp_path, corpus, monkeypatch, capsys
):
    """`make data` runs the tool with --update: a set of the tool's settings is kept as it is
    (espeak-ng not even looked for); one of other settings is made again."""
    config = dataclasses.replace(SpeechSetConfig(), sentences=20, corpus=str(corpus))
    out = build_speech_set(config, tmp_path / "speech", speak=fake_speaker, progress=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("JAXLLM_DATA_DIR", str(tmp_path))  # no espeak-ng anywhere
    tool = _load_tool()
    args = ["--out", str(out), "--sentences", "20", "--corpus", str(corpus), "--no-progress"]
    assert tool.main([*args, "--update"]) == 0
    assert capsys.readouterr().out.startswith("Speech set already in")
    assert tool.main([*args[:2], "--sentences", "21", *args[4:], "--update"]) == 2
    assert "made with other settings (sentences): making it again" in capsys.readouterr().out
    assert made_with(out, config)  # the failed remake left the set as it was


# --- real espeak-ng ------------------------------------------------------------------------------


def _espeak_or_none():
    try:
        return find_espeak()
    except SpeechSetError:
        return None


def test_real_espeak_two_voices():
    espeak = _espeak_or_none()
    if espeak is None:
        pytest.skip("espeak-ng is not installed (`make data` unpacks it)")
    text = "so foul and fair a day i have not seen"
    a = synthesize(espeak, text, voice="en-us", speed=170, pitch=50)
    b = synthesize(espeak, text, voice="en+f4", speed=170, pitch=50)
    for audio in (a, b):
        assert audio.dtype == np.float32 and 1.5 < len(audio) / RATE < 5
        assert np.sqrt(np.mean(audio**2)) > 0.01 and np.abs(audio).max() <= 1
    n = min(len(a), len(b))
    assert len(a) != len(b) or not np.allclose(a[:n], b[:n], atol=1e-3)
    slow = synthesize(espeak, text, voice="en-us", speed=120, pitch=50)
    assert len(slow) > 1.2 * len(a)


def test_real_espeak_has_the_default_voices():
    espeak = _espeak_or_none()
    if espeak is None:
        pytest.skip("espeak-ng is not installed (`make data` unpacks it)")
    config = SpeechSetConfig()
    check_voices(espeak, [*voices_to_check(config), *config.test_voices])
    with pytest.raises(SpeechSetError, match="use en\\+VARIANT"):
        check_voices(espeak, ["en-gb+f4"])  # espeak-ng 1.51 ignores en-gb's variants
    with pytest.raises(SpeechSetError, match="no variant 'nosuch'"):
        check_voices(espeak, ["en-us+nosuch"])
