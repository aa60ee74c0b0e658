"""Hugging Face GPT-2 checkpoints in and out: logits equal transformers' (random-initialised
models saved locally), greedy generation identical token for token, and bad settings refused."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from interop_helpers import perturbed  # noqa: E402

from jaxllm.generate import generate  # noqa: E402
from jaxllm.interop import CheckpointMismatchError, load_hf_gpt2, save_hf_gpt2  # noqa: E402
from jaxllm.models import GPT, GPTConfig, init_params  # noqa: E402

SHAPES = [(1, 32, 4, 50, 24), (2, 48, 3, 101, 32)]  # layers, width, heads, vocab, positions


def hf_gpt2(layers, width, heads, vocab, positions, seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=vocab,
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        attn_implementation="eager",
    )
    return transformers.GPT2LMHeadModel(config).eval()


def hf_logits(model, tokens):
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(tokens, np.int64))).logits.numpy()


@pytest.mark.parametrize("shape", SHAPES)
def test_imported_gpt2_logits_and_greedy_generation_match_transformers(shape, tmp_path):
    model = hf_gpt2(*shape)
    model.save_pretrained(tmp_path)
    config, params = load_hf_gpt2(tmp_path)
    tokens = np.random.default_rng(0).integers(0, shape[3], (2, 9))
    logits = GPT(config).apply({"params": params}, jnp.asarray(tokens, jnp.int32))
    np.testing.assert_allclose(np.asarray(logits), hf_logits(model, tokens), atol=1e-4)

    prompt = tokens[:1, :5]
    with torch.no_grad():
        expected = model.generate(
            torch.from_numpy(prompt), max_new_tokens=12, do_sample=False, pad_token_id=0
        )[0, 5:].tolist()
    ours = generate(GPT(config), params, prompt.tolist(), max_new_tokens=12, greedy=True)
    assert list(np.asarray(ours.tokens)[0, -12:]) == expected


def test_exported_gpt_loads_in_transformers_with_equal_logits(tmp_path):
    config = GPTConfig(vocab_size=57, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=True)
    params = init_params(config, jax.random.key(0))
    params = perturbed(params, seed=1)
    save_hf_gpt2(tmp_path, config, params)
    model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager")
    tokens = np.random.default_rng(1).integers(0, 57, (2, 11))
    ours = GPT(config).apply({"params": params}, jnp.asarray(tokens, jnp.int32))
    np.testing.assert_allclose(np.asarray(ours), hf_logits(model.eval(), tokens), atol=1e-4)
    with pytest.raises(CheckpointMismatchError, match="bias=True"):
        save_hf_gpt2(tmp_path / "nobias", GPTConfig(vocab_size=57, bias=False), params)


def test_gpt2_settings_jaxllm_lacks_are_refused(tmp_path):
    hf_gpt2(*SHAPES[0]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for field, value, message in [
        ("activation_function", "relu", "activation_function='relu'"),
        ("n_inner", 100, "n_inner=100"),
        ("architectures", ["GPT2ForSequenceClassification"], "unsupported architecture"),
    ]:
        (tmp_path / "config.json").write_text(json.dumps(dict(config, **{field: value})))
        with pytest.raises(CheckpointMismatchError, match=message):
            load_hf_gpt2(tmp_path)


def test_the_original_unprefixed_gpt2_names_load(tmp_path):
    """The original GPT-2 checkpoints hold GPT2Model's tensors (``wte.weight``, ``h.0...``)
    under a GPT2LMHeadModel config."""
    from safetensors.numpy import save_file

    from jaxllm.interop import read_hf_tensors

    model = hf_gpt2(*SHAPES[0])
    model.save_pretrained(tmp_path)
    expected = load_hf_gpt2(tmp_path)[1]
    tensors = read_hf_tensors(tmp_path)
    bare = {name.removeprefix("transformer."): value for name, value in tensors.items()}
    bare["h.0.attn.bias"] = np.tril(np.ones((24, 24), np.float32))[None, None]  # a buffer
    save_file(bare, str(tmp_path / "model.safetensors"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, load_hf_gpt2(tmp_path)[1], expected)
