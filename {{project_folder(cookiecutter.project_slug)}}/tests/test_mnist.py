"""The MNIST DataModule: split sizes, shapes, dtypes and a clean split.

These tests download MNIST (about 12 MB, once, into ``data/``); the
``datamodule`` fixture skips them with the reason when torchvision cannot be
imported or the download fails.
"""

from __future__ import annotations

import pytest
import torch

from {{ cookiecutter.package_name }}.mnist import MNISTDataModule

pytestmark = pytest.mark.network


def test_split_sizes(datamodule: MNISTDataModule) -> None:
    sizes = {split: len(data) for split, data in datamodule.datasets.items()}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000, "predict": 10_000}


@pytest.mark.parametrize("loader", ["train", "val", "test", "predict"])
def test_batch_shapes_and_dtypes(datamodule: MNISTDataModule, loader: str) -> None:
    x, y = next(iter(getattr(datamodule, f"{loader}_dataloader")()))
    assert x.shape == (128, 1, 28, 28)
    assert x.dtype == torch.float32
    assert y.shape == (128,)
    assert y.dtype == torch.int64
    assert 0 <= y.min() <= y.max() <= 9


def test_train_and_val_are_disjoint(datamodule: MNISTDataModule) -> None:
    train = set(datamodule.indices["train"].tolist())
    val = set(datamodule.indices["val"].tolist())
    assert not train & val
    assert train | val == set(range(60_000))


def test_split_is_reproducible(datamodule: MNISTDataModule) -> None:
    other = MNISTDataModule(data_dir=str(datamodule.data_dir))
    other.setup()
    assert torch.equal(other.indices["val"], datamodule.indices["val"])
    ours, theirs = datamodule.datasets["val"], other.datasets["val"]
    assert torch.equal(theirs.tensors[0], ours.tensors[0])


def test_dataloader_before_setup_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        MNISTDataModule().train_dataloader()
