"""The encoder-decoder Transformer and the attentional LSTM: parity with PyTorch's
``nn.Transformer`` and Hugging Face's Marian positions, incremental decoding equal to teacher
forcing, padding that changes nothing, and the shared cross-attention cache."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.losses import sequence_to_sequence_loss
from jaxllm.models.lstm_seq2seq import (
    LSTMSeq2Seq,
    LSTMSeq2SeqConfig,
    attentional_logits,
    init_lstm_seq2seq_params,
    lstm_decoding,
)
from jaxllm.models.seq2seq import (
    Seq2SeqConfig,
    Seq2SeqTransformer,
    init_seq2seq_cache,
    init_seq2seq_params,
    reorder_cache,
    transformer_decoding,
)
from jaxllm.nn import MultiHeadAttention, sinusoidal_positions

CONFIG = Seq2SeqConfig(
    vocab_size=40, max_len=16, n_encoder_layer=2, n_decoder_layer=2, n_head=2, n_embd=16,
    dropout=0.0,
)  # fmt: skip
LSTM_CONFIG = LSTMSeq2SeqConfig(vocab_size=40, max_len=16, n_embd=8, hidden_size=12, n_layer=2,
                                dropout=0.0)  # fmt: skip
SOURCE_LENGTHS = np.array([7, 4, 1])


def _noisy(params, seed=5, scale=0.3):
    """Parameters with noise added, so that no token dominates (a tied model at its
    initialisation predicts its own input)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    )


def _batch(seed=0, vocab=40, lengths=SOURCE_LENGTHS, source_len=7, target_len=6):
    rng = np.random.default_rng(seed)
    source = rng.integers(1, vocab, (len(lengths), source_len)).astype(np.int32)
    mask = np.arange(source_len)[None] < lengths[:, None]
    target = rng.integers(1, vocab, (len(lengths), target_len)).astype(np.int32)
    return jnp.asarray(np.where(mask, source, 0)), jnp.asarray(mask), jnp.asarray(target)


@pytest.fixture(scope="module")
def transformer():
    model = Seq2SeqTransformer(CONFIG)
    return model, _noisy(init_seq2seq_params(CONFIG, jax.random.key(0)))


@pytest.fixture(scope="module")
def lstm():
    model = LSTMSeq2Seq(LSTM_CONFIG)
    return model, _noisy(init_lstm_seq2seq_params(LSTM_CONFIG, jax.random.key(0)))


def test_sinusoidal_positions_equal_marians():
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    expected = MarianSinusoidalPositionalEmbedding(50, 24).create_weight().numpy()
    np.testing.assert_allclose(sinusoidal_positions(jnp.arange(50), 24), expected, atol=2e-5)


def _torch_transformer(params, config: Seq2SeqConfig) -> torch.nn.Transformer:
    """PyTorch's pre-LayerNorm nn.Transformer holding ``params``."""
    width = config.n_embd
    model = torch.nn.Transformer(
        width, config.n_head, config.n_encoder_layer, config.n_decoder_layer,
        config.mlp_ratio * width, dropout=0.0,
        activation=lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        batch_first=True, norm_first=True,
    )  # fmt: skip

    def tensor(x, transpose=False):
        x = np.asarray(x)
        return torch.tensor(x.T.copy() if transpose else x)

    def attention(module, p, qkv=None):
        weight = qkv if qkv is not None else np.asarray(p["c_attn"]["kernel"]).T
        module.in_proj_weight.data = torch.tensor(weight)
        bias = (
            p["c_attn"]["bias"]
            if qkv is None
            else np.concatenate([p["q_proj"]["bias"], p["kv_proj"]["bias"]])
        )
        module.in_proj_bias.data = tensor(bias)
        module.out_proj.weight.data = tensor(p["c_proj"]["kernel"], transpose=True)
        module.out_proj.bias.data = tensor(p["c_proj"]["bias"])

    def norm(module, p):
        module.weight.data, module.bias.data = tensor(p["scale"]), tensor(p["bias"])

    def feed_forward(layer, p):  # c_proj's kernel is stored [out, in], as torch's
        layer.linear1.weight.data = tensor(p["c_fc"]["kernel"], transpose=True)
        layer.linear1.bias.data = tensor(p["c_fc"]["bias"])
        layer.linear2.weight.data = tensor(p["c_proj"]["kernel"])
        layer.linear2.bias.data = tensor(p["c_proj"]["bias"])

    for i, layer in enumerate(model.encoder.layers):
        p = params[f"encoder_{i}"]
        attention(layer.self_attn, p["attn"])
        norm(layer.norm1, p["ln_1"]), norm(layer.norm2, p["ln_2"]), feed_forward(layer, p["mlp"])
    for i, layer in enumerate(model.decoder.layers):
        p = params[f"decoder_{i}"]
        attention(layer.self_attn, p["attn"])
        cross = p["cross_attn"]
        qkv = np.concatenate([np.asarray(cross["q_proj"]["kernel"]).T,
                              np.asarray(cross["kv_proj"]["kernel"]).T])  # fmt: skip
        attention(layer.multihead_attn, cross, qkv)
        norm(layer.norm1, p["ln_1"]), norm(layer.norm2, p["ln_cross"])
        norm(layer.norm3, p["ln_2"]), feed_forward(layer, p["mlp"])
    norm(model.encoder.norm, params["encoder_norm"])
    norm(model.decoder.norm, params["decoder_norm"])
    return model.eval()


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # norm_first has none
def test_transformer_equals_pytorchs(transformer):
    model, params = transformer
    source, mask, target = _batch()
    ours = np.asarray(model.apply({"params": params}, source, mask, target))
    table = np.asarray(params["embed"]["embedding"])

    def embed(ids):  # scaled embeddings plus sinusoids, as the model's
        ids = np.asarray(ids)
        positions = np.asarray(sinusoidal_positions(jnp.arange(ids.shape[1]), CONFIG.n_embd))
        return torch.tensor((table[ids] * np.sqrt(CONFIG.n_embd) + positions).astype(np.float32))

    reference = _torch_transformer(params, CONFIG)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(target.shape[1])
    padding = torch.tensor(~np.asarray(mask))
    with torch.no_grad():
        out = reference(
            embed(source),
            embed(target),
            tgt_mask=causal,
            tgt_is_causal=True,
            src_key_padding_mask=padding,
            memory_key_padding_mask=padding,
        )
    np.testing.assert_allclose(ours, out.numpy() @ table.T, rtol=1e-4, atol=1e-4)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_decoding_step_by_step_equals_teacher_forcing(transformer, seed):
    model, params = transformer
    source, mask, target = _batch(seed)
    full = model.apply({"params": params}, source, mask, target)
    memory = model.apply({"params": params}, source, mask, method=Seq2SeqTransformer.encode)
    cache = init_seq2seq_cache(CONFIG, mask, max_len=10)
    steps = []
    for t in range(target.shape[1]):
        logits, cache = model.apply({"params": params}, target[:, t], cache,
                                    memory if t == 0 else None,
                                    method=Seq2SeqTransformer.decode_step)  # fmt: skip
        steps.append(logits)
    chex.assert_trees_all_close(jnp.stack(steps, 1), full, atol=2e-5, rtol=2e-5)
    assert all(layer.cross_attention is not None for layer in cache.layers)


def test_later_steps_project_no_source(transformer):
    """The first step projects the source for each decoder layer's cross-attention (one
    more matrix product a layer); later steps read the projections from the cache."""
    model, params = transformer
    source, mask, target = _batch()
    memory = model.apply({"params": params}, source, mask, method=Seq2SeqTransformer.encode)
    cache = init_seq2seq_cache(CONFIG, mask, max_len=8)

    def step(tokens, cache, memory):
        return model.apply({"params": params}, tokens, cache, memory,
                           method=Seq2SeqTransformer.decode_step)  # fmt: skip

    def products(*args):
        return str(jax.make_jaxpr(step)(*args)).count("dot_general")

    first = products(target[:, 0], cache, memory)
    _, cache = step(target[:, 0], cache, memory)
    assert first - products(target[:, 1], cache, None) == CONFIG.n_decoder_layer
    with pytest.raises(ValueError, match="not after"):
        step(target[:, 1], cache, memory)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_source_padding_changes_nothing(kind, transformer, lstm):
    model, params = transformer if kind == "transformer" else lstm
    source, mask, target = _batch(lengths=np.array([4, 4]))
    short = model.apply({"params": params}, source[:, :4], mask[:, :4], target)
    padded_source = source.at[:, 4:].set(7)  # whatever sits under the mask
    padded = model.apply({"params": params}, padded_source, mask, target)
    chex.assert_trees_all_close(short, padded, atol=1e-5, rtol=1e-5)


def test_cross_attention_from_projected_keys_equals_from_the_context():
    layer = MultiHeadAttention(num_heads=2)
    x, context = jnp.ones((2, 3, 8)), jax.random.normal(jax.random.key(1), (2, 5, 8))
    params = layer.init(jax.random.key(0), x, context)["params"]
    direct, cache = layer.apply({"params": params}, x, context)
    cached, _ = layer.apply({"params": params}, x, context_cache=cache)
    chex.assert_trees_all_close(direct, cached, atol=1e-6)
    with pytest.raises(ValueError, match="either context or context_cache"):
        layer.apply({"params": params}, x, context, context_cache=cache)


def test_reorder_cache_picks_rows(transformer):
    model, params = transformer
    source, mask, target = _batch()
    memory = model.apply({"params": params}, source, mask, method=Seq2SeqTransformer.encode)
    _, cache = model.apply({"params": params}, target[:, 0], init_seq2seq_cache(CONFIG, mask, 8),
                           memory, method=Seq2SeqTransformer.decode_step)  # fmt: skip
    rows = jnp.array([2, 0, 0])
    picked = reorder_cache(cache, rows)
    heads = CONFIG.n_head
    for new, old in enumerate(rows.tolist()):
        for layer, before in zip(picked.layers, cache.layers, strict=True):
            for kv, kv_before in ((layer.self_attention, before.self_attention),
                                  (layer.cross_attention, before.cross_attention)):  # fmt: skip
                np.testing.assert_array_equal(
                    kv.keys[new * heads : (new + 1) * heads],
                    kv_before.keys[old * heads : (old + 1) * heads],
                )
    np.testing.assert_array_equal(picked.source_mask, np.asarray(mask)[rows])


def test_lstm_decoding_step_by_step_equals_teacher_forcing(lstm):
    model, params = lstm
    source, mask, target = _batch()
    full = model.apply({"params": params}, source, mask, target)
    decoding = lstm_decoding(model)
    logits, state = decoding.start(params, source, mask, target[:, 0], 6)
    steps = [logits]
    for t in range(1, target.shape[1]):
        logits, state = decoding.step(params, target[:, t], state)
        steps.append(logits)
    chex.assert_trees_all_close(jnp.stack(steps, 1), full, atol=2e-5, rtol=2e-5)


def test_luong_attention_equals_a_hand_computation():
    rng = np.random.default_rng(0)
    hidden, vocab, width = 6, 11, 4
    p = {
        "attention": rng.normal(size=(hidden, hidden)),
        "combine": rng.normal(size=(2 * hidden, hidden)),
        "combine_bias": rng.normal(size=hidden),
        "output": rng.normal(size=(hidden, width)),
        "embed": {"embedding": rng.normal(size=(vocab, width))},
        "output_bias": rng.normal(size=vocab),
    }
    h, memory = rng.normal(size=(2, 3, hidden)), rng.normal(size=(2, 5, hidden))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    logits, weights = attentional_logits(jax.tree.map(jnp.asarray, p), jnp.asarray(h),
                                         jnp.asarray(memory), jnp.asarray(mask))  # fmt: skip
    for b in range(2):
        real = memory[b][mask[b]]
        for t in range(3):
            scores = real @ (h[b, t] @ p["attention"])
            a = np.exp(scores - scores.max())
            a /= a.sum()
            c = a @ real
            h_tilde = np.tanh(np.concatenate([c, h[b, t]]) @ p["combine"] + p["combine_bias"])
            expected = (h_tilde @ p["output"]) @ p["embed"]["embedding"].T + p["output_bias"]
            np.testing.assert_allclose(logits[b, t], expected, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(weights[b, t][mask[b]], a, rtol=1e-4, atol=1e-6)
            assert np.all(np.asarray(weights[b, t])[~mask[b]] == 0)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_loss_jit_equals_eager_and_gradients_are_finite(kind, transformer, lstm):
    model, params = transformer if kind == "transformer" else lstm
    source, mask, target = _batch()
    batch = {"source": source, "source_mask": mask, "target_in": target,
             "target_out": jnp.roll(target, -1, axis=1), "target_mask": target > 3}  # fmt: skip
    loss_fn = sequence_to_sequence_loss(model, label_smoothing=0.1)
    eager, metrics = loss_fn(params, batch, None)
    jitted, _ = jax.jit(loss_fn)(params, batch, None)
    chex.assert_trees_all_close(eager, jitted, rtol=1e-5)
    assert metrics["tokens"] == float(np.sum(np.asarray(target) > 3))
    grads = jax.grad(lambda p: loss_fn(p, batch, jax.random.key(1))[0])(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_bad_inputs_are_refused(transformer):
    model, params = transformer
    source, mask, target = _batch()
    with pytest.raises(ValueError, match="source: .*outside the vocabulary"):
        model.apply({"params": params}, source.at[0, 0].set(40), mask, target)
    long = jnp.zeros((1, 17), jnp.int32)
    with pytest.raises(ValueError, match="target: .*longer than the model's context"):
        model.apply({"params": params}, source[:1], mask[:1], long)
    with pytest.raises(ValueError, match="cannot decode 17 tokens"):
        init_seq2seq_cache(CONFIG, mask, 17)
    with pytest.raises(Exception, match="vocab_size is 0"):
        init_seq2seq_params(Seq2SeqConfig(n_embd=16, n_head=2), jax.random.key(0))
    with pytest.raises(Exception, match="n_embd must be even|divisible"):
        Seq2SeqConfig(n_embd=15, n_head=3)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_reordering_beams_of_one_source_may_leave_the_source_in_place(kind, transformer, lstm):
    (model, params), make = (
        (transformer, transformer_decoding) if kind == "transformer" else (lstm, lstm_decoding)
    )
    decoding = make(model)
    source, mask, target = _batch()
    _, state = decoding.start(params, source, mask, target[:, 0], 8)
    beams = decoding.reorder(state, jnp.array([0, 0, 1, 1, 2, 2]), False)  # two beams a source
    _, beams = decoding.step(params, jnp.arange(6) % 5 + 3, beams)  # the beams now differ
    within = jnp.array([1, 1, 3, 2, 4, 5])  # each row's new parent has the same source
    for same_sources in (True, False):
        logits, _ = decoding.step(params, target[[0, 0, 1, 1, 2, 2], 1],
                                  decoding.reorder(beams, within, same_sources))  # fmt: skip
        if same_sources:
            expected = logits
    chex.assert_trees_all_close(logits, expected, atol=1e-6)
