"""The data: MNIST's 28x28 handwritten digits as a LightningDataModule.

torchvision downloads the 70,000 images (about 12 MB) into ``data_dir`` on
first use. The official 10,000 test images are the test set; a fixed-seed
random share of the 60,000 training images is held out for validation, so
the split stays the same when the training seed changes. The loaders yield
raw pixel values 0..255; the model standardises them itself with the
training images' well-known mean and standard deviation (the
``input_spec``, which the command line hands to the model), so a trained
model takes raw inputs. The whole set lives in memory as tensors, so batches
need no per-image transforms.

``predict`` predicts the test set, or the samples of a file given as
``predict_path`` (see the ``inputs`` module: ``.npy``, ``.csv`` or a folder of
28x28 ``.png`` images).

torchvision is imported only inside the methods that need it: importing this
module (and the CLI) works even where torchvision is missing or broken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from .inputs import read_inputs

MEAN, STD = 0.1307 * 255, 0.3081 * 255
"""Pixel statistics of MNIST's training images (well known: 0.1307, 0.3081 of 255)."""


class MNISTDataModule(pl.LightningDataModule):
    """Train, validation and test loaders over MNIST.

    Each sample is a ``(image, label)`` pair: a ``float32`` tensor of shape
    ``(1, 28, 28)`` holding raw pixel values 0..255 and an ``int64`` class
    index in ``0..9`` (``-1`` for the samples of a ``predict_path``).
    """

    input_shape = (1, 28, 28)
    """Shape of one image: channels, height, width."""
    num_classes = 10
    """Distinct labels (the digits 0 to 9)."""
    value_range = (0.0, 255.0)
    """The lowest and highest raw pixel value."""

    @property
    def input_spec(self) -> dict[str, Any]:
        """What a raw sample is, and the statistics the model standardises with."""
        return {
            "kind": "image",
            "name": "pixels",
            "shape": list(self.input_shape),
            "channels": 1,
            "size": list(self.input_shape[1:]),
            "range": list(self.value_range),
            "mean": [MEAN],
            "std": [STD],
            "description": (
                "784 pixel values 0..255 of a 28x28 grayscale digit, row by row,"
                " as MNIST stores them (0 = background)"
            ),
        }

    @property
    def class_names(self) -> list[str]:
        """The label of each class index."""
        return [str(digit) for digit in range(self.num_classes)]

    @property
    def net_input_shape(self) -> list[int]:
        """One sample's shape as the network takes it (preprocessing keeps it)."""
        return list(self.input_shape)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int = 5000,
        split_seed: int = 42,
        predict_path: str | None = None,
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
            predict_path: What ``predict`` predicts instead of the test set:
                a ``.npy`` or ``.csv`` file of raw samples (784 values 0..255
                each) or a folder of 28x28 ``.png`` images. Read and checked
                here, so that a bad file stops the command before it starts.

        Raises:
            UsageError: ``predict_path`` is missing or holds no such samples.
        """
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.split_seed = split_seed
        # The splits once set up: "train", "val", "test" and "predict".
        self.datasets: dict[str, TensorDataset] = {}
        self.predict_inputs: npt.NDArray[np.float32] | None = None
        # The name of each sample predict predicts: a row, a file, a test position.
        self.predict_names: list[str] = []
        if predict_path is not None:
            self.predict_inputs, self.predict_names = read_inputs(
                predict_path, self.input_shape, self.value_range, image_scale=1.0
            )
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
        """Load the downloaded images and split them.

        Args:
            stage: The Trainer's stage (``fit``, ``validate``, ...); all splits
                are built regardless.
        """
        if self.datasets:
            return
        from torchvision.datasets import MNIST

        train_val = MNIST(self.data_dir, train=True)
        test = MNIST(self.data_dir, train=False)
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(train_val.targets), generator=generator)
        val, train = order[: self.val_size], order[self.val_size :]
        self.indices = {"train": train, "val": val}
        images, labels = _tensors(train_val.data, train_val.targets)
        self.datasets = {
            "train": TensorDataset(images[train], labels[train]),
            "val": TensorDataset(images[val], labels[val]),
            "test": TensorDataset(*_tensors(test.data, test.targets)),
        }
        if self.predict_inputs is not None:
            inputs = torch.from_numpy(self.predict_inputs)
            no_labels = torch.full((len(inputs),), -1, dtype=torch.int64)
            self.datasets["predict"] = TensorDataset(inputs, no_labels)
        else:
            self.datasets["predict"] = self.datasets["test"]
            self.predict_names = [str(position) for position in range(len(test))]

    @override
    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """Shuffled training batches (the order follows the global seed)."""
        return self._loader("train", shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """Validation batches in a fixed order."""
        return self._loader("val")

    @override
    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """Test batches in a fixed order."""
        return self._loader("test")

    @override
    def predict_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        """The ``predict_path`` samples, or else the test set, in a fixed order."""
        return self._loader("predict")

    def _loader(
        self, split: str, *, shuffle: bool = False
    ) -> DataLoader[tuple[torch.Tensor, ...]]:
        if split not in self.datasets:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def _tensors(
    images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw ``float32`` images (0..255) with a channel axis, ``int64`` labels."""
    return images.unsqueeze(1).to(torch.float32), labels.to(torch.int64)
