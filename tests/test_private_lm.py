"""Language models and privacy: DP-SGD in the LM recipe (Poisson-sampled windows), and the
exposure of canaries a model may have memorised."""

import dataclasses
import json
import math
import string

import chex
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lm import TINY, tiny_config

from jaxllm.config import ConfigError
from jaxllm.data import train_tokenizer
from jaxllm.models import GPT, LSTMLM, GPTConfig, LSTMLMConfig, init_lstm_lm_params, init_params
from jaxllm.privacy import PoissonWindows, PrivacySettings
from jaxllm.privacy.canaries import (
    Canary,
    canary_exposure,
    exposure,
    insert_canaries,
    make_canaries,
    secret_log_probs,
)
from jaxllm.recipes import train_lm
from jaxllm.train import ParallelConfig, read_metrics


def test_poisson_windows_are_disjoint_shifted_and_drawn_at_the_rate():
    tokens = np.arange(10_000, dtype=np.int32)
    batches = PoissonWindows(tokens, seq_len=9, rate=0.1, seed=3)
    assert batches.windows == 1_000
    sizes = []
    for step in range(20):
        batch = batches(step)
        present = batch["example_weights"] == 1
        sizes.append(int(present.sum()))
        assert len(present) % 16 == 0 and not present[sizes[-1] :].any()  # padding at the end
        starts = batch["inputs"][present, 0]
        assert np.all(starts % 10 == 0) and len(set(starts)) == len(starts)  # whole windows
        np.testing.assert_array_equal(batch["targets"], batch["inputs"] + 1)
        np.testing.assert_array_equal(batch["inputs"], batches(step)["inputs"])  # pure in step
    assert np.mean(sizes) == pytest.approx(100, rel=0.15)


def test_each_process_gets_its_rows_of_the_global_draw():
    tokens = np.arange(5_000, dtype=np.int32)
    whole = PoissonWindows(tokens, 7, 0.05, seed=1, multiple=16)(4)
    parts = [PoissonWindows(tokens, 7, 0.05, seed=1, multiple=16, process_index=p,
                            process_count=4)(4) for p in range(4)]  # fmt: skip
    for name in whole:
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name])
    with pytest.raises(ValueError, match="fewer than one window"):
        PoissonWindows(tokens[:5], 7, 0.5, seed=0)


def private(**kw):
    return PrivacySettings(**({"target_epsilon": 4.0} | kw))


def test_a_private_lm_run_keeps_its_epsilon_and_its_noise_on_resume(tmp_path):
    full = train_lm(tiny_config(tmp_path, name="full", steps=6, privacy=private()))
    report = full.privacy
    assert report["epsilon"] <= 4.0 and report["noise_multiplier"] > 0.3
    assert report["unit"] == "a window of 33 tokens" and report["steps"] == 6
    summary = json.loads((full.run_dir / "summary.json").read_text())
    assert summary["privacy"]["epsilon"] == pytest.approx(report["epsilon"])
    saved = json.loads((full.run_dir / "config.json").read_text())
    assert saved["privacy"]["noise_multiplier"] == report["noise_multiplier"]
    assert "clip_fraction" in read_metrics(full.run_dir / "metrics.jsonl")[-1]
    # σ is fixed for the steps planned at the start: a resume that runs more spends more ε
    short = train_lm(tiny_config(tmp_path, name="short", steps=3, privacy=private()))
    longer = train_lm(tiny_config(tmp_path, name="short", steps=6, privacy=private(),
                                  resume=True))  # fmt: skip
    assert longer.privacy["noise_multiplier"] == short.privacy["noise_multiplier"]
    assert longer.privacy["epsilon"] > 4.0 >= short.privacy["epsilon"]


def test_a_resumed_private_run_equals_an_uninterrupted_one(tmp_path):
    model, fixed = dataclasses.replace(TINY, dropout=0.0), private(noise_multiplier=0.8)
    full = train_lm(tiny_config(tmp_path, name="full", steps=6, model=model, privacy=fixed))
    train_lm(tiny_config(tmp_path, name="split", steps=3, model=model, privacy=fixed))
    resumed = train_lm(
        tiny_config(tmp_path, name="split", steps=6, model=model, privacy=fixed, resume=True)
    )
    chex.assert_trees_all_close(resumed.state.params, full.state.params, atol=1e-6, rtol=1e-6)
    assert resumed.privacy == full.privacy


def test_clipping_without_noise_learns_and_reports_no_privacy(tmp_path):
    run = train_lm(tiny_config(tmp_path, steps=30, batch_size=16, privacy=private(
        target_epsilon=math.inf)))  # fmt: skip
    assert run.privacy["epsilon"] == math.inf and run.privacy["noise_multiplier"] == 0
    assert run.after["loss"] < run.before["loss"] - 0.8, (run.before, run.after)
    assert json.loads((run.run_dir / "summary.json").read_text())["privacy"]["epsilon"] == "inf"


def test_privacy_settings_the_recipe_cannot_keep_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="drop teacher or privacy"):
        tiny_config(tmp_path, teacher=str(tmp_path), privacy=private())
    long_context = dataclasses.replace(TINY, block_size=800)  # 700 training tokens
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n\n".join(["to be or not to be"] * 40))
    data = tiny_config(tmp_path).data
    with pytest.raises(ConfigError, match="fewer than one window"):
        train_lm(tiny_config(tmp_path, model=long_context, privacy=private(),
                             data=dataclasses.replace(data, corpus=str(corpus))))  # fmt: skip


@pytest.mark.multidevice
def test_a_private_run_on_devices_equals_one_device(tmp_path):
    """DP-SGD's windows and noise do not depend on the layout: data-parallel with micro-batches,
    and a mesh, give one device's parameters."""
    model = dataclasses.replace(TINY, dropout=0.0)
    one = train_lm(tiny_config(tmp_path, name="one", steps=4, model=model, privacy=private()))
    for name, parallel in [
        ("pmap", ParallelConfig(mode="pmap", devices=4, microbatches=2)),
        ("mesh", ParallelConfig(mode="mesh", data=4, fsdp=2)),
    ]:
        run = train_lm(tiny_config(tmp_path, name=name, steps=4, model=model, privacy=private(),
                                   parallel=parallel))  # fmt: skip
        chex.assert_trees_all_close(run.state.params, one.state.params, atol=1e-5, rtol=1e-5)


# Canaries


def test_canaries_are_inserted_whole_in_the_first_part_and_nothing_else_changes():
    text = "\n".join(f"line {i}" for i in range(1_000))
    canaries = make_canaries([1, 3, 5], seed=2)
    assert len({c.secret for c in canaries}) == 3 and all(len(c.secret) == 4 for c in canaries)
    out = insert_canaries(text, canaries, seed=0, end_fraction=0.5)
    lines = out.split("\n")
    for canary in canaries:
        places = [i for i, line in enumerate(lines) if line == canary.text]
        assert len(places) == canary.repeats
        assert all(int(lines[i + 1].split()[1]) < 500 for i in places)  # before line 500
    assert [line for line in lines if "vault" not in line] == text.split("\n")


def direct_log_prob(model, params, tokenizer, text: str, start: int) -> float:
    """Σ log p(token t | tokens before t) for t >= start, from one pass over the whole text."""
    ids = np.asarray(tokenizer.encode(text))[None]
    logits = model.apply({"params": params}, ids)
    log_probs = np.asarray(jax.nn.log_softmax(logits[0, :-1]), np.float64)
    return float(sum(log_probs[t - 1, ids[0, t]] for t in range(start, ids.shape[1])))


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_every_candidates_log_prob_equals_scoring_its_line_whole(kind):
    tokenizer = train_tokenizer("char", ["\nAnne's vault code is abc"])
    vocab = tokenizer.vocab_size
    if kind == "gpt":
        config = GPTConfig(vocab_size=vocab, block_size=32, n_layer=1, n_head=2, n_embd=16)
        model, params = GPT(config), init_params(config, jax.random.key(0))
    else:
        config = LSTMLMConfig(vocab_size=vocab, block_size=8, n_layer=1, n_embd=16)
        model, params = LSTMLM(config), init_lstm_lm_params(config, jax.random.key(0))
    canary = Canary("Anne's vault code is ", "cab", 1, alphabet="abc")
    table = secret_log_probs(model, params, tokenizer, canary, batch_size=4)  # padded chunks
    assert table.shape == (3, 3, 3)
    start = len(canary.prefix) + 1  # each copy is a line: scored after "\n" + prefix
    for letters in [(0, 0, 0), (2, 0, 1), (1, 2, 2), (2, 2, 2)]:
        text = "\n" + canary.prefix + "".join("abc"[i] for i in letters)
        direct = direct_log_prob(model, params, tokenizer, text, start)
        assert table[letters] == pytest.approx(direct, abs=1e-4)
    rank = 1 + int(np.sum(table > table[2, 0, 1]))
    assert canary_exposure(model, params, tokenizer, canary) == pytest.approx(
        math.log2(27) - math.log2(rank)
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-50, 0), min_size=4, max_size=4), st.integers(0, 3))
def test_exposure_is_log2_candidates_over_rank(values, which):
    table = np.array(values).reshape(2, 2)
    rank = sorted(values, reverse=True).index(values[which]) + 1  # ties in its favour
    assert exposure(table, divmod(which, 2)) == pytest.approx(math.log2(4 / rank))


def test_canary_settings_are_checked():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        make_canaries([0], seed=0)
    with pytest.raises(ValueError, match="distinct"):
        make_canaries([1], seed=0, alphabet="aab")
    for prefix, secret, match in [("", "ab", "non-empty prefix"), ("a\nb ", "ab", "one line"),
                                  ("code ", "", ">= 1 characters"), ("code ", "aZ", "of 'abc"),
                                  ("code ", "a\n", "one line")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            Canary(prefix, secret, 1, alphabet="abc")
    with pytest.raises(ValueError, match="needs a character tokenizer"):
        bpe = train_tokenizer("bpe", ["abc abc"] * 4, vocab_size=257)
        secret_log_probs(None, None, bpe, Canary("x ", "ab", 1, string.ascii_lowercase))
