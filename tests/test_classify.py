"""The classification recipe and what it is built from: the word vocabulary, length-bucketed
batches, the classifiers, and bad input."""

import json

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from jaxllm.classic import TfidfConfig, fit_transform
from jaxllm.compress import DistillationError, DistillConfig
from jaxllm.config import ConfigError
from jaxllm.data import (
    PAD_ID,
    UNK_ID,
    LabelledTexts,
    WordVocab,
    align_labels,
    bucketed_batches,
    build_word_vocab,
    padded_length,
    split_words,
)
from jaxllm.data.buckets import Batches
from jaxllm.models.classifiers import ClassifierConfig, TextClassifier, init_classifier
from jaxllm.optim import OptimizerConfig
from jaxllm.privacy import PrivacySettings
from jaxllm.recipes.classify import ClassifyConfig, train_classifier
from jaxllm.recipes.text_features import encode_tfidf, tfidf_vectorizer
from jaxllm.train import CheckpointError

GOOD = ["great", "moving", "superb", "fun", "warm", "clever"]
BAD = ["dull", "awful", "boring", "flat", "weak", "tedious"]
FILLER = ["the", "film", "plot", "cast", "a", "is", "and", "story", "it", "'s"]


def synthetic(n: int, seed: int, names=("negative", "positive")) -> LabelledTexts:
    """Sentences whose label is told by two of their words, of 3 to 14 words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(2, size=n)
    texts = []
    for label in labels:
        words = list(rng.choice(GOOD if label else BAD, 2))
        words += list(rng.choice(FILLER, int(rng.integers(1, 13))))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return LabelledTexts(texts, labels, names)


# ------------------------------------------------------------------------------ vocabulary


def test_split_words_keeps_punctuation_and_clitics():
    assert split_words("It's GREAT!") == ["it's", "great", "!"]
    assert split_words("it 's n't bad ...") == ["it", "'s", "n't", "bad", ".", ".", "."]
    assert split_words("   ") == []


def test_vocab_orders_by_count_and_maps_rare_words_to_unk():
    vocab = build_word_vocab(["b a b", "c b a", "d"], min_count=2)
    assert vocab.words == ("<pad>", "<unk>", "b", "a")
    assert vocab.counts == (0, 0, 3, 2)
    encoded = vocab.encode(["a b c", "zzz zzz", ""], max_len=8)
    np.testing.assert_array_equal(
        encoded.ids, [[3, 2, UNK_ID], [UNK_ID, UNK_ID, PAD_ID], [1, 0, 0]]
    )
    np.testing.assert_array_equal(encoded.lengths, [3, 2, 1])
    assert encoded.empty == 1 and encoded.truncated == 0
    assert encoded.unknown_fraction == pytest.approx(4 / 6)


def test_vocab_truncates_long_texts_and_counts_them():
    vocab = build_word_vocab(["a b c d e"])
    encoded = vocab.encode(["a b c d e", "a b"], max_len=3)
    assert encoded.ids.shape == (2, 3) and encoded.truncated == 1
    np.testing.assert_array_equal(encoded.lengths, [3, 2])


def test_vocab_round_trips_and_rejects_bad_input(tmp_path):
    vocab = build_word_vocab(["x y y z"], max_size=2)
    assert vocab.words == ("<pad>", "<unk>", "y", "x")
    vocab.save(tmp_path / "vocab.json")
    loaded = WordVocab.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.fingerprint() == vocab.fingerprint()
    assert build_word_vocab(["x y"]).fingerprint() != vocab.fingerprint()
    with pytest.raises(ValueError, match="no word occurs 5 times"):
        build_word_vocab(["x y"], min_count=5)
    with pytest.raises(ValueError, match="hold no word"):
        build_word_vocab(["", " ."[:1]])
    with pytest.raises(TypeError, match="wrap it in a list"):
        vocab.encode("x y", max_len=4)
    with pytest.raises(FileNotFoundError, match="no vocabulary"):
        WordVocab.load(tmp_path / "missing.json")


# ------------------------------------------------------------------------------ batches


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 200),
    batch_size=st.integers(1, 32),
    seed=st.integers(0, 3),
    epoch=st.integers(0, 3),
)
def test_an_epoch_holds_every_example_in_full_batches(n, batch_size, seed, epoch):
    lengths = np.random.default_rng(seed).integers(1, 60, size=n)
    batches = bucketed_batches(lengths, batch_size, seed=seed, epoch=epoch)
    flat = np.concatenate(batches)
    assert all(len(b) == batch_size for b in batches)
    assert len(batches) == -(-n // batch_size)
    assert set(flat.tolist()) == set(range(n))
    assert len(flat) - n < batch_size  # only the last batch's fill repeats examples
    again = bucketed_batches(lengths, batch_size, seed=seed, epoch=epoch)
    chex.assert_trees_all_equal(batches, again)


def test_buckets_reduce_padding_and_keep_shapes_few():
    lengths = np.random.default_rng(0).integers(1, 65, size=2000)
    ids = (np.arange(64)[None, :] < lengths[:, None]).astype(np.int32)  # 1 at words, PAD after
    data = Batches(ids, lengths, np.zeros(2000, np.int64), batch_size=32, max_len=64, seed=0)
    shapes, real, total = set(), 0, 0
    for step in range(data.steps_per_epoch):
        batch = data(step)
        shapes.add(batch["tokens"].shape)
        real, total = real + batch["mask"].sum(), total + batch["mask"].size
        assert batch["tokens"].shape[1] % 16 == 0 and batch["tokens"].shape[1] <= 64
        assert (batch["tokens"][~batch["mask"]] == PAD_ID).all()
    assert len(shapes) <= 4 and real / total > 0.75  # unsorted batches: ~0.5 (all pad to 64)
    assert [padded_length(n, 64) for n in (1, 16, 17, 99)] == [16, 16, 32, 64]
    assert padded_length(64, 128) == 64


# ------------------------------------------------------------------------------ models

ENCODERS = ["bag", "lstm", "bilstm", "bilstm-max", "transformer", "tfidf_mlp"]


def small(encoder: str) -> ClassifierConfig:
    summary = "max" if encoder.endswith("-max") else "final"
    return ClassifierConfig(
        encoder.removesuffix("-max"),  # type: ignore[arg-type]
        vocab_size=40,
        num_classes=3,
        embed_dim=16,
        hidden_size=8,
        num_heads=2,
        max_len=32,
        lstm_summary=summary,
    )


def inputs(encoder: str, pad_to: int = 0):
    tokens = jnp.array([[5, 6, 7, 8, 9], [3, 4, 0, 0, 0]], jnp.int32)
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    if pad_to:
        tokens = jnp.pad(tokens, ((0, 0), (0, pad_to - 5)))
        mask = jnp.pad(mask, ((0, 0), (0, pad_to - 5)))
    weights = mask * 0.5 if encoder == "tfidf_mlp" else None
    return tokens, mask, weights


@pytest.mark.parametrize("encoder", ENCODERS)
def test_classifier_shapes_padding_and_jit(encoder):
    config = small(encoder)
    model = TextClassifier(config)
    params = init_classifier(config, jax.random.key(0))
    logits = model.apply({"params": params}, *inputs(encoder))
    chex.assert_shape(logits, (2, 3))
    chex.assert_tree_all_finite(logits)
    padded = model.apply({"params": params}, *inputs(encoder, pad_to=16))
    np.testing.assert_allclose(padded, logits, atol=1e-5)  # padding changes nothing
    jitted = jax.jit(lambda p, *a: model.apply({"params": p}, *a))(params, *inputs(encoder))
    np.testing.assert_allclose(jitted, logits, atol=1e-5)
    key = jax.random.key(1)
    trained = model.apply({"params": params}, *inputs(encoder), train=True, rngs={"dropout": key})
    chex.assert_shape(trained, (2, 3))


def test_tfidf_mlp_is_an_mlp_over_the_dense_tfidf_matrix():
    texts = ["good fun film", "dull flat film film", "fun fun good", "nothing known here"]
    data = LabelledTexts(texts[:3], np.array([1, 0, 1]), ("neg", "pos"))
    vectorizer = tfidf_vectorizer(data.texts, ngram_max=1, min_df=1)
    config = ClassifierConfig("tfidf_mlp", vectorizer.num_features, 2, embed_dim=8)
    params = init_classifier(config, jax.random.key(0))
    split = encode_tfidf(vectorizer, LabelledTexts(texts, np.array([1, 0, 1, 0]), data.label_names))
    assert split.empty == 1
    logits = TextClassifier(config).apply(
        {"params": params}, split.ids, split.ids * 0 == 0, split.weights
    )
    _, X = fit_transform(data.texts, TfidfConfig(ngram_range=(1, 1), sublinear_tf=True))
    dense = np.vstack([X.todense(), np.zeros((1, vectorizer.num_features))])  # reference
    encoder, out = params["encoder"], params["output"]
    hidden = np.maximum(dense @ encoder["input"]["embedding"] + encoder["bias"], 0)
    expected = hidden @ out["kernel"] + out["bias"]
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_classifier_config_errors():
    with pytest.raises(ConfigError, match="encoder must be one of"):
        ClassifierConfig("cnn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dropout"):
        ClassifierConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        ClassifierConfig("transformer", embed_dim=30, num_heads=4)
    model = TextClassifier(ClassifierConfig("bag", vocab_size=10, num_classes=2))
    tokens, mask, _ = inputs("bag")
    with pytest.raises(ConfigError, match="'tfidf_mlp' encoder only"):
        model.init(jax.random.key(0), tokens, mask, mask * 1.0)


# ------------------------------------------------------------------------------ labels


def test_align_labels_matches_classes_by_name():
    dev = LabelledTexts(["x", "y"], np.array([0, 1]), ("pos", "neg"))
    aligned = align_labels(dev, ("neg", "pos"), "dev")
    np.testing.assert_array_equal(aligned.labels, [1, 0])
    only_one = LabelledTexts(["x"], np.array([0]), ("pos", "extra"))
    assert align_labels(only_one, ("neg", "pos"), "dev").labels.tolist() == [1]
    unseen = LabelledTexts(["x"], np.array([1]), ("pos", "neutral"))
    with pytest.raises(
        ValueError, match=r"dev set has labels the training set lacks: \['neutral'\]"
    ):
        align_labels(unseen, ("neg", "pos"), "dev")


# ------------------------------------------------------------------------------ the recipe


def recipe(tmp_path, encoder="bag", **overrides) -> ClassifyConfig:
    settings_ = dict(
        name=f"run-{encoder}",
        out_dir=str(tmp_path),
        epochs=3,
        batch_size=16,
        evals_per_epoch=1,
        patience=0,
        progress=False,
        compilation_cache="",
        model=ClassifierConfig(encoder, embed_dim=16, hidden_size=16, num_heads=2, max_len=32),
        min_df=1,
        optimizer=OptimizerConfig(name="adam", learning_rate=1e-2, grad_clip=5.0),
    )
    return ClassifyConfig(**(settings_ | overrides))


@pytest.fixture(scope="module")
def data():
    return synthetic(320, 0), synthetic(64, 1), synthetic(100, 2)


@pytest.mark.parametrize("encoder", ["bag", "bilstm", "tfidf_mlp"])
def test_recipe_learns_a_separable_task_and_writes_its_run_folder(tmp_path, data, encoder):
    run = train_classifier(recipe(tmp_path, encoder, epochs=6), data)
    assert run.test["accuracy"] >= 0.9, run.test
    assert run.predict(["great fun", "dull boring"]).tolist() == [1, 0]
    folder = tmp_path / f"run-{encoder}"
    for name in ("config.json", "metrics.jsonl", "loss.png", "confusion.png", "summary.json"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["test"]["accuracy"] == run.test["accuracy"]
    assert np.sum(summary["test"]["confusion"]) == 100
    assert summary["parameters"] > 0 and summary["best_step"] == run.best_step


def test_best_checkpoint_is_the_lowest_dev_loss(tmp_path, data):
    run = train_classifier(recipe(tmp_path, epochs=4, evals_per_epoch=2), data)
    evals = [r for r in run.history if "val_loss" in r]
    best = min(evals, key=lambda r: r["val_loss"])
    assert run.best_step == best["step"]
    assert run.dev["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, data):
    whole = train_classifier(recipe(tmp_path / "a", epochs=2), data)
    train_classifier(recipe(tmp_path / "b", epochs=1), data)
    resumed = train_classifier(recipe(tmp_path / "b", epochs=2, resume=True), data)
    chex.assert_trees_all_close(resumed.params, whole.params, atol=1e-6)


def test_resume_step_goes_back_to_an_older_checkpoint_and_ends_as_if_uninterrupted(tmp_path, data):
    whole = train_classifier(recipe(tmp_path / "a", epochs=2), data)
    train_classifier(recipe(tmp_path / "b", epochs=2), data)
    checkpoints = tmp_path / "b" / "run-bag" / "checkpoints"
    older = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())[-2]
    resumed = train_classifier(
        recipe(tmp_path / "b", epochs=2, resume=True, resume_step=older), data
    )
    chex.assert_trees_all_close(resumed.params, whole.params, atol=1e-6)
    assert (tmp_path / "b" / "run-bag" / "checkpoints-set-aside").is_dir()  # newer ones, kept
    with pytest.raises(ConfigError, match="--resume-step 3 needs --resume"):
        recipe(tmp_path / "c", resume_step=3)


def test_predict_reads_empty_unknown_and_long_texts(tmp_path, data):
    run = train_classifier(recipe(tmp_path, epochs=1), data)
    predicted = run.predict(["", "qqq zzz", "great " * 500])
    assert predicted.shape == (3,) and set(predicted.tolist()) <= {0, 1}
    with pytest.raises(TypeError, match="list of texts"):
        run.predict("great fun")  # type: ignore[arg-type]


def test_bad_training_data_is_refused_clearly(tmp_path, data):
    train, dev, test = data
    one_class = train.subset(np.flatnonzero(train.labels == 1))
    with pytest.raises(ValueError, match=r"holds 1 class \(\['positive'\]\)"):
        train_classifier(recipe(tmp_path, name="one"), (one_class, dev, test))
    renamed = LabelledTexts(test.texts, test.labels, ("negative", "neutral"))
    with pytest.raises(ValueError, match="test set has labels the training set lacks"):
        train_classifier(recipe(tmp_path, name="unseen"), (train, dev, renamed))
    blank = LabelledTexts([*train.texts[:-1], "  "], train.labels, train.label_names)
    with pytest.raises(ValueError, match="1 training texts are empty"):
        train_classifier(recipe(tmp_path, name="blank"), (blank, dev, test))
    with pytest.raises(ConfigError, match="model.num_classes=3 but the data gives 2"):
        model = ClassifierConfig("bag", num_classes=3, embed_dim=8, hidden_size=8)
        train_classifier(recipe(tmp_path, name="classes", model=model), data)


def test_resume_refuses_other_data_and_a_new_run_keeps_old_checkpoints(tmp_path, data):
    train_classifier(recipe(tmp_path, epochs=1), data)
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train_classifier(recipe(tmp_path, epochs=1), data)
    other = (synthetic(320, 5), *data[1:])
    other = (
        LabelledTexts(
            [t + " extra" for t in other[0].texts], other[0].labels, other[0].label_names
        ),
        *other[1:],
    )
    with pytest.raises(CheckpointError, match="vocabulary built from the data differs"):
        train_classifier(recipe(tmp_path, epochs=2, resume=True), other)


def test_a_new_run_sets_aside_what_an_attempt_without_checkpoints_left(tmp_path, data):
    folder = tmp_path / "run-bag"
    folder.mkdir()
    (folder / "config.json").write_text("{}\n")  # a run writes its config first
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n')
    run = train_classifier(recipe(tmp_path, epochs=1), data)
    assert (folder / "earlier-1" / "metrics.jsonl").read_text() == '{"step": 1, "loss": 9.0}\n'
    assert (folder / "earlier-1" / "config.json").read_text() == "{}\n"
    assert all(r.get("loss") != 9.0 for r in run.history)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert records and all(r.get("loss") != 9.0 for r in records)  # the new run's alone


def test_best_checkpoint_survives_when_evaluations_do_not_divide_an_epoch(tmp_path, data):
    # 320 examples / 24 = 14 steps an epoch, evaluated every 3: 14 evaluations in 3 epochs,
    # more than epochs × evals_per_epoch + 1.
    run = train_classifier(recipe(tmp_path, epochs=3, evals_per_epoch=4, batch_size=24), data)
    evals = [r for r in run.history if "val_loss" in r]
    assert len(evals) == 14
    assert run.best_step == min(evals, key=lambda r: r["val_loss"])["step"]


def test_resume_with_early_stopping_stops_where_an_uninterrupted_run_does(tmp_path, data):
    settings_ = dict(evals_per_epoch=4, patience=2)
    whole = train_classifier(recipe(tmp_path / "a", epochs=8, **settings_), data)
    train_classifier(recipe(tmp_path / "b", epochs=1, **settings_), data)
    resumed = train_classifier(recipe(tmp_path / "b", epochs=8, resume=True, **settings_), data)
    assert resumed.best_step == whole.best_step
    chex.assert_trees_all_close(resumed.params, whole.params, atol=1e-6)
    again = train_classifier(recipe(tmp_path / "b", epochs=8, resume=True, **settings_), data)
    assert again.history == [] and again.best_step == whole.best_step  # a stopped run stays so


def test_a_private_run_keeps_its_epsilon_and_resumes_with_its_noise(tmp_path, data):
    """DP-SGD through the recipe: σ filled in for the target and the ε of the steps run at
    most the target; a resumed run keeps its σ, reports the ε it reached, and ends as an
    uninterrupted run does (the same Poisson draws and noise)."""
    private = PrivacySettings(target_epsilon=3.0, clip_norm=1.0)
    train_classifier(recipe(tmp_path / "a", epochs=2, privacy=private), data)
    report = json.loads((tmp_path / "a" / "run-bag" / "summary.json").read_text())["privacy"]
    assert report["epsilon"] <= 3.0 and report["steps"] == 2 * 20
    assert report["sampling_rate"] == pytest.approx(16 / 320)
    assert report["delta"] == pytest.approx(0.1 / 320)
    saved = json.loads((tmp_path / "a" / "run-bag" / "config.json").read_text())
    assert saved["privacy"]["noise_multiplier"] == report["noise_multiplier"] > 0.5

    train_classifier(recipe(tmp_path / "b", epochs=1, privacy=private), data)
    train_classifier(recipe(tmp_path / "b", epochs=2, resume=True, privacy=private), data)
    again = json.loads((tmp_path / "b" / "run-bag" / "summary.json").read_text())["privacy"]
    assert again["noise_multiplier"] < report["noise_multiplier"]  # σ for 20 steps, kept
    assert again["epsilon"] > 3.0 and again["steps"] == 40

    fixed = PrivacySettings(noise_multiplier=1.0, clip_norm=1.0)
    whole = train_classifier(recipe(tmp_path / "c", epochs=2, privacy=fixed), data)
    train_classifier(recipe(tmp_path / "d", epochs=1, privacy=fixed), data)
    resumed = train_classifier(recipe(tmp_path / "d", epochs=2, resume=True, privacy=fixed), data)
    chex.assert_trees_all_close(resumed.params, whole.params, atol=1e-6)


def test_private_training_without_noise_still_learns_and_reports_no_privacy(tmp_path, data):
    clipped_only = PrivacySettings(target_epsilon=float("inf"), clip_norm=5.0)
    run = train_classifier(recipe(tmp_path, epochs=6, privacy=clipped_only), data)
    report = json.loads((tmp_path / "run-bag" / "summary.json").read_text())["privacy"]
    assert report["epsilon"] == "inf" and report["noise_multiplier"] == 0.0  # JSON: no Infinity
    assert run.test["accuracy"] >= 0.85
    with pytest.raises(ConfigError, match="TF-IDF features"):
        recipe(tmp_path, "tfidf_mlp", privacy=clipped_only)
    with pytest.raises(ConfigError, match="word2vec vectors trained on the same texts"):
        recipe(tmp_path, word2vec_init=True, privacy=clipped_only)


def test_a_classifier_distils_from_a_teacher_run_and_alpha_zero_is_training_alone(tmp_path, data):
    teacher = recipe(tmp_path, name="teacher", epochs=2)
    train_classifier(teacher, data)
    small = ClassifierConfig("bag", embed_dim=4, hidden_size=4, max_len=32)
    alone = train_classifier(recipe(tmp_path, name="alone", model=small), data)
    hard_only = DistillConfig(temperature=2.0, alpha=0.0)
    same = recipe(
        tmp_path, name="hard", model=small, teacher=str(teacher.run_dir), distill=hard_only
    )
    chex.assert_trees_all_close(train_classifier(same, data).params, alone.params, atol=1e-6)
    taught = train_classifier(
        recipe(tmp_path, name="taught", model=small, teacher=str(teacher.run_dir)), data
    )
    records = [r for r in taught.history if "soft_loss" in r]
    assert records and all(r["soft_loss"] > 0 for r in records)
    other = recipe(tmp_path, name="other", model=small, teacher=str(teacher.run_dir), max_vocab=5)
    with pytest.raises(DistillationError, match="trained on other features"):
        train_classifier(other, data)
    with pytest.raises(ConfigError, match="drop teacher or privacy"):
        recipe(tmp_path, teacher=str(teacher.run_dir), privacy=PrivacySettings(target_epsilon=1.0))
