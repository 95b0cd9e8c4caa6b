"""What every DataModule of this project shares: the split, the loaders, the contract.

A DataModule that ``fit``, ``export``, ``serve`` and ``predict`` can work with
answers four questions once it is set up (``docs/your-data.md`` has the
details):

- ``input_spec``: what one raw sample is, and the training split's statistics
  (a JSON-able dict: ``kind`` ``"table"`` or ``"image"``, the graph input's
  ``name``, the sample ``shape``, and per kind the columns or the channels);
  the model builds its preprocessing from it (``model.build_preprocessing``)
  and ``export`` writes it into the model card;
- ``net_input_shape``: one sample's shape once preprocessed, as the network
  sees it;
- ``num_classes`` and ``class_names``: the classes, in index order.

:class:`ClassificationDataModule` answers them for data that fits the usual
pattern: samples with one class label each, split once into train,
validation and test sets, stratified by class and with a seed of its own
(``split_seed``), so that the split stays the same when the training seed
changes. A subclass says how to read its source (:meth:`read`), what the
statistics are (:meth:`describe`) and how to read files to predict
(:meth:`read_predict`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import numpy.typing as npt
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from .errors import UsageError

Rows = npt.NDArray[np.int64]
"""Positions of samples in the source, one split's worth."""
Loader = DataLoader[tuple[torch.Tensor, ...]]
"""A loader of ``(inputs, targets)`` batches."""


class ClassificationDataModule(pl.LightningDataModule):
    """Train, validation, test and predict loaders over labelled samples.

    Each sample is a ``(inputs, label)`` pair: ``float32`` raw inputs of shape
    ``input_spec["shape"]`` and an ``int64`` class index (``-1`` for the
    samples of a ``predict_path``, which have none).
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
        """Store the settings; the data is read in ``setup``.

        Args:
            batch_size: Samples per batch, for every split.
            num_workers: Worker processes per loader (``0``: the main process).
            val_fraction: Share of all samples held out for validation.
            test_fraction: Share of all samples held out for the final test.
            split_seed: Seed of the split alone (independent of training seeds).
            predict_path: What ``predict`` predicts instead of the test split
                (a file or folder; what each DataModule reads is in its docs).
        """
        super().__init__()
        if not 0 < val_fraction < 1 or not 0 < test_fraction < 1:
            raise UsageError(
                "data.val_fraction and data.test_fraction must lie in (0, 1)"
            )
        if val_fraction + test_fraction >= 1:
            raise UsageError(
                "data.val_fraction + data.test_fraction must leave training data"
            )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.predict_path = predict_path
        # Positions of the samples in each split: "train", "val" and "test".
        self.indices: dict[str, Rows] = {}
        self.datasets: dict[str, Dataset[tuple[torch.Tensor, ...]]] = {}
        # The name of each sample predict predicts: a row, a file, a test position.
        self.predict_names: list[str] = []
        self._spec: dict[str, Any] | None = None
        self._classes: list[str] = []

    # --- what a subclass says -------------------------------------------------

    def read(self) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Read the source: every sample's class index, and the class names."""
        raise NotImplementedError

    def describe(self, train: Rows) -> dict[str, Any]:
        """The ``input_spec``, with statistics of the training samples ``train``."""
        raise NotImplementedError

    def subset(self, rows: Rows) -> Dataset[tuple[torch.Tensor, ...]]:
        """The ``(inputs, label)`` samples at ``rows`` (called after ``describe``)."""
        raise NotImplementedError

    def read_predict(
        self, path: str
    ) -> tuple[Dataset[tuple[torch.Tensor, ...]], list[str]]:
        """The samples of ``predict_path`` (labels ``-1``) and a name for each."""
        raise NotImplementedError

    # --- the contract ---------------------------------------------------------

    @property
    def input_spec(self) -> dict[str, Any]:
        """What a raw sample is, with the training split's statistics."""
        if self._spec is None:
            self.setup()
        assert self._spec is not None
        return self._spec

    @property
    def net_input_shape(self) -> list[int]:
        """One sample's shape once preprocessed (what the network takes)."""
        spec = self.input_spec
        if spec["kind"] == "table":
            columns = spec["columns"]
            return [
                sum(
                    len(c["categories"]) if c["kind"] == "categorical" else 1
                    for c in columns
                )
            ]
        return list(spec["shape"])

    @property
    def num_classes(self) -> int:
        """How many classes there are."""
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """The name of each class index."""
        if not self._classes:
            self.setup()
        return self._classes

    # --- Lightning's hooks ----------------------------------------------------

    @override
    def setup(self, stage: str | None = None) -> None:
        """Read and split the data, once (every process does the same).

        Args:
            stage: The Trainer's stage (``fit``, ``validate``, ...); every
                split is built regardless.
        """
        if self._spec is not None:
            return
        labels, classes = self.read()
        if len(classes) < 2:
            raise UsageError(
                f"data: {len(classes)} class ({', '.join(classes) or 'none'}); a"
                " classifier needs at least two"
            )
        self.indices = self.split(labels, classes)
        self._classes = classes
        self._spec = self.describe(self.indices["train"])
        self.datasets = {name: self.subset(rows) for name, rows in self.indices.items()}
        if self.predict_path is not None:
            self.datasets["predict"], self.predict_names = self.read_predict(
                self.predict_path
            )
        else:
            self.datasets["predict"] = self.datasets["test"]
            self.predict_names = [
                str(position) for position in range(len(self.indices["test"]))
            ]

    def split(
        self, labels: npt.NDArray[np.int64], classes: Sequence[str]
    ) -> dict[str, Rows]:
        """Stratified train/val/test positions, the same for the same ``split_seed``."""
        smallest = math.ceil(1 / min(self.val_fraction, self.test_fraction, 0.5))
        counts = Counter(labels.tolist())
        for index, name in enumerate(classes):
            if counts[index] < max(3, smallest):
                raise UsageError(
                    f"data: class {name!r} has {counts[index]} sample(s); each class"
                    f" needs at least {max(3, smallest)} for a stratified split with"
                    f" val_fraction {self.val_fraction} and test_fraction"
                    f" {self.test_fraction}"
                )
        try:
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
        except ValueError as error:  # too few samples for the fractions asked
            raise UsageError(
                f"data: cannot split {len(labels)} samples: {error}"
            ) from None
        return {
            name: np.asarray(rows, dtype=np.int64)
            for name, rows in (("train", train), ("val", val), ("test", test))
        }

    @override
    def train_dataloader(self) -> Loader:
        """Shuffled training batches (the order follows the global seed)."""
        return self._loader("train", shuffle=True)

    @override
    def val_dataloader(self) -> Loader:
        """Validation batches in a fixed order."""
        return self._loader("val")

    @override
    def test_dataloader(self) -> Loader:
        """Test batches in a fixed order."""
        return self._loader("test")

    @override
    def predict_dataloader(self) -> Loader:
        """The ``predict_path`` samples, or else the test set, in a fixed order."""
        return self._loader("predict")

    def _loader(self, split: str, *, shuffle: bool = False) -> Loader:
        if split not in self.datasets:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
