"""The translation recipe and its command line on a tiny parallel corpus: the run folder's
files, a loaded run translating as the trained one, resume equal to an uninterrupted run, and
clear errors for bad sentences, files and run folders."""

import dataclasses
import io
import json
import random

import chex
import pytest
from scripts import load_script

from jaxllm.data import write_parallel_tsv
from jaxllm.models.lstm_seq2seq import LSTMSeq2SeqConfig
from jaxllm.models.seq2seq import Seq2SeqConfig
from jaxllm.recipes.translate import TranslateConfig, load_translator, train_translator
from jaxllm.recipes.translator import SourceTooLongError, TranslationInputError, corpus_scores
from jaxllm.train import LoopConfig
from jaxllm.train.parallel import ParallelConfig

# Models trained for a few steps often write until the length cap, and say so.
pytestmark = pytest.mark.filterwarnings("ignore:.*reached the length cap unfinished")

ENGLISH = "zero one two three four five six seven eight nine".split()
SPANISH = "cero uno dos tres cuatro cinco seis siete ocho nueve".split()


def toy_pairs(n: int = 160, seed: int = 0) -> list[tuple[str, str]]:
    """Digits spelt out in English and in Spanish."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(1, 4))]
        pairs.append((" ".join(ENGLISH[d] for d in digits), " ".join(SPANISH[d] for d in digits)))
    return pairs


def tiny_config(tmp_path, kind="transformer", name="run", steps=8) -> TranslateConfig:
    data = tmp_path / "pairs.tsv"
    if not data.exists():
        write_parallel_tsv(data, toy_pairs())
    return TranslateConfig(
        name=name, out_dir=str(tmp_path / "runs"), data=str(data), vocab_size=280,
        model_kind=kind, valid_fraction=0.1, test_fraction=0.1,
        transformer=Seq2SeqConfig(max_len=24, n_encoder_layer=1, n_decoder_layer=1, n_head=2,
                                  n_embd=16, dropout=0.1),
        lstm=LSTMSeq2SeqConfig(max_len=24, n_embd=8, hidden_size=16, n_layer=1, dropout=0.1),
        batch_size=16, test_sentences=6, compilation_cache="",
        loop=LoopConfig(num_steps=steps, log_every=4, eval_every=4, progress=False),
    )  # fmt: skip


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def trained(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(request.param)
    return train_translator(tiny_config(tmp_path, request.param))


def test_a_run_writes_its_folder_and_scores(trained):
    files = {p.name for p in trained.run_dir.iterdir()}
    assert {"config.json", "tokenizer.json", "metrics.jsonl", "loss.png", "checkpoints",
            "summary.json", "translations.tsv", "attention.png"} <= files  # fmt: skip
    summary = json.loads((trained.run_dir / "summary.json").read_text())
    assert summary["step"] == 8 and summary["test_sentences"] == 6
    for search in ("greedy", "beam4"):
        assert 0.0 <= summary[search]["bleu"] <= 100.0 and summary[search]["chrf"] >= 0.0
    rows = (trained.run_dir / "translations.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "source\treference\tgreedy\tbeam" and len(rows) == 7
    columns = list(zip(*(row.split("\t") for row in rows[1:]), strict=True))
    # the recorded scores are those of the written outputs against the written references
    for search, outputs in (("greedy", columns[2]), ("beam4", columns[3])):
        written = corpus_scores(list(outputs), list(columns[1]))
        assert summary[search]["bleu"] == pytest.approx(written["bleu"], abs=1e-6)
    assert len(summary["test_fingerprint"]) == 32


def test_a_loaded_run_translates_as_the_trained_one(trained):
    loaded = load_translator(trained.run_dir)
    chex.assert_trees_all_close(loaded.params, trained.translator.params)
    texts = ["one two", "nine", "three three seven", "four", "five six seven eight"]
    for beams in (1, 3):
        together = loaded.translate(texts, beam_size=beams, batch_size=32)
        assert together == [loaded.translate([t], beam_size=beams)[0] for t in texts]
        assert loaded.translate(texts, beam_size=beams, batch_size=2) == together


def test_text_the_vocabulary_never_saw_still_translates(trained):
    texts = ["ὁ λόγος", "太初有道", "one 🙂 two"]
    outputs = trained.translator.translate(texts, beam_size=2)
    assert len(outputs) == 3 and all(isinstance(out, str) for out in outputs)
    tokenizer = trained.translator.tokenizer
    assert all(tokenizer.decode(tokenizer.encode(t)) == t for t in texts)  # byte-level


def test_bad_sentences_get_clear_errors(trained):
    translator = trained.translator
    with pytest.raises(TranslationInputError, match="sentence 2 is empty"):
        translator.translate(["one", "  ", "two"])
    long = " ".join(["seven"] * 40)
    with pytest.raises(SourceTooLongError, match="sentence 1 has .* tokens, more than"):
        translator.translate([long])
    with pytest.warns(UserWarning, match="1 sentence\\(s\\) cut to 24 tokens"):
        assert len(translator.translate([long, "one"], truncate=True)) == 2
    with pytest.raises(TypeError, match="got one string; write \\[text\\]"):
        translator.translate("one two")
    with pytest.raises(TranslationInputError, match="batch_size must be >= 1"):
        translator.translate(["one"], batch_size=0)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole = train_translator(tiny_config(tmp_path, name="whole", steps=8))
    first = tiny_config(tmp_path, name="parts", steps=8)
    train_translator(dataclasses.replace(first, loop=dataclasses.replace(first.loop, num_steps=4)))
    resumed = train_translator(dataclasses.replace(first, resume=True))
    chex.assert_trees_all_close(resumed.translator.params, whole.translator.params, atol=1e-6)


def test_the_command_line_translates_evaluates_and_reports_errors(trained, monkeypatch, capsys):
    script = load_script("experiments/translate.py")
    monkeypatch.setattr("sys.stdin", io.StringIO("one two\nnine\n"))
    assert script.main(["translate", str(trained.run_dir), "--beam-size", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert script.main(["evaluate", str(trained.run_dir), "--test-sentences", "3"]) == 0
    scores = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert scores["test_sentences"] == 3 and "bleu" in scores["beam4"]
    monkeypatch.setattr("sys.stdin", io.StringIO("one\n\n"))
    assert script.main(["translate", str(trained.run_dir)]) == 2
    assert "sentence 2 is empty" in capsys.readouterr().err
    assert script.main(["frobnicate"]) == 2


def test_a_folder_of_another_kind_is_refused(tmp_path, capsys):
    other = tmp_path / "lm-run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"name": "lm", "model": {"n_layer": 2}}))
    script = load_script("experiments/translate.py")
    assert script.main(["translate", str(other)]) == 2
    assert "is not a translation run" in capsys.readouterr().err
    assert script.main(["translate", str(tmp_path / "nowhere")]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_a_malformed_pairs_file_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\tuno\ntwo dos\n", encoding="utf-8")
    script = load_script("experiments/translate.py")
    args = ["train", "--data", str(bad), "--out-dir", str(tmp_path), "--compilation-cache", ""]
    assert script.main(args) == 2
    assert "line 2 has 0 tabs" in capsys.readouterr().err


def test_corpus_scores_range_from_nothing_to_everything_in_common():
    references = ["el gato se sentó en la alfombra", "hola a todos"]
    assert corpus_scores(references, references) == pytest.approx({"bleu": 100.0, "chrf": 100.0})
    none = corpus_scores(["xyz qqq", "zzz"], references)
    assert none["bleu"] == pytest.approx(0.0) and none["chrf"] < 10.0
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        corpus_scores(references, references[:1])


@pytest.mark.multidevice
def test_parallel_layouts_train_the_same_translator(tmp_path):
    """pmap with gradient accumulation and a data x fsdp mesh give one device's parameters."""
    base = tiny_config(tmp_path, name="one", steps=4)
    base = dataclasses.replace(base, transformer=dataclasses.replace(base.transformer, dropout=0.0))
    one = train_translator(base)
    for name, parallel in (
        ("pmap", ParallelConfig(mode="pmap", devices=4, microbatches=2)),
        ("mesh", ParallelConfig(mode="mesh", data=4, fsdp=2)),
    ):
        run = train_translator(dataclasses.replace(base, name=name, parallel=parallel))
        chex.assert_trees_all_close(
            run.translator.params, one.translator.params, atol=1e-5, rtol=1e-5
        )
