"""Hugging Face BERT checkpoints in and out: outputs equal transformers' (random-initialised
models saved locally, several shapes), and bad checkpoints refused by name."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from interop_helpers import perturbed  # noqa: E402

from jaxllm.interop import (  # noqa: E402
    CheckpointMismatchError,
    load_hf_bert,
    read_hf_tensors,
    save_hf_bert,
)
from jaxllm.models.bert import BERT, BertConfig, init_bert_params  # noqa: E402

SHAPES = [  # (layers, width, heads, vocab, positions)
    (1, 32, 4, 50, 16),
    (2, 48, 3, 97, 24),
]


def hf_config(layers, width, heads, vocab, positions, **extra):
    return transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=positions,
        attn_implementation="eager",
        **extra,
    )


def batch(vocab, positions, seed=0):
    """Two rows, the second padded: tokens, segment ids, attention mask."""
    rng = np.random.default_rng(seed)
    length = positions - 3
    tokens = rng.integers(0, vocab, (2, length))
    types = (np.arange(length)[None, :] >= length // 2).astype(np.int64).repeat(2, 0)
    mask = np.ones((2, length), np.int64)
    mask[1, length - 4 :] = 0
    return tokens, types, mask


def hf_outputs(model, tokens, types, mask):
    model.eval()
    with torch.no_grad():
        return model(
            input_ids=torch.from_numpy(tokens),
            token_type_ids=torch.from_numpy(types),
            attention_mask=torch.from_numpy(mask),
        )


def ours(config, params, method, tokens, types, mask):
    return np.asarray(
        BERT(config).apply(
            {"params": params},
            jnp.asarray(tokens, jnp.int32),
            jnp.asarray(types, jnp.int32),
            jnp.asarray(mask, bool),
            method=method,
        )
    )


def real_rows(array, mask):
    """Hidden states at real tokens only (padding's own states are meaningless)."""
    return array[np.asarray(mask, bool)]


@pytest.mark.parametrize("shape", SHAPES)
def test_imported_bert_model_matches_transformers(shape, tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertModel(hf_config(*shape))
    hf.save_pretrained(tmp_path)
    config, params = load_hf_bert(tmp_path)
    assert config.pooler and not config.mlm_head and config.num_classes == 0
    tokens, types, mask = batch(shape[3], shape[4])
    expected = hf_outputs(hf, tokens, types, mask)
    hidden = ours(config, params, BERT.__call__, tokens, types, mask)
    np.testing.assert_allclose(
        real_rows(hidden, mask), real_rows(expected.last_hidden_state.numpy(), mask), atol=1e-4
    )
    pooled = ours(config, params, BERT.pooled, tokens, types, mask)
    np.testing.assert_allclose(pooled, expected.pooler_output.numpy(), atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_imported_masked_lm_and_classifier_match_transformers(shape, tmp_path):
    tokens, types, mask = batch(shape[3], shape[4], seed=1)
    torch.manual_seed(1)
    mlm = transformers.BertForMaskedLM(hf_config(*shape))
    mlm.save_pretrained(tmp_path / "mlm")
    config, params = load_hf_bert(tmp_path / "mlm")
    logits = ours(config, params, BERT.mlm_logits, tokens, types, mask)
    expected = hf_outputs(mlm, tokens, types, mask).logits.numpy()
    np.testing.assert_allclose(real_rows(logits, mask), real_rows(expected, mask), atol=1e-4)

    classifier = transformers.BertForSequenceClassification(hf_config(*shape, num_labels=3))
    classifier.save_pretrained(tmp_path / "cls")
    config, params = load_hf_bert(tmp_path / "cls")
    assert config.num_classes == 3
    logits = ours(config, params, BERT.class_logits, tokens, types, mask)
    expected = hf_outputs(classifier, tokens, types, mask).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


@pytest.mark.parametrize(
    "parts, hf_class",
    [
        (dict(mlm_head=False, num_classes=0), "BertModel"),
        (dict(pooler=False, mlm_head=True), "BertForMaskedLM"),
        (dict(mlm_head=False, num_classes=2), "BertForSequenceClassification"),
    ],
)
def test_exported_bert_loads_in_transformers_with_equal_outputs(parts, hf_class, tmp_path):
    config = BertConfig(vocab_size=61, max_len=20, n_layer=2, n_head=4, n_embd=32, **parts)
    params = init_bert_params(config, jax.random.key(3))
    params = perturbed(params, seed=4)
    save_hf_bert(tmp_path, config, params)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [hf_class]
    hf = getattr(transformers, hf_class).from_pretrained(tmp_path, attn_implementation="eager")
    tokens, types, mask = batch(61, 20, seed=2)
    expected = hf_outputs(hf, tokens, types, mask)
    if hf_class == "BertModel":
        got, want = ours(config, params, BERT.__call__, tokens, types, mask), expected[0].numpy()
        got, want = real_rows(got, mask), real_rows(want, mask)
    elif hf_class == "BertForMaskedLM":
        got = real_rows(ours(config, params, BERT.mlm_logits, tokens, types, mask), mask)
        want = real_rows(expected.logits.numpy(), mask)
    else:
        got = ours(config, params, BERT.class_logits, tokens, types, mask)
        want = expected.logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_hf_bert(tmp_path, config, params)


def saved_mlm(tmp_path):
    torch.manual_seed(0)
    transformers.BertForMaskedLM(hf_config(*SHAPES[0])).save_pretrained(tmp_path)
    return read_hf_tensors(tmp_path)


def rewrite(tmp_path, tensors=None, **config_changes):
    from safetensors.numpy import save_file

    if tensors is not None:
        save_file(tensors, str(tmp_path / "model.safetensors"))
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(config_changes)
    (tmp_path / "config.json").write_text(json.dumps(config))


def test_bad_checkpoints_are_refused_naming_the_tensor_or_field(tmp_path):
    tensors = saved_mlm(tmp_path)
    name = "bert.encoder.layer.0.intermediate.dense.weight"

    missing = {k: v for k, v in tensors.items() if k != name}
    rewrite(tmp_path, missing)
    with pytest.raises(CheckpointMismatchError, match=f"lacks tensor '{name}'"):
        load_hf_bert(tmp_path)

    extra = dict(tensors, **{"bert.encoder.layer.1.output.dense.bias": tensors[name][0]})
    rewrite(tmp_path, extra)
    with pytest.raises(CheckpointMismatchError, match="layer.1.output.dense.bias"):
        load_hf_bert(tmp_path)

    rewrite(tmp_path, dict(tensors, **{name: tensors[name][:, :-1]}))
    with pytest.raises(CheckpointMismatchError, match=f"{name} has shape"):
        load_hf_bert(tmp_path)

    rewrite(tmp_path, dict(tensors, **{name: tensors[name].astype(np.int32)}))
    with pytest.raises(CheckpointMismatchError, match="not a float type"):
        load_hf_bert(tmp_path)

    rewrite(tmp_path, tensors, vocab_size=51)  # config and tensors disagree
    with pytest.raises(CheckpointMismatchError, match="word_embeddings.weight has shape"):
        load_hf_bert(tmp_path)

    rewrite(tmp_path, tensors, vocab_size=50, architectures=["BertForQuestionAnswering"])
    with pytest.raises(CheckpointMismatchError, match="unsupported architecture"):
        load_hf_bert(tmp_path)

    rewrite(tmp_path, tensors, architectures=["BertForMaskedLM"], hidden_act="relu")
    with pytest.raises(CheckpointMismatchError, match="hidden_act='relu'"):
        load_hf_bert(tmp_path)

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_bert(tmp_path / "nowhere")


class Payload:
    """An arbitrary object: unpickling one could run any code its class names."""


def test_a_pytorch_bin_is_read_weights_only(tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertModel(hf_config(*SHAPES[0]))
    hf.save_pretrained(tmp_path / "safe")
    hf.config.save_pretrained(tmp_path / "bin")
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    from_bin, from_safetensors = load_hf_bert(tmp_path / "bin"), load_hf_bert(tmp_path / "safe")
    jax.tree_util.tree_map(np.testing.assert_array_equal, from_bin[1], from_safetensors[1])

    torch.save(
        {"weights": torch.ones(2), "code": Payload()}, tmp_path / "bin" / "pytorch_model.bin"
    )
    with pytest.raises(ValueError, match="more than tensors"):
        read_hf_tensors(tmp_path / "bin")


def test_a_config_no_hugging_face_class_holds_is_refused_when_saving(tmp_path):
    config = BertConfig(vocab_size=30, max_len=8, n_layer=1, n_head=2, n_embd=8)  # both heads
    params = init_bert_params(config, jax.random.key(0))
    with pytest.raises(CheckpointMismatchError, match="pooler=False"):
        save_hf_bert(tmp_path, config, params)
    assert not any(tmp_path.iterdir())  # nothing written
    mlm = BertConfig(vocab_size=30, max_len=8, n_layer=1, n_head=2, n_embd=8, pooler=False)
    wrong = BertConfig(vocab_size=31, max_len=8, n_layer=1, n_head=2, n_embd=8, pooler=False)
    with pytest.raises(CheckpointMismatchError, match="parameter wte/embedding has shape"):
        save_hf_bert(tmp_path, wrong, init_bert_params(mlm, jax.random.key(0)))
    with pytest.raises(ValueError, match="mlm_head=True"):
        BERT(BertConfig(vocab_size=30, mlm_head=False)).init(
            jax.random.key(0), jnp.ones((1, 2), jnp.int32), method=BERT.mlm_logits
        )


def test_overwriting_removes_old_shards_and_bf16_and_old_names_load(tmp_path):
    from safetensors.numpy import save_file

    tensors = saved_mlm(tmp_path)
    # An earlier sharded checkpoint in the folder must not be what is read after a save.
    save_file(
        {"stale": np.zeros(1, np.float32)}, str(tmp_path / "model-00001-of-00001.safetensors")
    )
    index = {"weight_map": {"stale": "model-00001-of-00001.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    config, params = load_hf_bert(tmp_path)
    with pytest.raises(FileExistsError):
        save_hf_bert(tmp_path, config, params)
    save_hf_bert(tmp_path, config, params, overwrite=True)
    assert not (tmp_path / "model.safetensors.index.json").exists()
    assert not (tmp_path / "model-00001-of-00001.safetensors").exists()
    again = load_hf_bert(tmp_path)[1]
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, params)

    # bfloat16 tensors, and the original BERT's LayerNorm names gamma / beta.
    import ml_dtypes

    old = {
        name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): value.astype(ml_dtypes.bfloat16)
        for name, value in tensors.items()
    }
    rewrite(tmp_path, old)
    _, from_old = load_hf_bert(tmp_path)
    expected = jax.tree_util.tree_map(
        lambda x: np.asarray(x.astype(jnp.bfloat16), np.float32), params
    )
    jax.tree_util.tree_map(np.testing.assert_array_equal, from_old, expected)
