"""The data: MNIST's 28x28 handwritten digits as a LightningDataModule.

torchvision downloads the 70,000 images (about 12 MB) into ``data_dir`` on
first use. The official 10,000 test images are the test set; a fixed-seed
random share of the 60,000 training images is held out for validation, so
the split stays the same when the training seed changes. Pixels are
standardised with the training images' well-known mean and standard
deviation. The whole set lives in memory as tensors, so batches need no
per-image transforms.

torchvision is imported only inside the methods that need it: importing this
module (and the CLI) works even where torchvision is missing or broken.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

MEAN, STD = 0.1307, 0.3081
"""Pixel statistics of MNIST's training images, scaled to [0, 1]."""


class MNISTDataModule(pl.LightningDataModule):
    """Train, validation and test loaders over MNIST.

    Each sample is a ``(image, label)`` pair: a ``float32`` tensor of shape
    ``(1, 28, 28)`` and an ``int64`` class index in ``0..9``.
    """

    input_shape = (1, 28, 28)
    """Shape of one image: channels, height, width."""
    num_features = 784
    """Inputs per sample once flattened (28 x 28 pixels)."""
    num_classes = 10
    """Distinct labels (the digits 0 to 9)."""

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int = 5000,
        split_seed: int = 42,
    ) -> None:
        """Store the settings; the data is downloaded in ``prepare_data``.

        Args:
            data_dir: Folder the download goes to (and is read from).
            batch_size: Samples per batch, for every split.
            num_workers: Worker processes per loader. The data is already a
                tensor in memory, so ``0`` (the main process) is usually
                fastest.
            val_size: Training images held out for validation.
            split_seed: Seed of the split alone (independent of training seeds).
        """
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.split_seed = split_seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None
        # Positions in MNIST's training images of each split: "train", "val".
        self.indices: dict[str, torch.Tensor] = {}

    @override
    def prepare_data(self) -> None:
        """Download MNIST once (Lightning calls this on one process per node)."""
        from torchvision.datasets import MNIST

        MNIST(self.data_dir, train=True, download=True)
        MNIST(self.data_dir, train=False, download=True)

    @override
    def setup(self, stage: str | None = None) -> None:
        """Load the downloaded images, split and standardise them.

        Args:
            stage: The Trainer's stage (``fit``, ``validate``, ...); all splits
                are built regardless.
        """
        if self.train_set is not None:
            return
        from torchvision.datasets import MNIST

        train_val = MNIST(self.data_dir, train=True)
        test = MNIST(self.data_dir, train=False)
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(train_val.targets), generator=generator)
        val, train = order[: self.val_size], order[self.val_size :]
        self.indices = {"train": train, "val": val}
        images, labels = _tensors(train_val.data, train_val.targets)
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[val], labels[val])
        self.test_set = TensorDataset(*_tensors(test.data, test.targets))

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


def _tensors(
    images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised ``float32`` images with a channel axis, ``int64`` labels."""
    pixels = images.unsqueeze(1).to(torch.float32) / 255
    return (pixels - MEAN) / STD, labels.to(torch.int64)
