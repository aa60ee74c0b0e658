"""Fine-tuning BERT through the classification recipe: WordPiece features, the pre-trained
encoder dropped into the classifier, random initialisation as the baseline, resume, and the
errors a user meets."""

import dataclasses
import json

import chex
import jax
import numpy as np
import pytest

from jaxllm.config import ConfigError
from jaxllm.data import CharTokenizer, DataConfig, LabelledTexts
from jaxllm.models.bert import BERT, BertConfig
from jaxllm.models.classifiers import ClassifierConfig, init_classifier, with_pretrained_encoder
from jaxllm.optim import OptimizerConfig
from jaxllm.recipes.classify import ClassifyConfig, train_classifier
from jaxllm.recipes.mlm import MLMConfig, load_mlm_run, load_wordpiece_tokenizer, train_mlm
from jaxllm.recipes.text_features import encode_pieces
from jaxllm.train import CheckpointError, LoopConfig
from tests.test_classify import recipe as classification_recipe
from tests.test_classify import synthetic

ENCODER = BertConfig(max_len=32, n_layer=1, n_head=2, n_embd=32, pooler=False)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny BERT pre-trained on the synthetic sentences (in which words of one sentiment
    keep company), as a run folder."""
    folder = tmp_path_factory.mktemp("bert")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(synthetic(3000, 7).texts) + "\n")
    config = MLMConfig(
        name="pretrained",
        out_dir=str(folder),
        batch_size=16,
        seq_len=32,
        eval_batches=2,
        compilation_cache="",
        data=DataConfig(corpus=str(corpus), tokenizer="wordpiece", wordpiece_vocab_size=120),
        model=ENCODER,
        optimizer=OptimizerConfig(learning_rate=3e-3, warmup_steps=5, decay_steps=-1),
        loop=LoopConfig(num_steps=40, eval_every=40, log_every=20, progress=False),
    )
    return train_mlm(config).run_dir


@pytest.fixture(scope="module")
def data():
    return synthetic(240, 0), synthetic(48, 1), synthetic(80, 2)


def recipe(tmp_path, pretrained, **overrides) -> ClassifyConfig:
    """The classification tests' small run (``tests.test_classify.recipe``), fine-tuning
    ``pretrained``."""
    settings = dict(
        name="bert",
        pretrained=str(pretrained),
        model=ClassifierConfig("bert", max_len=24, dropout=0.1),
        optimizer=OptimizerConfig(name="adamw", learning_rate=2e-3, warmup_steps=5),
    )
    return classification_recipe(tmp_path, "bert", **(settings | overrides))


def test_wordpiece_features_are_framed_cut_and_counted(pretrained):
    _, tokenizer, _ = load_mlm_run(pretrained)
    texts = ["great film", "", "the plot " * 40, "zzzq great"]
    split = encode_pieces(tokenizer, LabelledTexts(texts, np.zeros(4, np.int64), ("a", "b")), 10)
    for row, length, text in zip(split.ids, split.lengths, texts, strict=True):
        expected = tokenizer.with_specials(tokenizer.encode(text), 10)
        np.testing.assert_array_equal(row[:length], expected)
        assert (row[length:] == tokenizer.pad_id).all()
    assert split.lengths.tolist()[:3] == [4, 2, 10]
    assert (split.truncated, split.empty) == (1, 1)
    pieces = [tokenizer.encode(t)[:8] for t in texts]
    unknown = sum(int((p == tokenizer.unk_id).sum()) for p in pieces)
    assert split.unknown_fraction == pytest.approx(unknown / sum(len(p) for p in pieces))


def test_the_classifier_encodes_as_the_pretrained_bert(pretrained):
    """With the pre-trained encoder dropped in, the classifier's BERT gives the pre-trained
    model's hidden states; the pooler, absent from MLM pre-training, is the fresh one."""
    mlm, tokenizer, weights = load_mlm_run(pretrained)
    config = ClassifierConfig(
        "bert", vocab_size=tokenizer.vocab_size, num_classes=2, max_len=24, bert=mlm.model
    )
    fresh = init_classifier(config, jax.random.key(3))
    params, missing = with_pretrained_encoder(fresh, weights)
    assert missing == ["pooler_dense"]
    chex.assert_trees_all_equal(params["bert"]["pooler_dense"], fresh["bert"]["pooler_dense"])
    tokens = tokenizer.with_specials(tokenizer.encode("great fun , the plot"), 24)[None]
    ours = BERT(config.bert_encoder()).apply({"params": params["bert"]}, tokens)
    theirs = BERT(mlm.model).apply({"params": weights}, tokens)
    chex.assert_trees_all_close(ours, theirs, atol=1e-6)

    wrong = jax.tree.map(lambda x: x[..., :1], weights)
    with pytest.raises(ValueError, match=r"pre-trained bert/wte\['embedding'\] has shape"):
        with_pretrained_encoder(fresh, wrong)
    with pytest.raises(ValueError, match="none of the encoder's parts"):
        with_pretrained_encoder(fresh, {"mlm_bias": weights["mlm_bias"]})
    deeper = weights | {"h_1": weights["h_0"]}
    with pytest.raises(ValueError, match=r"parts the classifier's encoder lacks \(\['h_1'\]\)"):
        with_pretrained_encoder(fresh, deeper)


def unused_positions(params) -> np.ndarray:
    """The position embeddings past the classifier's 24 tokens: no gradient reaches them."""
    return np.asarray(params["wpe"]["embedding"][24:])


def test_fine_tuning_learns_writes_its_folder_and_resumes(tmp_path, pretrained, data):
    run = train_classifier(recipe(tmp_path, pretrained, epochs=4), data)
    assert run.test["accuracy"] >= 0.9, run.test
    _, _, weights = load_mlm_run(pretrained)  # fine-tuning started from them (AdamW decays)
    np.testing.assert_allclose(
        unused_positions(run.params["bert"]), unused_positions(weights), rtol=0.02
    )
    assert run.predict(["great fun", "dull boring"]).tolist() == [1, 0]
    folder = tmp_path / "bert"
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model"]["bert"]["n_embd"] == ENCODER.n_embd
    assert (folder / "tokenizer.json").read_text() == (pretrained / "tokenizer.json").read_text()

    whole = train_classifier(recipe(tmp_path, pretrained, name="whole", epochs=2), data)
    train_classifier(recipe(tmp_path, pretrained, name="split", epochs=1), data)
    resumed = train_classifier(
        recipe(tmp_path, pretrained, name="split", epochs=2, resume=True), data
    )
    chex.assert_trees_all_close(resumed.params, whole.params, atol=1e-6)


def test_random_init_keeps_the_shape_and_tokenizer_but_not_the_weights(tmp_path, pretrained, data):
    _, _, weights = load_mlm_run(pretrained)
    run = train_classifier(recipe(tmp_path, pretrained, epochs=1, random_init=True), data)
    assert run.config.model.bert == dataclasses.replace(
        ENCODER, vocab_size=weights["wte"]["embedding"].shape[0]
    )
    ours, theirs = unused_positions(run.params["bert"]), unused_positions(weights)
    assert not np.allclose(ours, theirs, rtol=0.5)  # a random start, not the pre-trained one
    np.testing.assert_allclose(ours.std(), 0.02, rtol=0.2)  # BERT's init: normal(0, 0.02)


def test_bad_settings_are_named(tmp_path, pretrained, data):
    with pytest.raises(ConfigError, match="set pretrained=RUN_DIR"):
        ClassifyConfig(model=ClassifierConfig("bert"))
    with pytest.raises(ConfigError, match="other encoders take no pretrained run"):
        ClassifyConfig(model=ClassifierConfig("bag"), pretrained=str(pretrained))
    with pytest.raises(ConfigError, match="random_init applies to the 'bert' encoder only"):
        ClassifyConfig(random_init=True)
    with pytest.raises(ConfigError, match="longer than the BERT's positions"):
        ClassifierConfig("bert", max_len=64, bert=ENCODER)
    with pytest.raises(ConfigError, match=r"must leave room for \[CLS\]"):
        ClassifierConfig("bert", max_len=2)
    with pytest.raises(ConfigError, match="the 'bag' encoder takes none"):
        ClassifierConfig("bag", bert=ENCODER)
    other_shape = ClassifierConfig("bert", max_len=24, bert=dataclasses.replace(ENCODER, n_layer=2))
    with pytest.raises(ConfigError, match=r"shape differs .* \(n_layer: 2 vs 1\)"):
        train_classifier(recipe(tmp_path, pretrained, name="deeper", model=other_shape), data)
    with pytest.raises(FileNotFoundError, match="pretrain_bert.py"):
        train_classifier(recipe(tmp_path, tmp_path / "nothing"), data)
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text(json.dumps({"model": {"n_layer": 2}, "loop": {}}))
    with pytest.raises(ConfigError, match="is not a BERT pre-training run"):
        train_classifier(recipe(tmp_path, lm, name="lm-run"), data)
    CharTokenizer.train(["a char tokenizer"]).save(lm / "tokenizer.json")
    with pytest.raises(CheckpointError, match="has a char tokenizer, not BERT's WordPiece"):
        load_wordpiece_tokenizer(lm)


def test_the_cli_fine_tunes_a_pretrained_run(tmp_path, pretrained, capsys):
    from tests.scripts import load_script
    from tests.test_experiments import write_tiny_sst2

    write_tiny_sst2(tmp_path)
    classify = load_script("experiments/classify.py")
    args = ["--name", "cli", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "runs"),
            "--epochs", "1", "--no-progress", "--compilation-cache", "", "--model.encoder",
            "bert", "--model.max-len", "16", "--pretrained", str(pretrained)]  # fmt: skip
    assert classify.main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    saved = json.loads((tmp_path / "runs" / "cli" / "config.json").read_text())
    assert saved["model"]["bert"]["n_layer"] == ENCODER.n_layer
    assert saved["pretrained"] == str(pretrained)
