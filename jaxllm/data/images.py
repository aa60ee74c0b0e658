"""Labelled images for classification: scikit-learn's handwritten digits, one folder of image
files per class, and a check that a batch is what a model reads.

Every image set is a :class:`LabelledImages`: pixels as ``float32[n, height, width, channels]``
in ``[0, 1]``, labels as ``int64[n]`` class indices ``0..k-1`` and the name of each class::

    digits = load_digits()                                   # 1,797 images, 8x8x1, "0".."9"
    train, val, test = stratified_split(digits, seed=0)      # LabelledImages, class shares kept
    photos = read_image_folders("pets/", size=(32, 32), mode="RGB")
    write_image_folders(train, "digits-train/")              # one folder of PNGs per class
    batch = check_image_batch(photos.images, (32, 32, 3))    # ImagesError if not what it reads

Files are read with Pillow and the digits come from scikit-learn, neither of which jaxllm needs
otherwise: ``pip install 'jaxllm[images]'``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from jaxllm.data.labelled import LabelsError, sub_folder_names

if TYPE_CHECKING:
    from PIL import Image

IMAGES_INSTALL_COMMAND = "pip install 'jaxllm[images]'"
# Pillow mode -> channels of the images it gives.
IMAGE_MODES = {"L": 1, "RGB": 3}
CHANNEL_NAMES = {1: "grayscale", 3: "RGB", 4: "RGBA"}
# Suffixes read_image_folders reads (any case); other files in a class folder are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Pillow modes of 16-bit grayscale files, whose values run 0..65535 (Pillow's own conversion
# to "L" clips them at 255 rather than scaling).
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
DIGITS_SIDE = 8
DIGITS_MAX_VALUE = 16.0  # scikit-learn's digits count ink in 4x4 blocks: 0..16
PNG_NAME_DIGITS = 5


class ImagesError(ValueError):
    """Images a reader or model cannot use: a wrong shape, channel count, dtype or value range,
    or a file that is not a readable image (the message names the problem and the fix)."""


@dataclasses.dataclass(frozen=True, eq=False)
class LabelledImages:
    """Images with one class label each.

    Attributes:
        images: ``float32[n, height, width, channels]``, values in ``[0, 1]``.
        labels: ``int64[n]``, class indices in ``0..k-1`` (any integer array is accepted and
            stored as ``int64``).
        label_names: ``k`` names; ``label_names[i]`` is the name of class ``i``.

    Equality is identity (the fields hold arrays); compare the fields.

    Raises:
        ImagesError: images that are not 4-D ``float32`` in ``[0, 1]``, or labels that are not
            one integer in ``0..k-1`` per image.
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim != 4:
            raise ImagesError(
                f"images must be float32[n, height, width, channels], got shape {images.shape}; "
                "add the channel axis (images[..., None]) to grayscale [n, height, width] images."
            )
        if images.dtype != np.float32:
            raise ImagesError(_dtype_problem(images.dtype))
        _check_pixel_range(images)
        labels = _checked_labels(np.asarray(self.labels), len(images), len(self.label_names))
        # Frozen, so the normalised copies go in through object.__setattr__.
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "label_names", tuple(self.label_names))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of every image."""
        _, height, width, channels = self.images.shape
        return height, width, channels

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelledImages:
        """The examples at ``indices`` (``int[m]``, in that order), same ``label_names``."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        return LabelledImages(self.images[index], self.labels[index], self.label_names)


def _checked_labels(labels: np.ndarray, count: int, classes: int) -> np.ndarray:
    """``labels`` as ``int64[count]``, each in ``0..classes-1``."""
    if labels.ndim != 1 or len(labels) != count:
        raise ImagesError(
            f"labels must be 1-D with one label per image; got shape {labels.shape} for "
            f"{count} images."
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ImagesError(f"labels must be integer class indices, got dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ImagesError(
            f"labels must lie in 0..{classes - 1} (one per label name), got values "
            f"{labels.min()}..{labels.max()}; pass a name for every class."
        )
    return labels.astype(np.int64)


def _dtype_problem(dtype: np.dtype) -> str:
    """Why images of ``dtype`` are refused, and the fix."""
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return (
            f"images must be float32 values in [0, 1], got {dtype} pixels; for 0..255 pixel "
            "values divide by 255 (images.astype(np.float32) / 255)."
        )
    return f"images must be float32 values in [0, 1], got {dtype}; use images.astype(np.float32)."


def _check_pixel_range(images: np.ndarray) -> None:
    """Fail unless every value of the float ``images`` is finite and in ``[0, 1]``."""
    if not images.size:
        return
    if not np.all(np.isfinite(images)):
        raise ImagesError("images hold NaN or infinite values; pixel values must lie in [0, 1].")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        hint = (
            "they look like 0..255 pixel values: divide by 255"
            if low >= 0 and high <= 255
            else "rescale them, e.g. (images - images.min()) / (images.max() - images.min())"
        )
        raise ImagesError(f"pixel values must lie in [0, 1], got {low:g}..{high:g}; {hint}.")


def check_image_batch(images: npt.ArrayLike, expected_shape: Sequence[int]) -> np.ndarray:
    """``images`` as ``float32[n, height, width, channels]``, checked against the
    ``(height, width, channels)`` a model reads.

    Args:
        images: ``float[n, height, width, channels]`` in ``[0, 1]`` (a NumPy or JAX array).
        expected_shape: ``(height, width, channels)`` the model was built for.

    Returns:
        ``float32[n, height, width, channels]``, the same values.

    Raises:
        ImagesError: a wrong rank, size or channel count, integer pixels, or values outside
            ``[0, 1]``; the message says how to fix them (resize, ``mode=``, divide by 255).
        ValueError: ``expected_shape`` is not three positive sizes.
    """
    expected = tuple(int(side) for side in expected_shape)
    if len(expected) != 3 or min(expected) < 1:
        raise ValueError(
            f"expected_shape must be (height, width, channels), three sizes >= 1, got "
            f"{tuple(expected_shape)!r}."
        )
    batch = np.asarray(images)
    check_image_shape(batch.shape, expected)
    if not np.issubdtype(batch.dtype, np.floating):
        raise ImagesError(_dtype_problem(batch.dtype))
    batch = batch.astype(np.float32, copy=False)
    _check_pixel_range(batch)
    return batch


def check_image_shape(shape: Sequence[int], expected: Sequence[int]) -> None:
    """Fail unless a batch's ``shape`` is ``(n, *expected)``, saying how to get there; a shape
    alone, so models check their (traced) inputs with it.

    Raises:
        ImagesError: a wrong rank, size or channel count.
    """
    shape = tuple(shape)
    height, width, channels = expected
    wanted = f"{height}×{width}×{channels}"
    if len(shape) != 4:
        hint = {
            3: "add the batch axis (images[None]) for one image, or the channel axis "
            "(images[..., None]) for grayscale [n, height, width] images",
            2: "add the batch and channel axes (image[None, ..., None]) for one grayscale image",
        }.get(len(shape), "pass a batch of images")
        raise ImagesError(
            f"the model reads float32[n, {height}, {width}, {channels}] batches, got shape "
            f"{shape}; {hint}."
        )
    got = f"{shape[1]}×{shape[2]}×{shape[3]}"
    if shape[1:3] != (height, width):
        raise ImagesError(
            f"the model reads {wanted} images, got {got}: resize them "
            f"(read_image_folders(size=({height}, {width})))."
        )
    if shape[3] != channels:
        mode = {1: "'L'", 3: "'RGB'"}.get(channels)
        fix = f"read with mode={mode}" if mode else "convert them"
        raise ImagesError(
            f"the model reads {wanted} images, got {shape[3]} channels "
            f"({CHANNEL_NAMES.get(shape[3], 'unknown')}); the model reads {channels} "
            f"({CHANNEL_NAMES.get(channels, 'unknown')}): {fix}."
        )


# ---------------------------------------------------------------------------------------------
# Sources


def load_digits() -> LabelledImages:
    """scikit-learn's handwritten digits: 1,797 images of 8×8 pixels, classes ``"0".."9"``.

    The set ships inside scikit-learn (no download). Its values count ink in 4×4 blocks of the
    original 32×32 bitmaps, ``0..16``; they are divided by 16.

    Returns:
        ``images: float32[1797, 8, 8, 1]`` in ``[0, 1]``, ``labels: int64[1797]``.

    Raises:
        ImportError: scikit-learn is not installed (``pip install 'jaxllm[images]'``).
    """
    _require("sklearn", "scikit-learn", "load_digits")
    from sklearn import datasets

    pixels, digits = datasets.load_digits(return_X_y=True)
    images = np.asarray(pixels, np.float32).reshape(-1, DIGITS_SIDE, DIGITS_SIDE, 1)
    return LabelledImages(
        images / np.float32(DIGITS_MAX_VALUE),
        np.asarray(digits, np.int64),
        tuple(str(digit) for digit in range(10)),
    )


def _require(module: str, package: str, user: str) -> None:
    """Fail with the install command if ``module`` (from ``package``) cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{user} needs {package}; install it with {IMAGES_INSTALL_COMMAND}.")


def read_image_folders(
    root: str | os.PathLike[str],
    *,
    size: tuple[int, int] | None = None,
    mode: str = "L",
) -> LabelledImages:
    """One sub-folder of image files per class under ``root`` (``root/cat/001.png``, ...).

    Classes are the sub-folder names in sorted order (names starting with ``.`` skipped);
    each folder's image files (suffixes of ``IMAGE_SUFFIXES`` in any case, not recursive,
    hidden files skipped; other files are ignored) are read with Pillow in sorted name order.
    Every image is converted to ``mode``:

    * ``"L"`` (grayscale, 1 channel) or ``"RGB"`` (3 channels) by Pillow's conversion, so a
      palette, RGBA, grayscale-with-alpha or CMYK image is converted, not refused. Alpha is
      dropped (the stored colour is kept, not blended with a background); a GIF gives its
      first frame.
    * 16-bit grayscale (Pillow mode ``"I;16"``) is divided by 65535 (Pillow's own conversion
      clips it at 255), and repeated across the channels for ``"RGB"``.

    Pixels become ``float32`` in ``[0, 1]``: 8-bit values divided by 255.

    Args:
        root: the folder holding the class folders.
        size: ``(height, width)`` to resize every image to (Pillow's bilinear filter, on the
            ``[0, 1]`` values). Without it every image must have the first image's size.
        mode: ``"L"`` or ``"RGB"``.

    Returns:
        ``images: float32[n, height, width, 1 or 3]``, grouped by class.

    Raises:
        FileNotFoundError: no folder at ``root``.
        ImagesError: an unknown ``mode`` or bad ``size``, no class folders, a class folder
            without image files, a file Pillow cannot read (named), or, without ``size``,
            images of different sizes (the message names the file and both sizes).
        LabelsError: a single class folder.
    """
    if mode not in IMAGE_MODES:
        raise ImagesError(f"mode must be one of {list(IMAGE_MODES)}, got {mode!r}.")
    target = _checked_size(size)
    _require("PIL", "Pillow", "read_image_folders")
    folder = Path(root)
    names = _class_folders(folder)
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: Path | None = None
    for label, name in enumerate(names):
        for file in _image_files(folder / name):
            pixels = _read_image(file, mode, target)
            if images and target is None and pixels.shape != images[0].shape:
                raise _size_mismatch(file, pixels.shape, first, images[0].shape)
            first = first or file
            images.append(pixels)
            labels.append(label)
    return LabelledImages(np.stack(images), np.asarray(labels, np.int64), tuple(names))


def _checked_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    """``size`` as ``(height, width)`` of positive ints, or None."""
    if size is None:
        return None
    sides = tuple(size)
    if len(sides) != 2 or not all(isinstance(side, (int, np.integer)) for side in sides):
        raise ImagesError(f"size must be (height, width), two integers, got {size!r}.")
    if min(sides) < 1:
        raise ImagesError(f"size must be (height, width) of at least 1 pixel, got {size!r}.")
    return int(sides[0]), int(sides[1])


def _class_folders(folder: Path) -> list[str]:
    """The sorted non-hidden sub-folder names of ``folder``: two or more."""
    names = sub_folder_names(
        folder, "one sub-folder per class (e.g. cat/ and dog/), each holding its image files"
    )
    if not names:
        raise ImagesError(
            f"{str(folder)!r} has no class sub-folders; put one folder per class there "
            "(e.g. cat/ and dog/), each holding that class's image files."
        )
    if len(names) < 2:
        raise LabelsError(
            f"{str(folder)!r} has one class folder ({names[0]!r}); a classifier needs at least "
            "two, so add a folder for each other class."
        )
    return names


def _image_files(folder: Path) -> list[Path]:
    """The sorted non-hidden image files of one class folder: one or more."""
    files = sorted(
        (
            file
            for file in folder.iterdir()
            if file.is_file()
            and not file.name.startswith(".")
            and file.suffix.lower() in IMAGE_SUFFIXES
        ),
        key=lambda file: file.name,
    )
    if not files:
        raise ImagesError(
            f"Class folder {str(folder)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}); "
            "add images or remove the folder."
        )
    return files


def _read_image(file: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """``float32[height, width, channels]`` in ``[0, 1]``: ``file`` in ``mode``, resized to
    ``size`` when given."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            pixels = _image_pixels(image, mode)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImagesError(
            f"Cannot read {str(file)!r} as an image ({err}); replace or remove the file."
        ) from err
    return pixels if size is None else _resized(pixels, size)


def _image_pixels(image: Image.Image, mode: str) -> np.ndarray:
    """``float32[height, width, channels]`` in ``[0, 1]``: ``image`` converted to ``mode``."""
    channels = IMAGE_MODES[mode]
    if image.mode in SIXTEEN_BIT_MODES:
        gray = np.asarray(image.convert("F"), dtype=np.float32) / np.float32(65535)
        return np.repeat(np.clip(gray, 0, 1)[..., None], channels, axis=-1)
    pixels = np.asarray(image.convert(mode), dtype=np.float32) / np.float32(255)
    return pixels.reshape(*pixels.shape[:2], channels)


def _resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``pixels: float32[h, w, c]`` resized to ``float32[*size, c]`` by Pillow's bilinear
    filter, one channel at a time."""
    from PIL import Image

    height, width = size
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[..., channel])).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for channel in range(pixels.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 1).astype(np.float32)


def _size_mismatch(
    file: Path, shape: tuple[int, ...], first: Path | None, first_shape: tuple[int, ...]
) -> ImagesError:
    return ImagesError(
        f"{str(file)!r} is {shape[0]}×{shape[1]} pixels (height×width) but {str(first)!r} is "
        f"{first_shape[0]}×{first_shape[1]}; images of one set must share a size: pass "
        f"size=(h, w) to resize them all, e.g. size=({first_shape[0]}, {first_shape[1]})."
    )


def write_image_folders(data: LabelledImages, root: str | os.PathLike[str]) -> Path:
    """Write ``data`` as PNG files, one folder per class: ``root/<label name>/00000.png``, ...

    Files are numbered within each class in the order of ``data``, so
    :func:`read_image_folders` gives the images back grouped by class (in the order of sorted
    label names) and within a class in their order here, each pixel rounded to a multiple of
    1/255 (exact for such values). One channel is written as 8-bit grayscale, three as RGB.
    A class without images gets an empty folder, which :func:`read_image_folders` refuses.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ImagesError: images with other than 1 or 3 channels, a label name that cannot be a
            visible folder name (empty, ``"."``-led or holding a path separator), or a
            ``root`` that already holds files (so an export never mixes with old ones).
    """
    _require("PIL", "Pillow", "write_image_folders")
    from PIL import Image

    _, _, channels = data.shape
    if channels not in IMAGE_MODES.values():
        raise ImagesError(
            f"write_image_folders writes 1-channel (grayscale) or 3-channel (RGB) images, got "
            f"{channels} channels; select those channels first (images[..., :3])."
        )
    folder = Path(root)
    _check_writable(folder, data.label_names)
    pixels = np.round(data.images * 255).astype(np.uint8)
    for label, name in enumerate(data.label_names):
        (folder / name).mkdir(parents=True)
        members = np.flatnonzero(data.labels == label)
        digits = max(PNG_NAME_DIGITS, len(str(len(members) - 1)))
        for number, index in enumerate(members):
            image = pixels[index, ..., 0] if channels == 1 else pixels[index]
            Image.fromarray(image).save(folder / name / f"{number:0{digits}d}.png")
    return folder


def _check_writable(folder: Path, label_names: tuple[str, ...]) -> None:
    """Fail if ``folder`` holds anything or a label name is no visible folder name."""
    for name in label_names:
        if not name or name.startswith(".") or "/" in name or os.sep in name:
            raise ImagesError(
                f"label name {name!r} cannot be a class folder (empty, starting with '.' or "
                "holding a path separator); rename the class in label_names."
            )
    if len(set(label_names)) != len(label_names):
        raise ImagesError(f"label names must differ to be folder names, got {label_names!r}.")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ImagesError(
            f"{str(folder)!r} already exists and is not an empty folder; write to a new or "
            "empty folder so the export does not mix with other files."
        )
