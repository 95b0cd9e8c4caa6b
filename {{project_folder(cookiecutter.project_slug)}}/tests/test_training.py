"""Model and data together under a Trainer: every stage, and reproducibility."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch

from {{ cookiecutter.package_name }}.system import Classifier

MakeModel = Callable[..., Classifier]
MakeTrainer = Callable[..., pl.Trainer]


def test_fast_dev_run_through_every_stage(
    model: Classifier, datamodule: pl.LightningDataModule, make_trainer: MakeTrainer
) -> None:
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.state.finished
    (validated,) = trainer.validate(model, datamodule=datamodule, verbose=False)
    assert {"val_loss", "val_acc"} <= validated.keys()
    (tested,) = trainer.test(model, datamodule=datamodule, verbose=False)
    assert {"test_loss", "test_acc"} <= tested.keys()
    predictions = trainer.predict(model, datamodule=datamodule)
    assert predictions is not None
    assert len(predictions) == 1
    assert isinstance(predictions[0], torch.Tensor)
    assert predictions[0].dtype == torch.float32  # class probabilities


def train_briefly(
    datamodule: pl.LightningDataModule,
    make_model: MakeModel,
    make_trainer: MakeTrainer,
    seed: int,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Seed, train two short epochs; return the final metrics and weights."""
    pl.seed_everything(seed, workers=True, verbose=False)
    model = make_model(dropout=0.2)  # dropout draws random numbers too
    trainer = make_trainer(max_epochs=2, limit_train_batches=10, limit_val_batches=3)
    trainer.fit(model, datamodule=datamodule)
    metrics = {key: value.item() for key, value in trainer.callback_metrics.items()}
    return metrics, model.state_dict()


def test_seeded_runs_give_identical_metrics_and_weights(
    datamodule: pl.LightningDataModule,
    make_model: MakeModel,
    make_trainer: MakeTrainer,
) -> None:
    metrics, weights = train_briefly(datamodule, make_model, make_trainer, seed=3)
    again, weights_again = train_briefly(datamodule, make_model, make_trainer, seed=3)
    assert metrics == again
    assert weights.keys() == weights_again.keys()
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)

    other, _ = train_briefly(datamodule, make_model, make_trainer, seed=4)
    assert other != metrics
