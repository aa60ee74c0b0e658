"""The speech recipe on a tiny set spoken by the tone speaker (no espeak-ng): the run folder,
scores that agree with its transcripts, resuming, transcribing WAV files, bad audio, a
character language model fused into the beam search."""

import dataclasses
import json
import shutil

import chex
import jax
import numpy as np
import pytest
from scripts import load_script

from jaxllm.classic.char_ngram import CharLMError, fit_char_ngram, load_char_ngram
from jaxllm.data import (
    SPEECH_ALPHABET,
    AudioError,
    MelConfig,
    SpeechSetConfig,
    SpeechSetError,
    build_speech_set,
    load_speech_set,
    tone_speaker,
    write_wav,
)
from jaxllm.metrics import error_rates
from jaxllm.models.asr import AcousticConfig
from jaxllm.recipes.speech import (
    SpeechRunConfig,
    evaluate_speech_run,
    load_transcriber,
    lowest_logged_steps,
    scored_steps,
    train_speech_recognizer,
)
from jaxllm.recipes.speech_lm import LM_FILE, SpeechLMConfig, lm_sentences
from jaxllm.recipes.transcriber import TranscriptError
from jaxllm.train import CheckpointError, read_metrics

WORDS = "the cat sat on a mat and we all ran to see it go by now".split()
MEL = MelConfig(n_mels=32)


@pytest.fixture(scope="module")
def speech_set(tmp_path_factory):
    """A tiny set of 3-word sentences spoken as tones: two training voices, one held out."""
    folder = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    sentences = {" ".join(rng.choice(WORDS, 3)) + "." for _ in range(60)}
    (folder / "corpus.txt").write_text("\n".join(sorted(sentences)) + "\n")
    config = SpeechSetConfig(
        sentences=30, voices=("a", "b"), variants=(), test_voices=("c",), valid_fraction=0.2,
        test_fraction=0.2, train_repeats=2, eval_repeats=1, corpus=str(folder / "corpus.txt"),
        snr_db=(float("inf"), 20.0),
    )  # fmt: skip
    return build_speech_set(config, folder / "set", speak=tone_speaker, progress=False)


def tiny(tmp_path, speech_set, **overrides) -> SpeechRunConfig:
    settings = dict(
        name="speech", out_dir=str(tmp_path), data=str(speech_set), mel=MEL,
        model=AcousticConfig(n_mels=32, conv_channels=4, n_layer=1, width=32, dropout=0.0),
        batch_size=8, num_steps=12, eval_every=6, log_every=3, beam_size=3,
        eval_utterances=4, progress=False, compilation_cache="", lm=SpeechLMConfig(order=0),
    )  # fmt: skip
    return SpeechRunConfig(**(settings | overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, speech_set):
    out = tmp_path_factory.mktemp("runs")
    return train_speech_recognizer(tiny(out, speech_set)), out / "speech"


def test_the_run_folder_and_scores_that_agree_with_its_transcripts(trained, speech_set):
    run, folder = trained
    for name in ("config.json", "metrics.jsonl", "summary.json", "loss.png", "alignment.png",
                 "transcripts.tsv"):  # fmt: skip
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    rows = [line.split("\t") for line in (folder / "transcripts.tsv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    assert header == ["voice", "snr_db", "reference", "greedy", "beam"]
    test = load_speech_set(speech_set)["test"]
    assert [r[2] for r in rows] == [u.text for u in test]
    assert {r[0] for r in rows} == {"c"}  # the held-out voice only
    for kind, column in (("greedy", 3), ("beam", 4)):
        rates = error_rates([r[2] for r in rows], [r[column] for r in rows])
        assert summary[kind]["all"]["cer"] == pytest.approx(rates["cer"])
    assert set(summary["greedy"]) == {"all", "clean", "20 dB"}
    levels = summary["greedy"]["clean"]["utterances"] + summary["greedy"]["20 dB"]["utterances"]
    assert levels == len(test)


def test_a_wav_file_transcribes_as_the_run_scored_it(trained, speech_set, tmp_path):
    run, folder = trained
    transcriber = load_transcriber(folder)
    utterance = load_speech_set(speech_set)["test"][0]
    beam = (folder / "transcripts.tsv").read_text().splitlines()[1].split("\t")[4]
    assert transcriber.transcribe_file(utterance.path, beam_size=3) == beam
    # Stereo at 44.1 kHz: mixed down and resampled, then transcribed.
    audio = utterance.audio(44100)
    write_wav(tmp_path / "stereo.wav", np.stack([audio, audio], axis=1), 44100)
    assert isinstance(transcriber.transcribe_file(tmp_path / "stereo.wav"), str)


def test_evaluate_fuses_a_language_model_that_never_read_a_held_out_sentence(
    trained, speech_set, tmp_path, capsys
):
    folder = shutil.copytree(trained[1], tmp_path / "speech")
    script = load_script("experiments/speech.py")
    grid = ["--lm.order", "3", "--lm.weights", "1.0", "--lm.bonuses", "0.5", "2.0"]
    assert script.main(["evaluate", str(folder), *grid]) == 0, capsys.readouterr().err
    summary = json.loads((folder / "summary.json").read_text())
    splits = load_speech_set(speech_set)
    held_out = {u.text for split in ("valid", "test") for u in splits[split]}
    lm = summary["lm"]
    assert lm["corpus"] == str(speech_set.parent / "corpus.txt")  # the set's own corpus
    assert lm["held_out_removed"] == len(held_out) and lm["weight"] == 1.0
    assert [(p["weight"], p["bonus"]) for p in lm["grid"]] == [(1.0, 0.5), (1.0, 2.0)]
    lines = (folder / "transcripts.tsv").read_text().splitlines()
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    assert header == ["voice", "snr_db", "reference", "greedy", "beam", "beam_lm"]
    rates = error_rates([r[2] for r in rows], [r[5] for r in rows])
    assert summary["beam_lm"]["all"]["cer"] == pytest.approx(rates["cer"])
    kept, removed = lm_sentences(lm["corpus"], held_out, SPEECH_ALPHABET)
    assert removed == len(held_out) and not set(kept) & held_out and len(kept) == lm["sentences"]
    counted = load_char_ngram(folder / LM_FILE)  # counted on those sentences, and only them
    assert counted.counts == fit_char_ngram(kept, order=3, alphabet=counted.alphabet).counts
    transcriber = load_transcriber(folder)
    assert transcriber.fusion is not None and transcriber.fusion.bonus == lm["bonus"]
    wav = splits["test"][0].path
    assert transcriber.transcribe_file(wav, beam_size=3) == rows[0][5]
    assert transcriber.transcribe_file(wav, beam_size=3, use_lm=False) == rows[0][4]
    (folder / LM_FILE).unlink()
    with pytest.raises(CharLMError, match="is missing: run `speech.py evaluate`.*--no-lm"):
        load_transcriber(folder)


def test_evaluate_scores_a_run_without_a_summary_and_refuses_another_test_split(trained, tmp_path):
    run, original = trained
    folder = shutil.copytree(original, tmp_path / "speech")
    (folder / "summary.json").unlink()
    again = evaluate_speech_run(folder)  # the run's own settings: no language model
    assert again.best_step == run.best_step  # the lowest logged validation loss
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["beam"] == run.summary["beam"] and "beam_lm" not in summary
    summary["test_fingerprint"] = "another set"
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SpeechSetError, match="not the one .* was scored on"):
        evaluate_speech_run(folder)
    assert json.loads((folder / "summary.json").read_text()) == summary  # left as it was


def test_the_language_model_reads_no_sentence_that_holds_a_held_out_one(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "Am I king? Am I king of England? I am kingly. Whereof? Tam I kingdom. It's so.\n"
    )
    kept, removed = lm_sentences(str(corpus), ["am i king", "where"], " abcdefghijklmnopqrstuvwxyz")
    assert removed == 2  # "am i king" itself and "am i king of england"; "whereof" stays
    assert kept == ["i am kingly", "whereof", "tam i kingdom"]  # "it's so": no apostrophe


def test_bad_audio_gets_a_clear_error(trained, tmp_path):
    transcriber = load_transcriber(trained[1])
    write_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent audio"):
        transcriber.transcribe_file(tmp_path / "silent.wav")
    long = 0.1 * np.ones(int(16000 * (transcriber.max_seconds + 1)), np.float32)
    write_wav(tmp_path / "long.wav", long, 16000)
    with pytest.raises(AudioError, match="longer than the 20 s this model takes"):
        transcriber.transcribe_file(tmp_path / "long.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    with pytest.raises(AudioError, match="broken.wav"):
        transcriber.transcribe_file(tmp_path / "broken.wav")
    with pytest.raises(TypeError, match="list of utterances"):
        transcriber.transcribe(np.zeros(100, np.float32))


def test_the_script_transcribes_and_reports_bad_files(trained, tmp_path, capsys):
    script = load_script("experiments/speech.py")
    write_wav(tmp_path / "silent.wav", np.zeros(1600, np.float32), 16000)
    assert script.main(["transcribe", str(trained[1]), str(tmp_path / "silent.wav")]) == 2
    assert "silent audio" in capsys.readouterr().err


def last_record(folder):
    """The record of the last step in a run folder's metrics.jsonl (resumes appended)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return max(records, key=lambda r: r["step"])


def test_resume_equals_an_uninterrupted_run(tmp_path, speech_set):
    optimizer = dataclasses.replace(SpeechRunConfig().optimizer, warmup_steps=2, decay_steps=10)
    whole = train_speech_recognizer(tiny(tmp_path, speech_set, name="whole", optimizer=optimizer))
    first = tiny(tmp_path, speech_set, name="parts", num_steps=6, optimizer=optimizer)
    train_speech_recognizer(first)
    resumed = train_speech_recognizer(dataclasses.replace(first, num_steps=12, resume=True))
    assert resumed.best_step == whole.best_step
    chex.assert_trees_all_close(
        resumed.transcriber.params, whole.transcriber.params, rtol=1e-5, atol=1e-6
    )
    # The steps after the resume too: the last step's training and validation losses.
    last, reference = last_record(tmp_path / "parts"), last_record(tmp_path / "whole")
    assert last["step"] == reference["step"] == 12
    for name in ("loss", "val_loss", "val_cer"):
        assert last[name] == pytest.approx(reference[name], rel=1e-5)


def test_select_by_cer_scores_the_average_of_the_checkpoints_of_the_lowest_cer(
    tmp_path, speech_set
):
    config = tiny(tmp_path, speech_set, select_by="cer", average=2, num_steps=9, eval_every=3)
    run = train_speech_recognizer(config)
    records = [r for r in read_metrics(config.run_dir / "metrics.jsonl") if "val_cer" in r]
    lowest = sorted(records, key=lambda r: (r["val_cer"], r["step"]))[:2]
    assert run.summary["averaged_steps"] == [r["step"] for r in lowest] == run.steps
    assert run.best_step == lowest[0]["step"] and run.summary["select_by"] == "cer"
    first, second = (load_transcriber(config.run_dir, r["step"]).params for r in lowest)
    mean = jax.tree.map(lambda a, b: (np.float64(a) + b) / 2, first, second)
    chex.assert_trees_all_close(run.transcriber.params, mean, rtol=1e-6)
    chex.assert_trees_all_equal(load_transcriber(config.run_dir).params, run.transcriber.params)


def test_lowest_logged_steps_rank_the_asked_figure_among_kept_checkpoints(tmp_path):
    records = [
        {"step": 3, "val_loss": 2.0, "val_cer": 0.30},
        {"step": 5, "loss": 1.0},  # a training record: no validation figures
        {"step": 6, "val_loss": 1.0, "val_cer": 0.40},
        {"step": 9, "val_loss": 1.5, "val_cer": 0.10},  # its checkpoint is gone
        {"step": 12, "val_loss": 1.2, "val_cer": 0.30},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    kept = {3, 6, 12}
    assert lowest_logged_steps(tmp_path, kept, "loss") == [6, 12, 3]
    assert lowest_logged_steps(tmp_path, kept, "cer") == [3, 12, 6]  # 0.30 at 3 and 12
    assert lowest_logged_steps(tmp_path, {15, 12, 18}, "cer") == [12, 18, 15]  # unlogged: newest
    config = SpeechRunConfig(out_dir=str(tmp_path.parent), name=tmp_path.name, select_by="cer")
    assert scored_steps(config, kept) == [3]
    assert scored_steps(dataclasses.replace(config, average=2), kept) == [3, 12]
    assert scored_steps(dataclasses.replace(config, average=5), kept, best=6) == [6, 3, 12]


def test_resume_refuses_other_training_utterances(tmp_path, speech_set):
    config = tiny(tmp_path, speech_set, num_steps=3, eval_every=3)
    train_speech_recognizer(config)
    utterances = load_speech_set(speech_set)
    utterances["train"] = utterances["train"][1:]
    with pytest.raises(CheckpointError, match="training utterances differ"):
        train_speech_recognizer(dataclasses.replace(config, num_steps=6, resume=True), utterances)


def test_transcripts_outside_the_alphabet_are_refused(tmp_path, speech_set):
    config = tiny(tmp_path, speech_set, alphabet=" abcdefghijklmnopqrstuvwxyz")  # no apostrophe
    utterances = load_speech_set(speech_set)
    bad = dataclasses.replace(utterances["train"][0], text="it's")
    utterances["train"] = [bad, *utterances["train"][1:]]
    with pytest.raises(TranscriptError, match=r"outside the alphabet"):
        train_speech_recognizer(config, utterances)


def test_settings_that_cannot_work_are_refused():
    from jaxllm.config import ConfigError

    with pytest.raises(ConfigError, match="model.n_mels"):
        SpeechRunConfig(mel=MelConfig(n_mels=40))
    with pytest.raises(ConfigError, match="max_seconds"):
        SpeechRunConfig(max_seconds=0)
    with pytest.raises(ValueError, match="distinct"):
        SpeechRunConfig(alphabet="aab")
    with pytest.raises(ConfigError, match="--beam-size 2 or more, or --lm.order 0"):
        SpeechRunConfig(beam_size=1)
    with pytest.raises(ConfigError, match="order must be >= 0"):
        SpeechLMConfig(order=-1)
