"""The data: scikit-learn's bundled 8x8 handwritten digits as a LightningDataModule.

The 1,797 images ship inside scikit-learn, so nothing is downloaded. They are
split once, stratified by class and with a fixed seed of their own, into
train, validation and test sets; the split therefore stays the same when the
training seed changes. The loaders yield the raw pixel values, 0..16, exactly
as scikit-learn gives them: the model standardises them itself, with the mean
and standard deviation of the training set only (``input_mean``,
``input_std``, which the command line hands to the model), so no statistic
leaks from the held-out sets and a trained model takes raw inputs.

``predict`` predicts the test split, or the samples of a file given as
``predict_path`` (see the ``inputs`` module: ``.npy``, ``.csv`` or a folder of
8x8 ``.png`` images).
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import numpy.typing as npt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from .inputs import read_inputs


class DigitsDataModule(pl.LightningDataModule):
    """Train, validation and test loaders over the 8x8 digits.

    Each sample is a ``(image, label)`` pair: a ``float32`` tensor of shape
    ``(1, 8, 8)`` holding raw pixel values 0..16 and an ``int64`` class index
    in ``0..9`` (``-1`` for the samples of a ``predict_path``, which have none).
    """

    input_shape = (1, 8, 8)
    """Shape of one image: channels, height, width."""
    num_features = 64
    """Inputs per sample once flattened (8 x 8 pixels)."""
    num_classes = 10
    """Distinct labels (the digits 0 to 9)."""
    class_names = tuple(str(digit) for digit in range(10))
    """The label of each class index."""
    value_range = (0.0, 16.0)
    """The lowest and highest raw pixel value."""
    input_description = (
        "64 pixel values 0..16 of an 8x8 grayscale digit, row by row, as"
        " scikit-learn's load_digits gives them (0 = background)"
    )
    """What one raw input is, in words (the exported model card repeats it)."""

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
        predict_path: str | None = None,
    ) -> None:
        """Store the settings; the data is loaded in ``setup``.

        Args:
            batch_size: Samples per batch, for every split.
            num_workers: Worker processes per loader. The whole set is a few
                hundred kilobytes held in memory, so ``0`` (load in the main
                process) is the fastest choice.
            val_fraction: Share of all samples held out for validation.
            test_fraction: Share of all samples held out for the final test.
            split_seed: Seed of the split alone (independent of training seeds).
            predict_path: What ``predict`` predicts instead of the test split:
                a ``.npy`` or ``.csv`` file of raw samples (64 values 0..16
                each) or a folder of 8x8 ``.png`` images (pixel value ``v``
                stands for ``v * 16 / 255``). Read and checked here, so that
                a bad file stops the command before it starts a run.

        Raises:
            UsageError: ``predict_path`` is missing or holds no such samples.
        """
        super().__init__()
        if not 0 < val_fraction < 1 or not 0 < test_fraction < 1:
            raise ValueError("val_fraction and test_fraction must lie in (0, 1)")
        if val_fraction + test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave training data")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None
        self.predict_set: TensorDataset | None = None
        # Rows of load_digits() in each split: "train", "val" and "test".
        self.indices: dict[str, npt.NDArray[np.int64]] = {}
        self._statistics: tuple[float, float] | None = None
        self.predict_inputs: npt.NDArray[np.float32] | None = None
        # The name of each sample predict predicts: a row, a file, a test position.
        self.predict_names: list[str] = []
        if predict_path is not None:
            self.predict_inputs, self.predict_names = read_inputs(
                predict_path,
                self.input_shape,
                self.value_range,
                image_scale=self.value_range[1] / 255,
            )

    @property
    def input_mean(self) -> float:
        """Mean of the training split's raw pixels (the model subtracts it)."""
        return self._training_statistics()[0]

    @property
    def input_std(self) -> float:
        """Standard deviation of the training split's raw pixels (the model divides)."""
        return self._training_statistics()[1]

    @override
    def setup(self, stage: str | None = None) -> None:
        """Split the data (every process does the same).

        Args:
            stage: The Trainer's stage (``fit``, ``validate``, ...); all splits
                are built regardless, as that takes milliseconds.
        """
        if self.train_set is not None:
            return
        images, labels = load_digits(return_X_y=True)
        train_val, test = train_test_split(
            np.arange(len(labels)),
            test_size=self.test_fraction,
            stratify=labels,
            random_state=self.split_seed,
        )
        train, val = train_test_split(
            train_val,
            test_size=self.val_fraction / (1 - self.test_fraction),
            stratify=labels[train_val],
            random_state=self.split_seed,
        )
        # int64 arrays, whatever train_test_split hands back (lists, to a type checker).
        self.indices = {
            name: np.asarray(rows, dtype=np.int64)
            for name, rows in (("train", train), ("val", val), ("test", test))
        }

        pixels = torch.as_tensor(images, dtype=torch.float32)
        pixels = pixels.reshape(-1, *self.input_shape)
        targets = torch.as_tensor(labels, dtype=torch.int64)
        # Statistics of the training images only: nothing leaks from val/test.
        train_pixels = pixels[train]
        self._statistics = (train_pixels.mean().item(), train_pixels.std().item())
        self.train_set, self.val_set, self.test_set = (
            TensorDataset(pixels[rows], targets[rows]) for rows in (train, val, test)
        )
        if self.predict_inputs is not None:
            inputs = torch.from_numpy(self.predict_inputs)
            no_labels = torch.full((len(inputs),), -1, dtype=torch.int64)
            self.predict_set = TensorDataset(inputs, no_labels)
        else:
            self.predict_set = self.test_set
            self.predict_names = [str(position) for position in range(len(test))]

    def _training_statistics(self) -> tuple[float, float]:
        """``(mean, std)`` of the training split's pixels, splitting first if needed."""
        if self._statistics is None:
            self.setup()
        assert self._statistics is not None
        return self._statistics

    @override
    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """Shuffled training batches (the order follows the global seed)."""
        return self._loader(self.train_set, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """Validation batches in a fixed order."""
        return self._loader(self.val_set)

    @override
    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """Test batches in a fixed order."""
        return self._loader(self.test_set)

    @override
    def predict_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """The ``predict_path`` samples, or else the test set, in a fixed order."""
        return self._loader(self.predict_set)

    def _loader(
        self, dataset: TensorDataset | None, *, shuffle: bool = False
    ) -> DataLoader[tuple[torch.Tensor, ...]]:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
