"""The image-classification recipe on the digits with tiny models: the run folder, scores that
agree with its predictions, batches, resuming, folders of images, bad input."""

import dataclasses
import json

import chex
import jax
import numpy as np
import pytest
from PIL import Image
from scripts import load_script

from jaxllm.config import ConfigError
from jaxllm.data import (
    AugmentConfig,
    ImagesError,
    LabelledImages,
    load_digits,
    stratified_split,
    write_image_folders,
)
from jaxllm.losses import image_classification_loss
from jaxllm.models.cnn import CNNConfig
from jaxllm.models.image_classifiers import init_image_classifier
from jaxllm.models.vit import ViTConfig
from jaxllm.recipes.image_classify import (
    ImageBatches,
    ImageClassifyConfig,
    image_model,
    load_image_classifier,
    train_image_classifier,
)
from jaxllm.train import CheckpointError


def tiny(tmp_path, **overrides) -> ImageClassifyConfig:
    settings = dict(
        name="digits",
        out_dir=str(tmp_path),
        epochs=2,
        cnn=CNNConfig(channels=(4,), hidden=16),
        vit=ViTConfig(n_layer=1, n_head=2, n_embd=8, patch_size=4, dropout=0.0),
        progress=False,
        compilation_cache="",
    )
    return ImageClassifyConfig(**(settings | overrides))


@pytest.fixture(scope="module")
def digits():
    """A fifth of the digits, split 70/10/20 with every class in each split."""
    data = load_digits()
    return stratified_split(data.subset(np.arange(0, len(data), 5)), (0.7, 0.1, 0.2), 0)


def test_the_run_folder_and_scores_that_agree_with_its_predictions(tmp_path, digits):
    run = train_image_classifier(tiny(tmp_path), data=digits)
    folder = tmp_path / "digits"
    for name in ("config.json", "metrics.jsonl", "summary.json", "loss.png", "confusion.png",
                 "misclassified.png"):  # fmt: skip
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    test = digits[2]
    predicted = run.predict(test.images)
    assert summary["test"]["accuracy"] == pytest.approx(np.mean(predicted == test.labels))
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (test.labels, predicted), 1)
    np.testing.assert_array_equal(summary["test"]["confusion"], confusion)
    assert summary["images"] == {"train": len(digits[0]), "dev": len(digits[1]), "test": len(test)}
    assert run.config.cnn.image_shape == (8, 8, 1) and run.config.cnn.num_classes == 10
    loaded = load_image_classifier(folder)
    np.testing.assert_array_equal(loaded.predict(test.images), predicted)


def test_batches_are_a_pure_function_of_the_step_and_cover_each_epoch():
    data = load_digits().subset(np.arange(70))
    batches = ImageBatches(data, batch_size=16, seed=3)
    epoch = [batches(step) for step in range(5)]  # 70 images: 5 batches, the last filled up
    seen = np.concatenate([b["labels"] for b in epoch])
    assert len(seen) == 80
    images = np.concatenate([b["images"] for b in epoch])
    rows = {data.images[i].tobytes() for i in range(70)}
    assert {image.tobytes() for image in images} == rows
    again = ImageBatches(data, batch_size=16, seed=3)
    for step in (0, 4, 7, 12):
        np.testing.assert_array_equal(again(step)["images"], batches(step)["images"])
    assert not np.array_equal(batches(0)["images"], batches(5)["images"])  # a new epoch order


def last_record(folder):
    """The record of the last step in a run folder's metrics.jsonl (resumes appended)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return max(records, key=lambda r: r["step"])


def test_resume_equals_an_uninterrupted_run(tmp_path, digits):
    whole = train_image_classifier(tiny(tmp_path, name="whole", epochs=4), data=digits)
    # The cosine decay is laid out for the epochs a run starts with: give the first part the
    # whole run's.
    decay = whole.config.optimizer.decay_steps
    optimizer = dataclasses.replace(ImageClassifyConfig().optimizer, decay_steps=decay)
    first = tiny(tmp_path, name="parts", epochs=2, optimizer=optimizer)
    train_image_classifier(first, data=digits)
    resumed = train_image_classifier(dataclasses.replace(first, epochs=4, resume=True), data=digits)
    assert resumed.best_step == whole.best_step
    chex.assert_trees_all_close(resumed.params, whole.params, rtol=1e-5, atol=1e-6)
    assert resumed.summary["test"] == whole.summary["test"]
    # The steps after the resume too: the last step's training and dev losses.
    last, reference = last_record(tmp_path / "parts"), last_record(tmp_path / "whole")
    assert last["step"] == reference["step"] == 4 * -(-len(digits[0]) // 64)  # 4 epochs
    for name in ("loss", "val_loss"):
        assert last[name] == pytest.approx(reference[name], rel=1e-5)


def test_resume_refuses_other_training_images(tmp_path, digits):
    train_image_classifier(tiny(tmp_path), data=digits)
    other = (digits[0].subset(np.arange(len(digits[0]) - 1)), digits[1], digits[2])
    with pytest.raises(CheckpointError, match="training images differ"):
        train_image_classifier(tiny(tmp_path, epochs=3, resume=True), data=other)


def test_a_folder_of_images_resized_and_converted(tmp_path, digits):
    root = write_image_folders(digits[0].subset(np.arange(0, len(digits[0]), 2)), tmp_path / "png")
    first = next((root / "3").iterdir())
    Image.open(first).convert("RGBA").resize((12, 12)).save(first)  # another mode and size
    config = tiny(tmp_path, data=str(root), image_size=(8, 8), model_kind="vit", epochs=1)
    run = train_image_classifier(config)
    assert run.config.vit.image_shape == (8, 8, 1)
    with pytest.raises(ImagesError, match="resize them"):
        run.predict(np.zeros((2, 12, 12, 1), np.float32))
    with pytest.raises(ImagesError, match="divide by 255"):
        run.predict(np.full((2, 8, 8, 1), 200, np.uint8))


def test_augmentation_applies_while_training_only():
    model = image_model(CNNConfig(image_shape=(8, 8, 1), num_classes=10, dropout=0.0))
    params = init_image_classifier(model, jax.random.key(0))
    batch = {"images": load_digits().images[:32], "labels": load_digits().labels[:32]}
    plain = image_classification_loss(model)
    moved = image_classification_loss(model, AugmentConfig(max_shift=2.0, max_rotation=20.0))
    assert float(moved(params, batch, None)[0]) == float(plain(params, batch, None)[0])
    key = jax.random.key(1)
    assert float(moved(params, batch, key)[0]) != pytest.approx(float(plain(params, batch, key)[0]))


def test_bad_settings_are_refused_by_name(tmp_path, digits):
    with pytest.raises(ConfigError, match="model_kind must be"):
        ImageClassifyConfig(model_kind="resnet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="leave some data for training"):
        ImageClassifyConfig(dev_fraction=0.5, test_fraction=0.5)
    one_class = LabelledImages(digits[0].images[:4], np.zeros(4, np.int64), ("0", "1"))
    with pytest.raises(ValueError, match="one class"):
        train_image_classifier(tiny(tmp_path), data=(one_class, digits[1], digits[2]))


def test_the_script_trains_and_reports(tmp_path, capsys):
    script = load_script("experiments/classify_images.py")
    code = script.main(["--name", "cli", "--out-dir", str(tmp_path), "--epochs", "1",
                        "--cnn.channels", "4", "--cnn.hidden", "8", "--no-progress",
                        "--compilation-cache", ""])  # fmt: skip
    assert code == 0
    assert "test accuracy" in capsys.readouterr().out
    assert script.main(["--name", "cli", "--out-dir", str(tmp_path), "--data", "nowhere"]) == 2
