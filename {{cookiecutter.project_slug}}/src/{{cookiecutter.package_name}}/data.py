"""The data: scikit-learn's bundled 8x8 handwritten digits as a LightningDataModule.

The 1,797 images ship inside scikit-learn, so nothing is downloaded. They are
split once, stratified by class and with a fixed seed of their own, into
train, validation and test sets; the split therefore stays the same when the
training seed changes. Pixels are standardised with the mean and standard
deviation of the training set only, so no statistic leaks from the held-out
sets.
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


class DigitsDataModule(pl.LightningDataModule):
    """Train, validation and test loaders over the 8x8 digits.

    Each sample is a ``(image, label)`` pair: a ``float32`` tensor of shape
    ``(1, 8, 8)`` and an ``int64`` class index in ``0..9``.
    """

    input_shape = (1, 8, 8)
    """Shape of one image: channels, height, width."""
    num_features = 64
    """Inputs per sample once flattened (8 x 8 pixels)."""
    num_classes = 10
    """Distinct labels (the digits 0 to 9)."""

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
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
        # Rows of load_digits() in each split: "train", "val" and "test".
        self.indices: dict[str, npt.NDArray[np.int64]] = {}

    @override
    def setup(self, stage: str | None = None) -> None:
        """Split and standardise the data (every process does the same).

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
        mean, std = pixels[train].mean(), pixels[train].std()
        pixels = (pixels - mean) / std
        self.train_set, self.val_set, self.test_set = (
            TensorDataset(pixels[rows], targets[rows]) for rows in (train, val, test)
        )

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
        """The test set again, in a fixed order, for ``predict``."""
        return self._loader(self.test_set)

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
