"""BERT pre-training: masked batches as a function of (seed, step), the masked-word loss, and
the recipe end to end (learning, resume, parallel layouts, loading a run back)."""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxllm.config import ConfigError
from jaxllm.data import (
    DataConfig,
    WordPieceTokenizer,
    clean_corpus,
    encode_corpus,
    load_default_corpus,
    mlm_batch,
    mlm_eval_batches,
)
from jaxllm.losses import masked_language_model_loss
from jaxllm.models.bert import BERT, BertConfig, init_bert_params
from jaxllm.optim import OptimizerConfig
from jaxllm.recipes.mlm import MLMConfig, fill_mask, load_mlm_run, train_mlm
from jaxllm.train import LoopConfig, ParallelConfig, read_metrics

TINY = BertConfig(max_len=32, n_layer=1, n_head=2, n_embd=32, pooler=False, dropout=0.1)
DATA = DataConfig(tokenizer="wordpiece", wordpiece_vocab_size=500)


@pytest.fixture(scope="module")
def corpus():
    docs = clean_corpus(load_default_corpus())[:200]
    tokenizer = WordPieceTokenizer.train(docs, vocab_size=500)
    return tokenizer, encode_corpus(tokenizer, docs)


def test_batch_is_a_pure_function_of_seed_and_step_split_over_processes(corpus):
    tokenizer, stream = corpus
    kw = dict(seed=3, step=7, batch_size=8, seq_len=20)
    whole = mlm_batch(stream, tokenizer, **kw)
    again = mlm_batch(stream, tokenizer, **kw)
    parts = [mlm_batch(stream, tokenizer, **kw, process_index=p, process_count=4) for p in range(4)]
    for name in ("inputs", "targets", "weights", "attention_mask", "positions"):
        np.testing.assert_array_equal(whole[name], again[name])
        np.testing.assert_array_equal(whole[name], np.concatenate([p[name] for p in parts]))
    other = mlm_batch(stream, tokenizer, **(kw | {"step": 8}))
    assert not np.array_equal(whole["inputs"], other["inputs"])
    targets = whole["targets"]
    assert whole["inputs"].shape == (8, 20) and whole["attention_mask"].all()
    assert (targets[:, 0] == tokenizer.cls_id).all() and (targets[:, -1] == tokenizer.sep_id).all()
    chosen = whole["weights"] > 0
    assert not np.isin(targets[chosen], tokenizer.special_ids).any()
    assert np.array_equal(whole["inputs"][~chosen], targets[~chosen])


def test_15_percent_of_each_sequences_ordinary_tokens_are_chosen(corpus):
    tokenizer, stream = corpus
    batch = mlm_batch(stream, tokenizer, seed=0, step=0, batch_size=64, seq_len=32)
    ordinary = ~np.isin(batch["targets"], tokenizer.special_ids)
    expected = np.maximum(np.round(0.15 * ordinary.sum(axis=1)), 1)
    np.testing.assert_array_equal(batch["weights"].sum(axis=1), expected)


def test_eval_batches_cover_the_stream_once_with_the_same_masks(corpus):
    tokenizer, stream = corpus
    kw = dict(seed=0, batch_size=16, seq_len=20)
    first = list(mlm_eval_batches(stream, tokenizer, **kw))
    second = list(mlm_eval_batches(stream, tokenizer, **kw))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
    body = [
        row[1 : mask.sum() - 1]
        for batch in first
        for row, mask in zip(batch["targets"], batch["attention_mask"], strict=True)
        if mask.sum() > 2
    ]
    np.testing.assert_array_equal(np.concatenate(body), stream)
    assert len(list(mlm_eval_batches(stream, tokenizer, **kw, max_batches=2))) == 2


def test_loss_is_the_cross_entropy_of_the_chosen_tokens(corpus):
    tokenizer, stream = corpus
    config = dataclasses.replace(TINY, vocab_size=tokenizer.vocab_size, dropout=0.0)
    model = BERT(config)
    params = init_bert_params(config, jax.random.key(0))
    batch = mlm_batch(stream, tokenizer, seed=0, step=0, batch_size=4, seq_len=16)
    loss, metrics = masked_language_model_loss(model)(params, batch, None)
    logits = np.asarray(model.apply({"params": params}, batch["inputs"], method=BERT.mlm_logits))
    logits = logits.astype(np.float64)
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))[..., None]
        - logits.max(-1, keepdims=True)
    )
    picked = np.take_along_axis(log_probs, batch["targets"][..., None], -1)[..., 0]
    chosen = batch["weights"] > 0
    np.testing.assert_allclose(float(loss), -picked[chosen].mean(), rtol=1e-5)
    # the head at the chosen positions only (the batch's "positions") or at every position
    assert batch["positions"].shape == (4, 4)
    full = {k: v for k, v in batch.items() if k != "positions"}
    loss_everywhere, metrics_everywhere = masked_language_model_loss(model)(params, full, None)
    np.testing.assert_allclose(float(loss_everywhere), float(loss), rtol=1e-6)
    assert float(metrics_everywhere["tokens"]) == float(metrics["tokens"]) == chosen.sum()
    assert float(metrics["tokens"]) == chosen.sum()


def tiny_config(tmp_path, *, steps=8, **kw):
    loop = LoopConfig(num_steps=steps, eval_every=4, log_every=2, progress=False)
    base = dict(
        name="run",
        out_dir=str(tmp_path),
        batch_size=8,
        seq_len=24,
        eval_batches=4,
        data=DATA,
        model=TINY,
        optimizer=OptimizerConfig(
            learning_rate=5e-3, warmup_steps=2, decay_steps=20, weight_decay=0.01
        ),
        loop=loop,
    )
    return MLMConfig(**(base | kw))


def test_pretraining_learns_and_resumes_as_if_uninterrupted(tmp_path):
    full = train_mlm(tiny_config(tmp_path, name="full", steps=16))
    assert full.after["loss"] < full.before["loss"] - 0.4, (full.before, full.after)
    for name in ("config.json", "tokenizer.json", "hf_tokenizer.json", "loss.png", "summary.json"):
        assert (full.run_dir / name).is_file(), name
    saved = json.loads((full.run_dir / "config.json").read_text())
    assert saved["model"]["vocab_size"] == full.tokenizer.vocab_size

    train_mlm(tiny_config(tmp_path, name="split", steps=8))
    resumed = train_mlm(tiny_config(tmp_path, name="split", steps=16, resume=True))
    chex.assert_trees_all_close(resumed.state.params, full.state.params, atol=1e-6, rtol=1e-6)
    records = lambda run: read_metrics(run.run_dir / "metrics.jsonl")  # noqa: E731
    assert [r["loss"] for r in records(resumed)] == pytest.approx(
        [r["loss"] for r in records(full)], rel=1e-6
    )

    config, tokenizer, params = load_mlm_run(full.run_dir)
    assert config == full.config and tokenizer.fingerprint() == full.tokenizer.fingerprint()
    chex.assert_trees_all_close(params, jax.device_get(full.state.params))
    guesses = fill_mask(full.model, params, tokenizer, "the [MASK] is [MASK].", top_k=3)
    assert len(guesses) == 2 and all(len(g) == 3 for g in guesses)
    assert all(0 <= p <= 1 for g in guesses for _, p in g)
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        fill_mask(full.model, params, tokenizer, "nothing to guess")


@pytest.mark.multidevice
def test_parallel_layouts_train_the_same_bert(tmp_path):
    """pmap with gradient accumulation and a data x fsdp mesh give one device's parameters:
    the loss is the mean over the whole batch's chosen tokens however the batch is split."""
    model = dataclasses.replace(TINY, dropout=0.0)
    one = train_mlm(tiny_config(tmp_path, name="one", model=model))
    for name, parallel in (
        ("pmap", ParallelConfig(mode="pmap", devices=4, microbatches=2)),
        ("mesh", ParallelConfig(mode="mesh", data=4, fsdp=2)),
    ):
        run = train_mlm(tiny_config(tmp_path, name=name, model=model, parallel=parallel))
        chex.assert_trees_all_close(run.state.params, one.state.params, atol=1e-5, rtol=1e-5)


def test_bfloat16_pretraining_runs_and_learns(tmp_path):
    model = dataclasses.replace(TINY, dtype="bfloat16")
    run = train_mlm(tiny_config(tmp_path, steps=12, model=model))
    assert run.after["loss"] < run.before["loss"] - 0.3
    assert jax.tree.leaves(run.state.params)[0].dtype == jnp.float32


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="'wordpiece'"):
        tiny_config(tmp_path, data=DataConfig(tokenizer="bpe"))
    with pytest.raises(ConfigError, match="seq_len must be in"):
        tiny_config(tmp_path, seq_len=64)
    with pytest.raises(ConfigError, match="MLM head"):
        tiny_config(tmp_path, model=dataclasses.replace(TINY, mlm_head=False))
    with pytest.raises(ConfigError, match="model.vocab_size=7"):
        train_mlm(tiny_config(tmp_path, model=dataclasses.replace(TINY, vocab_size=7)))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_mlm_run(tmp_path / "nothing")


def test_pretraining_on_token_files_equals_pretraining_in_memory(tmp_path):
    from jaxllm.data import load_default_corpus

    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(load_default_corpus())[:60_000], encoding="utf-8")
    data = dataclasses.replace(DATA, corpus=str(text))
    memory = train_mlm(tiny_config(tmp_path, name="memory", data=data, steps=2))
    mapped = train_mlm(
        tiny_config(tmp_path, name="mapped", data=data, steps=2, token_cache=str(tmp_path / "t"))
    )
    assert (mapped.before, mapped.after, mapped.test) == (memory.before, memory.after, memory.test)
    assert mapped.tokenizer.fingerprint() == memory.tokenizer.fingerprint()
