"""Labelled images: scikit-learn's digits, image folders read and written with Pillow, and the
check of a batch against the shape a model reads."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxllm.data import (
    ImagesError,
    LabelledImages,
    LabelsError,
    align_labels,
    check_image_batch,
    load_digits,
    read_image_folders,
    stratified_split,
    write_image_folders,
)


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def gray(values, size=(3, 4)) -> Image.Image:
    """An 8-bit grayscale image of ``size = (height, width)`` filled from ``values``."""
    return Image.fromarray(np.resize(np.asarray(values, np.uint8), size))


def two_classes(root: Path, size=(3, 4)) -> Path:
    save(gray([10, 20], size), root / "b" / "x.png")
    save(gray([30], size), root / "a" / "y.png")
    save(gray([40], size), root / "a" / "x.png")
    return root


def small_set(count=6, shape=(3, 4, 1), classes=("a", "b")) -> LabelledImages:
    pixels = np.random.default_rng(0).integers(0, 256, (count, *shape)).astype(np.float32) / 255
    return LabelledImages(pixels, np.arange(count) % len(classes), classes)


# --- LabelledImages ----------------------------------------------------------------------------


def test_labelled_images_fields_subset_and_shape():
    data = small_set()
    assert len(data) == 6 and data.shape == (3, 4, 1) and data.labels.dtype == np.int64
    part = data.subset([4, 1])
    assert isinstance(part, LabelledImages) and part.label_names == ("a", "b")
    np.testing.assert_array_equal(part.images, data.images[[4, 1]])
    assert part.labels.tolist() == [0, 1]
    assert len(data.subset([])) == 0


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((2, 3, 4), np.float32), [0, 1], r"float32\[n, height, width, channels\].*"),
        (np.zeros((2, 3, 4, 1), np.uint8), [0, 1], "divide by 255"),
        (np.zeros((2, 3, 4, 1), np.float64), [0, 1], r"astype\(np.float32\)"),
        (np.full((2, 3, 4, 1), 2.0, np.float32), [0, 1], r"\[0, 1\], got 2..2"),
        (np.full((2, 3, 4, 1), np.nan, np.float32), [0, 1], "NaN"),
        (np.zeros((2, 3, 4, 1), np.float32), [0], "one label per image"),
        (np.zeros((2, 3, 4, 1), np.float32), [0.0, 1.0], "integer class indices"),
        (np.zeros((2, 3, 4, 1), np.float32), [0, 2], r"labels must lie in 0..1"),
    ],
)
def test_labelled_images_rejects_bad_fields(images, labels, match):
    with pytest.raises(ImagesError, match=match):
        LabelledImages(images, np.asarray(labels), ("a", "b"))


def test_stratified_split_of_images_keeps_type_and_class_shares():
    data = small_set(count=40, classes=("a", "b", "c", "d"))
    train, test = stratified_split(data, (0.75, 0.25), seed=0)
    assert isinstance(train, LabelledImages) and isinstance(test, LabelledImages)
    assert np.bincount(train.labels).tolist() == [8, 8, 8, 8]
    assert np.bincount(test.labels).tolist() == [2, 2, 2, 2]
    every = np.concatenate([train.images, test.images]).reshape(40, -1)
    assert sorted(map(bytes, every)) == sorted(map(bytes, data.images.reshape(40, -1)))


def test_align_labels_of_images_matches_classes_by_name():
    data = small_set(count=4)  # labels 0, 1, 0, 1 of ("a", "b")
    aligned = align_labels(data, ("b", "a", "c"), "test")
    assert isinstance(aligned, LabelledImages) and aligned.label_names == ("b", "a", "c")
    assert aligned.labels.tolist() == [1, 0, 1, 0] and aligned.images is data.images
    with pytest.raises(LabelsError, match=r"the test set has labels the training set lacks"):
        align_labels(data, ("a",), "test")


# --- load_digits -------------------------------------------------------------------------------


def test_load_digits_is_sklearns_digits_over_16():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = load_digits()
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.dtype == np.float32
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0
    assert digits.label_names == tuple("0123456789")
    reference = datasets.load_digits()
    np.testing.assert_array_equal(digits.images[..., 0] * 16, reference.images)
    np.testing.assert_array_equal(digits.labels, reference.target)
    assert np.bincount(digits.labels).min() >= 170  # every digit, about 180 each


# --- read_image_folders ------------------------------------------------------------------------


def test_read_image_folders_classes_order_and_values(tmp_path):
    data = read_image_folders(two_classes(tmp_path))
    assert data.label_names == ("a", "b") and data.labels.tolist() == [0, 0, 1]
    assert data.images.shape == (3, 3, 4, 1) and data.images.dtype == np.float32
    # Within a class files come in name order: a/x.png (40) before a/y.png (30).
    np.testing.assert_array_equal(data.images[:2, 0, 0, 0] * 255, [40, 30])
    np.testing.assert_array_equal(data.images[2, 0, :2, 0] * 255, [10, 20])


def test_write_then_read_round_trips(tmp_path):
    for shape in ((3, 4, 1), (5, 2, 3)):
        data = small_set(count=7, shape=shape)  # multiples of 1/255: exact
        root = write_image_folders(data, tmp_path / f"set{shape[-1]}")
        names = sorted(path.name for path in (root / "a").iterdir())
        assert names[:2] == ["00000.png", "00001.png"]
        back = read_image_folders(root, mode="L" if shape[-1] == 1 else "RGB")
        order = np.argsort(data.labels, kind="stable")  # read back grouped by class
        np.testing.assert_array_equal(back.images, data.images[order])
        np.testing.assert_array_equal(back.labels, data.labels[order])
        assert back.label_names == data.label_names


def test_write_rounds_to_multiples_of_one_255th(tmp_path):
    pixels = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4, 1)
    data = LabelledImages(pixels, np.array([0, 1]), ("a", "b"))
    back = read_image_folders(write_image_folders(data, tmp_path / "out"))
    np.testing.assert_allclose(back.images, data.images, atol=0.5 / 255 + 1e-7)


def test_write_refuses_a_non_empty_folder_bad_names_and_channels(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(ImagesError, match="not an empty folder"):
        write_image_folders(small_set(), tmp_path)
    with pytest.raises(ImagesError, match="cannot be a class folder"):
        write_image_folders(small_set(classes=("a", "../b")), tmp_path / "new")
    with pytest.raises(ImagesError, match=r"got 2 channels; select"):
        write_image_folders(small_set(shape=(3, 4, 2)), tmp_path / "new")


def test_rgba_and_palette_images_are_converted_like_pillow(tmp_path):
    colours = np.random.default_rng(1).integers(0, 256, (3, 4, 4)).astype(np.uint8)
    rgba = Image.fromarray(colours, "RGBA")
    palette = Image.fromarray(colours[..., :3]).quantize(colors=5)
    save(rgba, tmp_path / "rgba" / "1.png")
    save(palette, tmp_path / "palette" / "1.png")
    for mode in ("L", "RGB"):
        data = read_image_folders(tmp_path, mode=mode)
        assert data.label_names == ("palette", "rgba") and data.shape == (3, 4, len(mode))
        for image, expected in zip(data.images, (palette, rgba), strict=True):
            reference = np.asarray(expected.convert(mode), np.float32).reshape(3, 4, -1) / 255
            np.testing.assert_array_equal(image, reference)
    # RGB: the stored colour with alpha dropped, as written.
    np.testing.assert_array_equal(data.images[1] * 255, colours[..., :3])


def test_known_rgb_to_grayscale_values(tmp_path):
    # Pillow's L = (299 R + 587 G + 114 B) / 1000, rounded.
    save(Image.new("RGB", (2, 2), (255, 0, 0)), tmp_path / "red" / "r.png")
    save(Image.new("RGB", (2, 2), (0, 0, 255)), tmp_path / "blue" / "b.bmp")
    data = read_image_folders(tmp_path)
    np.testing.assert_array_equal(np.round(data.images[:, 0, 0, 0] * 255), [29, 76])


def test_sixteen_bit_png_is_scaled_by_65535_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768], [65535, 1000, 50000]], np.uint16)
    save(Image.fromarray(values), tmp_path / "deep" / "1.png")
    save(gray([0], (2, 3)), tmp_path / "flat" / "1.png")
    assert Image.open(tmp_path / "deep" / "1.png").mode.startswith("I")
    for mode in ("L", "RGB"):
        data = read_image_folders(tmp_path, mode=mode)
        expected = (values / 65535).astype(np.float32)
        np.testing.assert_allclose(data.images[0], np.repeat(expected[..., None], len(mode), -1))


def test_size_resizes_with_pillows_bilinear_filter(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (6, 8)).astype(np.uint8)
    save(Image.fromarray(pixels), tmp_path / "a" / "big.png")
    save(gray([5], (2, 3)), tmp_path / "b" / "small.png")
    data = read_image_folders(tmp_path, size=(4, 5))
    assert data.images.shape == (2, 4, 5, 1)
    reference = Image.fromarray(pixels).resize((5, 4), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(data.images[0, ..., 0] * 255, np.asarray(reference), atol=1.0)
    np.testing.assert_allclose(data.images[1], 5 / 255, atol=1e-6)


def test_mismatched_sizes_name_the_file_both_sizes_and_the_fix(tmp_path):
    two_classes(tmp_path)
    save(gray([1], (5, 6)), tmp_path / "b" / "z.png")
    with pytest.raises(ImagesError, match=r"z\.png' is 5×6 pixels .* is 3×4; .*size=\(3, 4\)"):
        read_image_folders(tmp_path)


@pytest.mark.parametrize("cut", ["header only", "truncated"])
def test_corrupt_image_is_named(tmp_path, cut):
    two_classes(tmp_path)
    whole = save(gray(range(0, 250, 7), (20, 30)), tmp_path / "whole.png").read_bytes()
    broken = whole[:12] if cut == "header only" else whole[: len(whole) // 2]
    (tmp_path / "b" / "broken.png").write_bytes(broken)
    with pytest.raises(ImagesError, match=r"Cannot read '.*broken\.png' as an image .*remove"):
        read_image_folders(tmp_path)


def test_non_image_and_hidden_files_are_ignored(tmp_path):
    two_classes(tmp_path)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".x.png").write_bytes(b"hidden, unreadable")
    (tmp_path / ".cache").mkdir()
    save(gray([7]), tmp_path / "b" / "UPPER.PNG")
    save(gray([9]), tmp_path / "b" / "photo.JPEG")
    save(gray([11]), tmp_path / "b" / "w.gif")
    data = read_image_folders(tmp_path)
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 1] and data.label_names == ("a", "b")


def test_missing_root_empty_or_single_class(tmp_path):
    with pytest.raises(FileNotFoundError, match="No folder at .*one sub-folder per class"):
        read_image_folders(tmp_path / "absent")
    with pytest.raises(ImagesError, match="no class sub-folders"):
        read_image_folders(tmp_path)
    save(gray([1]), tmp_path / "only" / "1.png")
    with pytest.raises(LabelsError, match="one class folder \\('only'\\)"):
        read_image_folders(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ImagesError, match=r"'.*empty' holds no image files \(.png"):
        read_image_folders(tmp_path)


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"mode": "RGBA"}, r"mode must be one of \['L', 'RGB'\]"),
        ({"size": (4,)}, r"size must be \(height, width\)"),
        ({"size": (0, 4)}, "at least 1 pixel"),
    ],
)
def test_read_rejects_bad_mode_and_size(tmp_path, arguments, match):
    with pytest.raises(ImagesError, match=match):
        read_image_folders(two_classes(tmp_path), **arguments)


# --- check_image_batch -------------------------------------------------------------------------


def test_check_image_batch_passes_a_good_batch_as_float32():
    batch = np.full((2, 8, 8, 1), 0.5)
    checked = check_image_batch(batch, (8, 8, 1))
    assert checked.dtype == np.float32 and checked.shape == (2, 8, 8, 1)
    assert check_image_batch(np.zeros((0, 8, 8, 1), np.float32), (8, 8, 1)).shape[0] == 0


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((8, 8, 1)), r"got shape \(8, 8, 1\); add the batch axis \(images\[None\]\)"),
        (np.zeros((8, 8)), r"image\[None, \.\.\., None\]"),
        (
            np.zeros((2, 28, 28, 1)),
            r"reads 8×8×1 images, got 28×28×1: resize them \(read_image_folders\(size=\(8, 8\)\)\)",
        ),
        (
            np.zeros((2, 8, 8, 3)),
            r"got 3 channels \(RGB\); the model reads 1 \(grayscale\): read with mode='L'",
        ),
        (np.zeros((2, 8, 8, 1), np.uint8), r"got uint8 pixels; .*divide by 255"),
        (np.full((2, 8, 8, 1), 255.0), r"got 255\.\.255; they look like 0\.\.255 .*divide by 255"),
        (np.full((2, 8, 8, 1), -3.0), r"\[0, 1\], got -3\.\.-3; rescale them"),
    ],
)
def test_check_image_batch_names_the_problem_and_the_fix(images, match):
    with pytest.raises(ImagesError, match=match):
        check_image_batch(images, (8, 8, 1))


def test_check_image_batch_rejects_a_bad_expected_shape():
    with pytest.raises(ValueError, match=r"expected_shape must be \(height, width, channels\)"):
        check_image_batch(np.zeros((1, 8, 8, 1)), (8, 8))
