"""The image classifiers: the CNN and the patch Transformer against PyTorch given their weights,
patches against a loop, batches against single images, jit against eager, attention maps."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scripts import load_script

from jaxllm.config import ConfigError
from jaxllm.data import ImagesError
from jaxllm.explain import attention_maps
from jaxllm.models.cnn import CNN, CNNConfig
from jaxllm.models.image_classifiers import init_image_classifier
from jaxllm.models.vit import ViT, ViTConfig, image_patches

SHAPE = (8, 8, 1)
CNN_CONFIG = CNNConfig(image_shape=SHAPE, num_classes=10, channels=(8, 16), hidden=32)
VIT_CONFIG = ViTConfig(image_shape=SHAPE, num_classes=10, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def models():
    out = {}
    for name, model in (("cnn", CNN(CNN_CONFIG)), ("vit", ViT(VIT_CONFIG))):
        out[name] = (model, init_image_classifier(model, jax.random.key(0)))
    return out


def _images(n: int, seed: int = 0, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


@settings(max_examples=10, deadline=None)
@given(
    patch=st.sampled_from([1, 2, 4]),
    rows=st.integers(1, 3),
    cols=st.integers(1, 3),
    channels=st.sampled_from([1, 3]),
)
def test_patches_equal_a_loop_over_the_grid(patch, rows, cols, channels):
    images = _images(2, shape=(rows * patch, cols * patch, channels))
    expected = [
        [images[b, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch].reshape(-1)
         for r in range(rows) for c in range(cols)]
        for b in range(2)
    ]  # fmt: skip
    np.testing.assert_array_equal(image_patches(jnp.asarray(images), patch), np.array(expected))


@pytest.mark.parametrize("name", ["cnn", "vit"])
def test_a_batch_equals_its_images_one_by_one_and_jit_equals_eager(models, name):
    model, params = models[name]
    images = _images(5)
    batch = model.apply({"params": params}, images)
    chex.assert_shape(batch, (5, 10))
    one_by_one = np.concatenate([model.apply({"params": params}, x[None]) for x in images])
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-5, atol=1e-6)
    jitted = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, images)
    np.testing.assert_allclose(batch, jitted, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "vit"])
def test_dropout_only_while_training(models, name):
    model, params = models[name]
    images = _images(4)
    eval_twice = [model.apply({"params": params}, images) for _ in range(2)]
    np.testing.assert_array_equal(*eval_twice)
    trained = [
        model.apply({"params": params}, images, train=True, rngs={"dropout": jax.random.key(k)})
        for k in (1, 2)
    ]
    assert not np.allclose(trained[0], trained[1])


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # norm_first has none
@pytest.mark.parametrize("name", ["cnn", "vit"])
def test_equals_the_same_model_in_pytorch(models, name):
    bench = load_script("benchmarks/vision_throughput.py")
    model, params = models[name]
    host = jax.device_get(params)
    if name == "cnn":
        reference = bench.torch_cnn(CNN_CONFIG, host)
    else:
        reference = bench.torch_vit(VIT_CONFIG, host)
    images = _images(6, seed=3)
    with torch.no_grad():
        expected = reference.eval()(torch.from_numpy(images)).numpy()
    ours = model.apply({"params": params}, images)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_vit_attention_maps_cover_the_class_token_and_every_patch(models):
    model, params = models["vit"]
    maps = attention_maps(model, params, _images(3))
    assert sorted(maps) == ["block_0/attn", "block_1/attn"]
    tokens = 1 + VIT_CONFIG.num_patches  # 17: the class token and 16 patches of 2x2
    for weights in maps.values():
        chex.assert_shape(weights, (3, VIT_CONFIG.n_head, tokens, tokens))
        np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-5)


def test_configs_refuse_shapes_they_cannot_build():
    with pytest.raises(ConfigError, match="patch_size that divides"):
        ViTConfig(image_shape=(8, 8, 1), num_classes=10, patch_size=3)
    with pytest.raises(ConfigError, match="below one pixel"):
        CNNConfig(image_shape=(8, 8, 1), num_classes=10, channels=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        CNNConfig(image_shape=(8, 8, 1), num_classes=1)
    with pytest.raises(ConfigError, match="image_shape must be"):
        ViTConfig(image_shape=(8, 8), num_classes=10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="0 means 'from the data'"):
        init_image_classifier(CNN(CNNConfig()), jax.random.key(0))


@pytest.mark.parametrize("name", ["cnn", "vit"])
def test_images_of_another_shape_are_refused_by_name(models, name):
    model, params = models[name]
    with pytest.raises(ImagesError, match="reads 8×8×1 images, got 16×16×1: resize"):
        model.apply({"params": params}, _images(2, shape=(16, 16, 1)))
    with pytest.raises(ImagesError, match="3 channels"):
        model.apply({"params": params}, _images(2, shape=(8, 8, 3)))
