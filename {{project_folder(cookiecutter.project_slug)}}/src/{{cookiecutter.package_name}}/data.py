"""The demo data: scikit-learn's bundled 8x8 handwritten digits.

The 1,797 images ship inside scikit-learn, so nothing is downloaded. The
loaders yield the raw pixel values, 0..16, exactly as scikit-learn gives
them; the model standardises them itself with the training split's mean and
standard deviation (the ``input_spec``), so no statistic leaks from the
held-out sets and a trained model takes raw inputs.

``predict`` predicts the test split, or the samples of a file given as
``predict_path`` (see the ``inputs`` module: ``.npy``, ``.csv`` or a folder of
8x8 ``.png`` images).

Your own data needs no code: ``--data TableDataModule`` (a CSV) or
``--data ImageFolderDataModule`` (a folder of images); see docs/your-data.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset, TensorDataset
from typing_extensions import override

from .datamodule import ClassificationDataModule, Rows
from .inputs import read_inputs

SHAPE = (1, 8, 8)
"""One image: channels, height, width."""
VALUE_RANGE = (0.0, 16.0)
"""The lowest and highest raw pixel value."""
DESCRIPTION = (
    "64 pixel values 0..16 of an 8x8 grayscale digit, row by row, as"
    " scikit-learn's load_digits gives them (0 = background)"
)


class DigitsDataModule(ClassificationDataModule):
    """The 8x8 digits, split into train, validation and test sets.

    Each sample is a ``(image, label)`` pair: a ``float32`` tensor of shape
    ``(1, 8, 8)`` holding raw pixel values 0..16 and an ``int64`` class index
    in ``0..9``. ``predict_path``: a ``.npy`` or ``.csv`` file of raw samples
    (64 values 0..16 each) or a folder of 8x8 ``.png`` images (pixel value
    ``v`` stands for ``v * 16 / 255``).
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
        predict_path: str | None = None,
    ) -> None:
        """Store the settings (see :class:`~.datamodule.ClassificationDataModule`).

        Args:
            batch_size: Samples per batch, for every split.
            num_workers: Worker processes per loader. The whole set is a few
                hundred kilobytes in memory, so ``0`` is the fastest choice.
            val_fraction: Share of all samples held out for validation.
            test_fraction: Share of all samples held out for the final test.
            split_seed: Seed of the split alone (independent of training seeds).
            predict_path: A ``.npy`` or ``.csv`` file, or a folder of ``.png``
                images, to predict instead of the test split.
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
        self.pixels = torch.empty(0)
        self.labels = torch.empty(0, dtype=torch.int64)

    @override
    def read(self) -> tuple[npt.NDArray[np.int64], list[str]]:
        """The images and labels of ``load_digits``."""
        images, labels = load_digits(return_X_y=True)
        self.pixels = torch.as_tensor(images, dtype=torch.float32).reshape(-1, *SHAPE)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        return np.asarray(labels, dtype=np.int64), [str(digit) for digit in range(10)]

    @override
    def describe(self, train: Rows) -> dict[str, Any]:
        """One channel; the mean and deviation of every training pixel."""
        pixels = self.pixels[torch.from_numpy(train)]
        return {
            "kind": "image",
            "name": "pixels",
            "shape": list(SHAPE),
            "channels": SHAPE[0],
            "size": list(SHAPE[1:]),
            "range": list(VALUE_RANGE),
            "mean": [pixels.mean().item()],
            "std": [pixels.std().item()],
            "description": DESCRIPTION,
        }

    @override
    def subset(self, rows: Rows) -> Dataset[tuple[torch.Tensor, ...]]:
        """The images and labels at ``rows``."""
        positions = torch.from_numpy(rows)
        return TensorDataset(self.pixels[positions], self.labels[positions])

    @override
    def read_predict(
        self, path: str
    ) -> tuple[Dataset[tuple[torch.Tensor, ...]], list[str]]:
        """The samples of a ``.npy``/``.csv`` file or a folder of ``.png`` images."""
        values, names = read_inputs(
            path, SHAPE, VALUE_RANGE, image_scale=VALUE_RANGE[1] / 255
        )
        inputs = torch.from_numpy(values)
        no_labels = torch.full((len(inputs),), -1, dtype=torch.int64)
        return TensorDataset(inputs, no_labels), names
