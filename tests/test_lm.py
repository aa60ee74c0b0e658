"""The language-model recipe end to end on real text: learning, resume, clear errors."""

import dataclasses
import json

import chex
import jax
import pytest

from jaxllm.compress import DistillationError, DistillConfig
from jaxllm.config import ConfigError
from jaxllm.data import DataConfig, EmptyCorpusError, EmptySplitError, train_tokenizer
from jaxllm.models import LSTMLM, GPTConfig, LSTMLMConfig
from jaxllm.optim import OptimizerConfig
from jaxllm.recipes import LMConfig, train_lm
from jaxllm.train import CheckpointError, LoopConfig, ParallelConfig, read_metrics

TINY = GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=32, dropout=0.1)
TINY_LSTM = LSTMLMConfig(block_size=24, n_layer=1, n_embd=32, dropout=0.1, embedding_dropout=0.1)


def tiny_config(tmp_path, *, steps=8, eval_every=4, log_every=2, **kw):
    loop = LoopConfig(num_steps=steps, eval_every=eval_every, log_every=log_every, progress=False)
    base = dict(
        name="run",
        out_dir=str(tmp_path),
        batch_size=8,
        eval_batches=2,
        sample_tokens=0,
        model=TINY,
        optimizer=OptimizerConfig(learning_rate=3e-3, warmup_steps=2),
        loop=loop,
    )
    return LMConfig(**(base | kw))


def test_training_reduces_validation_loss_on_real_text(tmp_path):
    config = tiny_config(
        tmp_path,
        steps=200,
        batch_size=16,
        eval_every=100,
        eval_batches=8,
        log_every=20,
        sample_tokens=20,
        model=GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64),
        optimizer=OptimizerConfig(learning_rate=3e-3, warmup_steps=20, decay_steps=-1),
    )
    run = train_lm(config)
    assert run.before["loss"] > 4.0  # ~log(vocab) at initialisation
    assert run.after["loss"] < 0.62 * run.before["loss"], (run.before, run.after)
    assert run.after["ppl"] < 16
    records = read_metrics(run.run_dir / "metrics.jsonl")
    assert records[-1]["step"] == 200 and "val_loss" in records[-1]
    assert (run.run_dir / "loss.png").stat().st_size > 10_000
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert (
        saved["model"]["vocab_size"] == run.tokenizer.vocab_size
        and saved["optimizer"]["decay_steps"] == 180
    )
    assert len(run.sample) > 0 and (run.run_dir / "sample.txt").exists()


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    full = train_lm(tiny_config(tmp_path, name="full", steps=8))
    train_lm(tiny_config(tmp_path, name="split", steps=4))
    resumed = train_lm(tiny_config(tmp_path, name="split", steps=8, resume=True))
    chex.assert_trees_all_close(resumed.state.params, full.state.params, atol=1e-6, rtol=1e-6)
    records = lambda run: read_metrics(run.run_dir / "metrics.jsonl")  # noqa: E731
    assert [r["step"] for r in records(resumed)] == [r["step"] for r in records(full)]
    assert [r["loss"] for r in records(resumed)] == pytest.approx(
        [r["loss"] for r in records(full)], rel=1e-6
    )


def test_lstm_run_learns_and_resumes_as_if_uninterrupted(tmp_path):
    """``model_kind="lstm"``: the same recipe trains an LSTM on sequences of its block size,
    samples from it and resumes it exactly; the GPT's settings are left as given."""
    lstm = dict(model_kind="lstm", lstm=TINY_LSTM, steps=12)
    full = train_lm(tiny_config(tmp_path, name="full", sample_tokens=10, **lstm))
    assert isinstance(full.model, LSTMLM)
    assert full.after["loss"] < full.before["loss"] - 0.3, (full.before, full.after)
    assert len(full.sample) > 0 and (full.run_dir / "sample.txt").exists()
    saved = json.loads((full.run_dir / "config.json").read_text())
    assert saved["model_kind"] == "lstm" and saved["model"] == dataclasses.asdict(TINY)
    assert saved["lstm"]["vocab_size"] == full.tokenizer.vocab_size

    train_lm(tiny_config(tmp_path, name="split", **(lstm | {"steps": 6})))
    resumed = train_lm(tiny_config(tmp_path, name="split", resume=True, **lstm))
    chex.assert_trees_all_close(resumed.state.params, full.state.params, atol=1e-6, rtol=1e-6)
    records = lambda run: read_metrics(run.run_dir / "metrics.jsonl")  # noqa: E731
    assert [r["step"] for r in records(resumed)] == [r["step"] for r in records(full)]
    assert [r["loss"] for r in records(resumed)] == pytest.approx(
        [r["loss"] for r in records(full)], rel=1e-6
    )
    with pytest.raises(ConfigError, match="model_kind: saved 'lstm' vs given 'gpt'"):
        train_lm(tiny_config(tmp_path, name="split", steps=14, resume=True, lstm=TINY_LSTM))


@pytest.mark.multidevice
def test_run_resumed_under_another_layout_equals_uninterrupted_run(tmp_path):
    """Half the steps on a 4 × 2 mesh, the rest data-parallel with gradient accumulation: the
    same parameters as one device all along (no dropout, whose masks differ per device)."""
    model = dataclasses.replace(TINY, dropout=0.0)
    full = train_lm(tiny_config(tmp_path, name="full", steps=8, model=model))
    mesh = ParallelConfig(mode="mesh", data=4, fsdp=2)
    pmap = ParallelConfig(mode="pmap", devices=4, microbatches=2)
    train_lm(tiny_config(tmp_path, name="split", steps=4, model=model, parallel=mesh))
    resumed = train_lm(
        tiny_config(tmp_path, name="split", steps=8, model=model, resume=True, parallel=pmap)
    )
    chex.assert_trees_all_close(resumed.state.params, full.state.params, atol=1e-5, rtol=1e-5)
    assert resumed.after["loss"] == pytest.approx(full.after["loss"], abs=1e-5)


@pytest.mark.parametrize(
    "tuned, attention, row_groups", [(True, "cpu_blocked", 2), (False, "jax", 1)]
)
def test_attention_is_chosen_for_the_cpu_unless_told_not_to(tmp_path, tuned, attention, row_groups):
    assert jax.device_count() == 1 and jax.default_backend() == "cpu"  # how make test runs this
    run = train_lm(tiny_config(tmp_path, steps=2, cpu_tuned_attention=tuned))
    saved = json.loads((run.run_dir / "config.json").read_text())["model"]
    assert (saved["attention"], saved["attention_row_groups"]) == (attention, row_groups)
    assert (run.model.config.attention, run.model.config.attention_row_groups) == (
        attention,
        row_groups,
    )
    resumed = train_lm(tiny_config(tmp_path, steps=4, resume=True, cpu_tuned_attention=tuned))
    assert resumed.model.config.attention == attention and int(resumed.state.step) == 4
    # The choice can change on resume: the other setting gives the other implementation.
    switched = train_lm(tiny_config(tmp_path, steps=6, resume=True, cpu_tuned_attention=not tuned))
    assert switched.model.config.attention != attention and int(switched.state.step) == 6


def test_existing_run_is_never_overwritten(tmp_path):
    train_lm(tiny_config(tmp_path, steps=2))
    with pytest.raises(FileExistsError, match="--resume"):
        train_lm(tiny_config(tmp_path, steps=2))


def test_resume_with_other_model_settings_is_refused(tmp_path):
    train_lm(tiny_config(tmp_path, steps=2))
    other = dataclasses.replace(TINY, n_embd=64)
    with pytest.raises(ConfigError, match="model.n_embd: saved 32 vs given 64"):
        train_lm(tiny_config(tmp_path, steps=4, resume=True, model=other))


def test_tokenizer_that_does_not_match_the_checkpoint_is_refused(tmp_path):
    run = train_lm(tiny_config(tmp_path, steps=2))
    train_tokenizer("char", ["a different alphabet entirely\n"]).save(
        run.run_dir / "tokenizer.json"
    )
    with pytest.raises(
        CheckpointError, match="does not match the one the checkpoint was trained with"
    ):
        train_lm(tiny_config(tmp_path, steps=4, resume=True))


def test_unknown_config_key_in_a_saved_config_is_refused(tmp_path):
    run = train_lm(tiny_config(tmp_path, steps=2))
    path = run.run_dir / "config.json"
    saved = json.loads(path.read_text())
    saved["model"]["n_layers"] = 3
    path.write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['n_layers'\]"):
        train_lm(tiny_config(tmp_path, steps=4, resume=True))


def test_missing_and_empty_corpora(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_corpus"):
        train_lm(
            tiny_config(tmp_path, data=DataConfig(corpus=str(tmp_path / "no_such_corpus.txt")))
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("  \n\n ")
    with pytest.raises(EmptyCorpusError):
        train_lm(tiny_config(tmp_path, data=DataConfig(corpus=str(empty))))


def test_a_split_left_empty_is_named(tmp_path):
    with pytest.raises(EmptySplitError, match="the validation split of corpus 'pydoc' is empty"):
        train_lm(tiny_config(tmp_path, data=DataConfig(val_fraction=0.0)))
    assert not (tmp_path / "run" / "config.json").exists()


def test_resume_without_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        train_lm(tiny_config(tmp_path, resume=True))


@pytest.mark.slow
def test_default_run_learns_english_shaped_text(tmp_path):
    """The `make demo` run (the recipe's defaults, ~2 min): validation loss below 2.0 nats/char
    (uniform over the alphabet is ~4.6)."""
    defaults = LMConfig()
    run = train_lm(
        LMConfig(
            out_dir=str(tmp_path),
            sample_tokens=50,
            loop=dataclasses.replace(defaults.loop, progress=False),
        )
    )
    assert run.before["loss"] > 4.5
    assert run.after["loss"] < 2.0, run.after
    assert run.test["loss"] < 2.4, run.test


def test_a_tokenizer_with_a_lone_surrogate_saves_and_loads_without_a_partial_file(tmp_path):
    from jaxllm.data import load_tokenizer

    tokenizer = train_tokenizer("char", ["ab\ud800c"])
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert loaded.decode(loaded.encode("a\ud800")) == "a\ud800"
    assert loaded.fingerprint() == tokenizer.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json"]


def corpus_file(tmp_path, characters: int = 120_000):
    """A one-file corpus: the default corpus's text, joined."""
    from jaxllm.data import load_default_corpus

    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(load_default_corpus())[:characters], encoding="utf-8")
    return path


def test_a_run_on_token_files_equals_the_same_run_in_memory_and_resumes(tmp_path):
    data = DataConfig(corpus=str(corpus_file(tmp_path)))
    cache = tmp_path / "tokens"
    in_memory = train_lm(tiny_config(tmp_path, name="memory", data=data))
    mapped = train_lm(tiny_config(tmp_path, name="mapped", data=data, token_cache=str(cache)))
    assert (mapped.before, mapped.after, mapped.test) == (
        in_memory.before,
        in_memory.after,
        in_memory.test,
    )
    chex.assert_trees_all_equal(mapped.state.params, in_memory.state.params)
    made = {path: path.stat().st_mtime_ns for path in cache.rglob("*.bin")}
    assert len(made) == 3
    split = train_lm(
        tiny_config(tmp_path, name="split", data=data, token_cache=str(cache), steps=4)
    )
    resumed = train_lm(tiny_config(tmp_path, name="split", data=data, steps=8, resume=True))
    chex.assert_trees_all_close(resumed.state.params, mapped.state.params, atol=1e-6, rtol=1e-6)
    assert split.tokenizer.fingerprint() == in_memory.tokenizer.fingerprint()
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("*.bin")} == made  # reused


def test_token_files_of_another_text_are_refused_on_resume(tmp_path):
    text = corpus_file(tmp_path)
    config = tiny_config(
        tmp_path, data=DataConfig(corpus=str(text)), token_cache=str(tmp_path / "t")
    )
    train_lm(dataclasses.replace(config, loop=dataclasses.replace(config.loop, num_steps=2)))
    text.write_text(text.read_text().replace("the", "teh"))  # the same alphabet, other text
    with pytest.raises(CheckpointError, match="the corpus differs from the one the checkpoints"):
        train_lm(dataclasses.replace(config, resume=True))
    with pytest.raises(ConfigError, match="token files are made from a corpus of one text file"):
        train_lm(tiny_config(tmp_path, name="named", token_cache=str(tmp_path / "t")))


def test_a_student_distils_from_a_teacher_run_and_alpha_zero_is_training_alone(tmp_path):
    teacher = train_lm(tiny_config(tmp_path, name="teacher", steps=6, eval_every=6))
    small = GPTConfig(block_size=32, n_layer=1, n_head=1, n_embd=16)
    alone = train_lm(tiny_config(tmp_path, name="alone", model=small))
    hard_only = train_lm(
        tiny_config(
            tmp_path, name="hard", model=small, teacher=str(teacher.run_dir),
            distill=DistillConfig(temperature=2.0, alpha=0.0),
        )
    )  # fmt: skip
    chex.assert_trees_all_close(hard_only.state.params, alone.state.params, rtol=1e-5, atol=1e-6)
    taught = train_lm(
        tiny_config(tmp_path, name="taught", model=small, teacher=str(teacher.run_dir))
    )
    records = read_metrics(taught.run_dir / "metrics.jsonl")
    assert all(r["soft_loss"] > 0 for r in records if "soft_loss" in r)
    assert any("soft_loss" in r for r in records)
    assert taught.after["loss"] != alone.after["loss"]


def test_a_teacher_with_another_tokenizer_is_refused_before_training(tmp_path):
    teacher = train_lm(tiny_config(tmp_path, name="teacher", steps=2, eval_every=2))
    other = DataConfig(tokenizer="bpe", bpe_vocab_size=300)
    with pytest.raises(DistillationError, match="trained with another tokenizer"):
        train_lm(tiny_config(tmp_path, name="student", data=other, teacher=str(teacher.run_dir)))
    assert not (tmp_path / "student" / "metrics.jsonl").exists()
    short = GPTConfig(block_size=64, n_layer=1, n_head=1, n_embd=16)
    with pytest.raises(DistillationError, match="reads 32 tokens at most"):
        train_lm(tiny_config(tmp_path, name="long", model=short, teacher=str(teacher.run_dir)))
    with pytest.raises(ConfigError, match="label_smoothing does not apply with a teacher"):
        tiny_config(tmp_path, teacher=str(teacher.run_dir), label_smoothing=0.1)
