"""Interpretability: attention maps against transformers' (GPT-2 and BERT), integrated gradients
against a hand-written model and its completeness, gradient × input, the linear model's
weights and contributions, the plots, and the errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.classic import LinearConfig, decision_function, fit_linear, fit_vectorizer
from jaxllm.explain import (
    AttributionError,
    NoAttentionError,
    attention_maps,
    class_logit,
    feature_contributions,
    gradient_x_input,
    integrated_gradients,
    next_token_logit,
    plot_attention,
    plot_token_attributions,
    top_features,
)
from jaxllm.models import GPT, GPTConfig, init_params
from jaxllm.models.classifiers import ClassifierConfig, TextClassifier, init_classifier

GPT_SHAPE = GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32)


def gpt(seed=0, config=GPT_SHAPE):
    return GPT(config), init_params(config, jax.random.key(seed))


def tokens_of(shape, vocab, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, shape), jnp.int32)


def classifier(encoder, seed=0, **shape):
    config = ClassifierConfig(
        encoder, vocab_size=30, num_classes=3, embed_dim=16, hidden_size=8, num_heads=2,
        max_len=12, **shape,
    )  # fmt: skip
    return TextClassifier(config), init_classifier(config, jax.random.key(seed))


def padded_batch(seed=0):
    tokens = tokens_of((3, 9), 30, seed)
    mask = jnp.asarray(np.arange(9)[None, :] < np.array([[9], [6], [3]]))
    return tokens, mask


# Attention maps ------------------------------------------------------------------------------


def test_gpt_attention_maps_equal_transformers_gpt2_attentions(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from jaxllm.interop import load_hf_gpt2

    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4, attn_implementation="eager"
    )
    model = transformers.GPT2LMHeadModel(hf_config).eval()
    model.save_pretrained(tmp_path)
    config, params = load_hf_gpt2(tmp_path)
    tokens = np.random.default_rng(0).integers(0, 50, (2, 11))
    with torch.no_grad():
        expected = model(torch.from_numpy(tokens), output_attentions=True).attentions
    maps = attention_maps(GPT(config), params, jnp.asarray(tokens, jnp.int32))
    assert list(maps) == ["h_0/attn", "h_1/attn"]
    for ours, theirs in zip(maps.values(), expected, strict=True):
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), atol=1e-5)


def test_bert_attention_maps_equal_transformers_and_never_attend_to_padding(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from jaxllm.interop import load_hf_bert
    from jaxllm.models.bert import BERT

    torch.manual_seed(0)
    hf_config = transformers.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=16, attn_implementation="eager",
    )  # fmt: skip
    model = transformers.BertModel(hf_config).eval()
    model.save_pretrained(tmp_path)
    config, params = load_hf_bert(tmp_path)
    tokens = np.random.default_rng(1).integers(0, 50, (2, 10))
    mask = np.ones((2, 10), np.int64)
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = model(
            torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask), output_attentions=True
        ).attentions
    maps = attention_maps(
        BERT(config), params, jnp.asarray(tokens, jnp.int32), attention_mask=jnp.asarray(mask, bool)
    )
    for ours, theirs in zip(maps.values(), expected, strict=True):
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), atol=1e-5)
        assert float(jnp.abs(ours[1, :, :, 6:]).max()) == 0.0


def test_recording_maps_leaves_the_output_alone_and_jit_gives_the_same_maps():
    model, params = gpt()
    tokens = tokens_of((2, 7), 40)
    logits, _ = model.apply({"params": params}, tokens, mutable=["intermediates"])
    np.testing.assert_array_equal(logits, model.apply({"params": params}, tokens))
    eager = attention_maps(model, params, tokens)
    jitted = jax.jit(lambda p, t: attention_maps(model, p, t))(params, tokens)
    for name in eager:
        np.testing.assert_allclose(eager[name], jitted[name], atol=1e-6)
        assert float(jnp.triu(eager[name][0, 0], k=1).max()) == 0.0  # causal


def test_the_transformer_classifier_maps_skip_padding_and_an_lstm_has_none():
    model, params = classifier("transformer", num_layers=2)
    tokens, mask = padded_batch()
    maps = attention_maps(model, params, tokens, mask)
    assert list(maps) == ["encoder/block_0/attn", "encoder/block_1/attn"]
    np.testing.assert_allclose(maps["encoder/block_0/attn"].sum(-1), 1.0, rtol=1e-5)
    assert float(maps["encoder/block_1/attn"][2, :, :, 3:].max()) == 0.0
    lstm, lstm_params = classifier("lstm")
    with pytest.raises(NoAttentionError, match="recorded no attention weights"):
        attention_maps(lstm, lstm_params, tokens, mask)


# Attributions --------------------------------------------------------------------------------


def bag_score_by_hand(params, embedded, mask, label):
    """The "bag" classifier written out: masked mean, ReLU layer, output logit ``label``."""
    weights = mask[:, None] / mask.sum()
    mean = (embedded * weights).sum(0)
    hidden = jax.nn.relu(mean @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    return (hidden @ params["output"]["kernel"] + params["output"]["bias"])[label]


def test_integrated_gradients_equal_a_hand_written_path_integral():
    model, params = classifier("bag", seed=3)
    tokens, mask = padded_batch(seed=3)
    result = integrated_gradients(model, params, tokens, class_logit(2), mask, steps=32)
    table = params["embedding"]["embedding"]
    for i in range(3):
        embedded = table[tokens[i]]

        def f(e, i=i):
            return bag_score_by_hand(params, e, mask[i].astype(jnp.float32), 2)

        grads = [jax.grad(f)(a * embedded) for a in np.linspace(0, 1, 33)]
        weights = np.full(33, 1 / 32)
        weights[[0, -1]] /= 2
        expected = embedded * sum(w * g for w, g in zip(weights, grads, strict=True))
        np.testing.assert_allclose(result.per_dimension[i], expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result.scores[i], f(embedded), rtol=1e-5)
        np.testing.assert_allclose(result.baseline_scores[i], f(0 * embedded), rtol=1e-5)
    np.testing.assert_allclose(result.per_token, result.per_dimension.sum(-1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("encoder", ["bilstm", "transformer"])
def test_integrated_gradients_add_up_to_the_score_change_for_classifiers(encoder):
    model, params = classifier(encoder, seed=1, num_layers=1)
    tokens, mask = padded_batch(seed=1)
    labels = jnp.asarray([0, 1, 2])
    result = integrated_gradients(model, params, tokens, class_logit(labels), mask)
    logits = np.asarray(model.apply({"params": params}, tokens, mask))
    np.testing.assert_allclose(result.scores, logits[np.arange(3), labels], rtol=1e-5, atol=1e-6)
    change = result.scores - result.baseline_scores
    np.testing.assert_allclose(result.per_token.sum(-1), change, rtol=0.01, atol=1e-3)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 1000), target=st.integers(0, 39))
def test_integrated_gradients_add_up_for_a_gpt_next_token_logit(seed, target):
    model, params = gpt(seed)
    tokens = tokens_of((2, 8), 40, seed)
    baseline = jnp.full((32,), 0.01)  # any baseline: completeness holds for each
    result = integrated_gradients(
        model, params, tokens, next_token_logit(target), baseline=baseline
    )
    change = result.scores - result.baseline_scores
    np.testing.assert_allclose(result.per_token.sum(-1), change, rtol=0.01, atol=1e-3)


def test_gradient_x_input_equals_the_hand_written_gradient_times_the_embeddings():
    model, params = classifier("bag", seed=5)
    tokens, mask = padded_batch(seed=5)
    result = gradient_x_input(model, params, tokens, class_logit(1), mask)
    table = params["embedding"]["embedding"]
    for i in range(3):
        embedded = table[tokens[i]]
        grad = jax.grad(bag_score_by_hand, argnums=1)(
            params, embedded, mask[i].astype(jnp.float32), 1
        )
        np.testing.assert_allclose(result.per_dimension[i], embedded * grad, rtol=1e-5, atol=1e-7)
        padding = jnp.where(mask[i], 0.0, jnp.abs(result.per_token[i]))
        assert float(padding.max()) == 0.0  # padding has no part


def test_attributions_bad_settings_are_named():
    model, params = gpt()
    tokens = tokens_of((1, 5), 40)
    with pytest.raises(AttributionError, match="steps must be an int >= 1"):
        integrated_gradients(model, params, tokens, next_token_logit(0), steps=0)
    with pytest.raises(AttributionError, match=r"found 0 token embeddings.*'wte', 'wpe'"):
        gradient_x_input(model, params, tokens, next_token_logit(0), embedding="missing")
    with pytest.raises(AttributionError, match="tokens must be int"):
        gradient_x_input(model, params, tokens[0], next_token_logit(0))
    positions = gradient_x_input(model, params, tokens, next_token_logit(0), embedding="wpe")
    assert positions.per_dimension.shape == (1, 5, 32)


# The linear model's own explanation -----------------------------------------------------------

DOCS = ["good great fine", "great good film", "bad awful film", "awful bad plot"] * 5
LABELS = [1, 1, 0, 0] * 5


def test_top_features_of_a_planted_problem_are_the_planted_words():
    vectorizer = fit_vectorizer(DOCS)
    model = fit_linear(vectorizer.transform(DOCS), np.array(LABELS), LinearConfig(C=10.0))
    top = top_features(model, vectorizer.terms, k=2)
    assert {term for term, _ in top[1]} == {"good", "great"}
    assert {term for term, _ in top[0]} == {"awful", "bad"}
    assert all(weight > 0 for ranked in top.values() for _, weight in ranked)


@pytest.mark.parametrize("three_classes", [False, True])
def test_contributions_and_the_bias_add_up_to_the_score(three_classes):
    labels = np.array([0, 1, 2, 2] * 5 if three_classes else LABELS)
    vectorizer = fit_vectorizer(DOCS)
    X = vectorizer.transform(DOCS)
    model = fit_linear(X, labels, LinearConfig(C=10.0))
    row = vectorizer.transform(["good film but awful plot"])
    scores = np.asarray(decision_function(model, row)).reshape(-1)
    bias = np.asarray(model.params["bias"])
    for label in range(3 if three_classes else 2):
        parts = feature_contributions(model, vectorizer.terms, row, label, k=100)
        score = scores[label] if three_classes else (scores[0] if label else -scores[0])
        own_bias = bias[label] if three_classes else (bias[0] if label else -bias[0])
        assert sum(v for _, v in parts) + own_bias == pytest.approx(score, rel=1e-4, abs=1e-5)
        assert {term for term, _ in parts} <= {"good", "film", "awful", "plot"}


def test_the_linear_explanations_refuse_mismatched_terms_and_labels():
    vectorizer = fit_vectorizer(DOCS)
    model = fit_linear(vectorizer.transform(DOCS), np.array(LABELS), LinearConfig())
    with pytest.raises(ValueError, match="terms were given"):
        top_features(model, vectorizer.terms[:-1])
    with pytest.raises(ValueError, match="label must be in"):
        feature_contributions(model, vectorizer.terms, vectorizer.transform(["good"]), 2)


# Plots ------------------------------------------------------------------------------------


def test_plots_label_every_token_and_refuse_a_mismatch(tmp_path):
    model, params = gpt()
    tokens = tokens_of((1, 6), 40)
    weights = attention_maps(model, params, tokens)["h_1/attn"][0, 1]
    labels = [f"t{i}" for i in range(6)]
    fig = plot_attention(weights, labels)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == labels
    fig = plot_token_attributions(np.arange(6) - 3.0, labels)
    assert len(fig.axes[0].patches) == 6
    with pytest.raises(ValueError, match="pick one example and head"):
        plot_attention(attention_maps(model, params, tokens)["h_1/attn"], labels)
    with pytest.raises(ValueError, match="need as many labels"):
        plot_token_attributions(np.zeros(5), labels)
