"""Raw inputs from a file the user names: what ``predict`` reads besides the test split.

Three forms, one sample per row or image:

- ``.npy``: an array of shape ``(N, F)`` (``F`` values per sample) or
  ``(N, *shape)``, numbers only (``numpy.save`` writes it);
- ``.csv``: one sample per line, ``F`` numbers separated by commas; a first
  line without a single number (a header) is skipped;
- a folder of ``.png`` images, each ``H x W`` pixels; colour images are
  converted to grayscale, and the 0..255 pixel values are scaled to the raw
  inputs' range (:func:`read_inputs`'s ``image_scale``).

Every value must be a finite number inside the raw inputs' range. Anything
else is a :class:`~.errors.UsageError` naming the file, the row and the rule.
Only numpy is imported here (pillow when a folder is read); no torch.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .errors import UsageError

IMAGE_SUFFIX = ".png"
"""The images a folder may hold."""


def read_inputs(
    path: Path | str,
    shape: Sequence[int],
    value_range: tuple[float, float],
    image_scale: float,
) -> tuple[npt.NDArray[np.float32], list[str]]:
    """The samples in ``path`` as a ``float32`` array of shape ``(N, *shape)``.

    Args:
        path: A ``.npy`` or ``.csv`` file, or a folder of ``.png`` images.
        shape: The shape of one raw sample, e.g. ``(1, 8, 8)``.
        value_range: The lowest and highest raw value allowed.
        image_scale: What one step of an image's 0..255 pixel values is
            worth in raw units (``16 / 255`` for values 0..16).

    Returns:
        The samples, and the name of each: its row number (from 0) in a
        file, its file name in a folder.

    Raises:
        UsageError: The path is missing or of an unknown kind, or its
            contents are not such samples.
    """
    source = Path(path)
    features = math.prod(shape)
    if source.is_dir():
        values, names = _read_images(source, shape, image_scale)
    elif not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    elif source.suffix.lower() == ".npy":
        values = _read_npy(source, shape)
        names = [str(row) for row in range(len(values))]
    elif source.suffix.lower() == ".csv":
        values = _read_csv(source, features)
        names = [str(row) for row in range(len(values))]
    else:
        raise UsageError(
            f"{source}: cannot read {source.suffix or 'a file without suffix'};"
            " give a .npy file, a .csv file or a folder of .png images"
        )
    _check_values(source, values, names, value_range)
    return values.reshape(len(values), *shape), names


def _describe(shape: Sequence[int]) -> str:
    features = math.prod(shape)
    flat = f"(N, {features})"
    return flat if len(shape) == 1 else f"{flat} or (N, {', '.join(map(str, shape))})"


def _read_npy(path: Path, shape: Sequence[int]) -> npt.NDArray[np.float32]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise UsageError(f"{path}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        raise UsageError(f"{path}: not a single .npy array")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise UsageError(f"{path}: holds {array.dtype} values; expected numbers")
    if np.iscomplexobj(array):
        raise UsageError(f"{path}: holds complex numbers; expected real ones")
    accepted = {(math.prod(shape),), tuple(shape)}
    if array.ndim < 2 or tuple(array.shape[1:]) not in accepted or not len(array):
        raise UsageError(
            f"{path}: array of shape {tuple(array.shape)}; expected one sample per"
            f" row, {_describe(shape)} with N >= 1"
        )
    return array.astype(np.float32).reshape(len(array), -1)


def _read_csv(path: Path, features: int) -> npt.NDArray[np.float32]:
    rows: list[list[float]] = []
    try:
        with path.open(newline="", encoding="utf-8") as file:
            for line, cells in enumerate(csv.reader(file), start=1):
                if not cells or all(not cell.strip() for cell in cells):
                    continue  # blank lines
                numbers = [_number(cell) for cell in cells]
                if line == 1 and all(n is None for n in numbers):
                    continue  # a header
                pairs = zip(cells, numbers, strict=True)
                for column, (cell, number) in enumerate(pairs, start=1):
                    if number is None:
                        raise UsageError(
                            f"{path}: line {line}, column {column}: {cell.strip()!r}"
                            " is not a number"
                        )
                if len(cells) != features:
                    raise UsageError(
                        f"{path}: line {line} has {len(cells)} values; expected"
                        f" {features} per line (one sample per line)"
                    )
                rows.append([n for n in numbers if n is not None])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: not a readable CSV file ({error})") from None
    if not rows:
        raise UsageError(
            f"{path}: no samples (expected one line of {features} numbers each)"
        )
    return np.asarray(rows, dtype=np.float32)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_images(
    folder: Path, shape: Sequence[int], image_scale: float
) -> tuple[npt.NDArray[np.float32], list[str]]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == IMAGE_SUFFIX
    )
    if not files:
        raise UsageError(f"{folder}: no {IMAGE_SUFFIX} images in this folder")
    height, width = shape[-2], shape[-1]
    if math.prod(shape) != height * width:
        raise UsageError(f"{folder}: this model does not take single-channel images")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                size = image.size
                pixels = np.asarray(image.convert("L"), dtype=np.float32)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise UsageError(f"{file}: not a readable image ({error})") from None
        if size != (width, height):
            raise UsageError(
                f"{file}: {size[0]}x{size[1]} pixels; expected {width}x{height}"
            )
        images.append(pixels.reshape(-1) * np.float32(image_scale))
    return np.stack(images), [file.name for file in files]


def _check_values(
    path: Path,
    values: npt.NDArray[np.float32],
    names: list[str],
    value_range: tuple[float, float],
) -> None:
    low, high = value_range
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise UsageError(
            f"{path}: sample {names[row]} holds a value that is not finite"
        )
    outside = (values < low) | (values > high)
    if outside.any():
        row, column = (int(i) for i in np.argwhere(outside)[0])
        raise UsageError(
            f"{path}: sample {names[row]} holds {values[row, column]:g}, outside"
            f" {low:g}..{high:g}, the range of raw inputs"
        )
