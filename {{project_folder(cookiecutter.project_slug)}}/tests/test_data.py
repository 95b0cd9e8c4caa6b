"""The digits DataModule: split sizes, shapes, dtypes and a clean split."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from {{ cookiecutter.package_name }}.data import DigitsDataModule
from {{ cookiecutter.package_name }}.errors import UsageError
from {{ cookiecutter.package_name }}.model import Standardize

SAMPLES = 1797  # images in scikit-learn's digits


def test_split_sizes(datamodule: DigitsDataModule) -> None:
    sizes = {name: len(rows) for name, rows in datamodule.indices.items()}
    assert sizes == {"train": 1257, "val": 270, "test": 270}
    assert sum(sizes.values()) == SAMPLES
    assert len(datamodule.datasets["train"]) == 1257  # type: ignore[arg-type]


def test_splits_are_disjoint_and_complete(datamodule: DigitsDataModule) -> None:
    train, val, test = (set(datamodule.indices[k].tolist()) for k in datamodule.indices)
    assert not train & val
    assert not train & test
    assert not val & test
    assert train | val | test == set(range(SAMPLES))


def test_splits_are_stratified(datamodule: DigitsDataModule) -> None:
    for split in ("train", "val", "test"):
        labels = datamodule.labels[datamodule.indices[split]]
        shares = torch.bincount(labels, minlength=10) / len(labels)
        assert shares.min() > 0.09
        assert shares.max() < 0.11


@pytest.mark.parametrize("loader", ["train", "val", "test", "predict"])
def test_batch_shapes_and_dtypes(datamodule: DigitsDataModule, loader: str) -> None:
    x, y = next(iter(getattr(datamodule, f"{loader}_dataloader")()))
    assert x.shape == (32, 1, 8, 8)
    assert x.dtype == torch.float32
    assert y.shape == (32,)
    assert y.dtype == torch.int64
    assert 0 <= y.min() <= y.max() <= 9


def test_loaders_yield_raw_pixels(datamodule: DigitsDataModule) -> None:
    pixels = datamodule.pixels[datamodule.indices["test"]]
    images, _ = load_digits(return_X_y=True)
    raw = np.asarray(images)[datamodule.indices["test"]].reshape(-1, 1, 8, 8)
    np.testing.assert_array_equal(pixels.numpy(), raw.astype(np.float32))
    assert pixels.min().item() == 0
    assert pixels.max().item() == 16


def test_the_model_standardises_with_training_statistics(
    datamodule: DigitsDataModule,
) -> None:
    pixels = datamodule.pixels[datamodule.indices["train"]]
    spec = datamodule.input_spec
    assert spec["mean"] == [pytest.approx(pixels.mean().item())]
    assert spec["std"] == [pytest.approx(pixels.std().item())]
    standardize = Standardize(spec["mean"], spec["std"])
    standardised = standardize(pixels)
    assert standardised.mean().item() == pytest.approx(0, abs=1e-5)
    assert standardised.std().item() == pytest.approx(1, abs=1e-5)


def test_statistics_are_ready_before_setup() -> None:
    fresh = DigitsDataModule()
    spec = fresh.input_spec  # the CLI links it before setup runs
    assert 4 < spec["mean"][0] < 6
    assert 5 < spec["std"][0] < 7
    assert spec["shape"] == [1, 8, 8]
    assert fresh.net_input_shape == [1, 8, 8]
    assert fresh.class_names == [str(digit) for digit in range(10)]


def test_split_ignores_the_training_seed(datamodule: DigitsDataModule) -> None:
    pl.seed_everything(123, verbose=False)
    other = DigitsDataModule()
    other.setup()
    for name, rows in datamodule.indices.items():
        np.testing.assert_array_equal(other.indices[name], rows)


def test_split_seed_changes_the_split(datamodule: DigitsDataModule) -> None:
    other = DigitsDataModule(split_seed=7)
    other.setup()
    assert not np.array_equal(other.indices["test"], datamodule.indices["test"])


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.2, 1.0), (0.5, 0.5)])
def test_rejects_impossible_fractions(val: float, test: float) -> None:
    with pytest.raises(UsageError, match="fraction"):
        DigitsDataModule(val_fraction=val, test_fraction=test)


def test_dataloader_before_setup_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        DigitsDataModule().train_dataloader()
