"""Your own images: a folder with one sub-folder per class, the images inside.

    fit --data ImageFolderDataModule --data.root DIR --model.net CNN

Each sub-folder's name is its class name. PNG, JPEG, BMP and WebP files are
read with Pillow (torchvision is not needed), converted to ``channels`` 1
(grayscale) or 3 (RGB) and resized to ``image_size``. The loaders yield the
raw 0..255 values; the model scales each channel itself, with the mean and
deviation of the training images, so that it takes raw images wherever it
goes. Images are decoded as batches are drawn (``num_workers`` processes do
it in parallel), so a folder larger than memory works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from typing_extensions import override

from .datamodule import ClassificationDataModule, Rows
from .errors import UsageError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
"""The image files a folder may hold (any case)."""
STATISTICS_SAMPLE = 1000
"""At most this many training images give the per-channel statistics."""


def image_files(folder: Path) -> list[Path]:
    """The images directly inside ``folder``, sorted by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and path.suffix.lower() in SUFFIXES
        and not path.name.startswith(".")
    )


def check_image(path: Path, option: str) -> None:
    """Raise a :class:`UsageError` unless Pillow can read ``path`` as an image."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        message = " ".join(str(error).split())[:120]
        raise UsageError(f"{option}: cannot read image {path} ({message})") from None


class ImageFiles(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Image files as ``(raw 0..255 float32 (channels, height, width), label)``."""

    def __init__(
        self, paths: list[Path], labels: list[int], size: tuple[int, int], channels: int
    ) -> None:
        """Keep the files; each is decoded when it is asked for."""
        self.paths = paths
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.size = size
        self.mode = "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        """How many images there are."""
        return len(self.paths)

    @override
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image at ``index``, decoded and resized, and its label."""
        return load_image(self.paths[index], self.size, self.mode), self.labels[index]


def load_image(path: Path, size: tuple[int, int], mode: str) -> torch.Tensor:
    """One image file as ``float32`` ``(channels, height, width)`` raw values."""
    height, width = size
    with Image.open(path) as image:
        pixels = np.asarray(
            image.convert(mode).resize((width, height), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
    tensor = torch.from_numpy(pixels)
    return tensor.unsqueeze(0) if mode == "L" else tensor.permute(2, 0, 1).contiguous()


class ImageFolderDataModule(ClassificationDataModule):
    """Images in one sub-folder per class, split into train, validation and test sets.

    ``predict_path``: an image file, or a folder of images, of any size.
    """

    def __init__(
        self,
        root: str,
        image_size: int | list[int] = 32,
        channels: int = 3,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
        predict_path: str | None = None,
    ) -> None:
        """Store the settings; the folder is read in ``setup``.

        Args:
            root: The folder of class folders.
            image_size: Height and width every image is resized to (one
                number: square).
            channels: 1 (grayscale) or 3 (RGB).
            batch_size: Images per batch, for every split.
            num_workers: Worker processes decoding images (``2`` or more
                speeds up large images).
            val_fraction: Share of all images held out for validation.
            test_fraction: Share of all images held out for the final test.
            split_seed: Seed of the split alone (independent of training seeds).
            predict_path: An image, or a folder of images, to predict
                instead of the test split.
        """
        super().__init__(
            batch_size,
            num_workers,
            val_fraction,
            test_fraction,
            split_seed,
            predict_path,
        )
        self.save_hyperparameters()
        if channels not in (1, 3):
            raise UsageError(
                f"data.channels {channels}: must be 1 (grayscale) or 3 (RGB)"
            )
        size = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
        if len(size) != 2 or min(size) < 1:
            raise UsageError(
                f"data.image_size {image_size}: one or two positive numbers"
            )
        self.root = root
        self.size = (int(size[0]), int(size[1]))
        self.channels = channels
        self.paths: list[Path] = []
        self.labels: list[int] = []

    @override
    def read(self) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Find the class folders and their images; check every image opens."""
        root = Path(self.root)
        if not root.is_dir():
            raise UsageError(f"data.root {self.root}: no such folder")
        folders = sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not folders:
            raise UsageError(
                f"data.root {self.root}: no class folders (one sub-folder per class,"
                " its images inside)"
            )
        for index, folder in enumerate(folders):
            files = image_files(folder)
            if not files:
                raise UsageError(
                    f"data.root {folder}: no images ({', '.join(SUFFIXES)}) in this"
                    " class folder"
                )
            for path in files:
                check_image(path, "data.root")
            self.paths += files
            self.labels += [index] * len(files)
        return np.asarray(self.labels, dtype=np.int64), [
            folder.name for folder in folders
        ]

    @override
    def describe(self, train: Rows) -> dict[str, Any]:
        """Per-channel mean and deviation of (a sample of) the training images."""
        sample = train[
            np.linspace(0, len(train) - 1, min(len(train), STATISTICS_SAMPLE)).astype(
                np.int64
            )
        ]
        mode = "L" if self.channels == 1 else "RGB"
        pixels = torch.stack(
            [load_image(self.paths[row], self.size, mode) for row in sample]
        )
        per_channel = pixels.transpose(0, 1).flatten(1)
        std = per_channel.std(dim=1).clamp_min(1e-3)
        return {
            "kind": "image",
            "name": "pixels",
            "shape": [self.channels, *self.size],
            "channels": self.channels,
            "size": list(self.size),
            "range": [0.0, 255.0],
            "mean": per_channel.mean(dim=1).tolist(),
            "std": std.tolist(),
            "description": (
                f"{'grayscale' if self.channels == 1 else 'RGB'} images resized to"
                f" {self.size[0]}x{self.size[1]}, raw values 0..255, channels first"
            ),
        }

    @override
    def subset(self, rows: Rows) -> Dataset[tuple[torch.Tensor, ...]]:
        """The images at ``rows`` and their labels."""
        return ImageFiles(
            [self.paths[row] for row in rows],
            [self.labels[row] for row in rows],
            self.size,
            self.channels,
        )

    @override
    def read_predict(
        self, path: str
    ) -> tuple[Dataset[tuple[torch.Tensor, ...]], list[str]]:
        """An image file, or the images of a folder, resized as in training."""
        source = Path(path)
        if source.is_dir():
            files = image_files(source)
            if not files:
                raise UsageError(
                    f"data.predict_path {path}: no images ({', '.join(SUFFIXES)})"
                )
        elif source.is_file():
            files = [source]
        else:
            raise UsageError(f"data.predict_path {path}: no such file or folder")
        for file in files:
            check_image(file, "data.predict_path")
        names = [file.name for file in files]
        return ImageFiles(files, [-1] * len(files), self.size, self.channels), names
