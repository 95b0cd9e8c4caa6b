"""The model on its own: shapes, steps, optimiser, learning and checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from {{ cookiecutter.package_name }}.model import CNN, MLP, TableEncoder
from {{ cookiecutter.package_name }}.system import Classifier

Batch = tuple[Tensor, Tensor]
MakeTrainer = Callable[..., pl.Trainer]

# These tests train on a single batch and have no validation data on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step`")


@pytest.fixture
def logged(model: Classifier, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the model passes to ``self.log``, recorded instead of logged.

    Calling a step outside a Trainer leaves ``self.log`` nowhere to log to;
    recording the calls tests exactly what the step reports.
    """
    records: dict[str, Any] = {}

    def log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        records[name] = value

    monkeypatch.setattr(model, "log", log)
    return records


def loader(batch: Batch) -> DataLoader[tuple[Tensor, ...]]:
    """The one batch as a dataloader."""
    return DataLoader(TensorDataset(*batch), batch_size=len(batch[1]))


def classes(model: Classifier) -> int:
    """How many classes the model scores."""
    count: int = model.hparams["num_classes"]
    return count


def test_forward_output_shape(model: Classifier, batch: Batch) -> None:
    x, _ = batch
    assert model(x[:1]).shape == (1, classes(model))


def test_training_step_returns_a_loss(
    model: Classifier, batch: Batch, logged: dict[str, Any]
) -> None:
    loss = model.training_step(batch, 0)
    assert loss.ndim == 0
    assert loss.requires_grad
    assert torch.isfinite(loss)
    assert loss.item() > 0
    assert {"train_loss", "train_acc"} <= logged.keys()


def test_validation_step_runs_and_logs(
    model: Classifier, batch: Batch, logged: dict[str, Any]
) -> None:
    model.validation_step(batch, 0)
    assert {"val_loss", "val_acc"} <= logged.keys()
    # The step logs the running mean (a torchmetrics object) that Lightning computes.
    assert torch.isfinite(logged["val_loss"].compute())


def test_steps_accumulate_every_batch_and_log_once(
    model: Classifier, batch: Batch, logged: dict[str, Any]
) -> None:
    x, y = batch
    first = model.training_step((x[:20], y[:20]), 0)
    assert {"train_loss", "train_acc"} <= logged.keys()
    logged.clear()
    second = model.training_step((x[20:], y[20:]), 1)
    assert not logged  # later batches only update the metrics
    # The epoch's loss: the mean over samples (batches weighted by their size).
    expected = (first.item() * 20 + second.item() * 12) / 32
    assert model.train_loss.compute().item() == pytest.approx(expected)
    # The epoch's accuracy: as if computed over both batches at once.
    with torch.no_grad():
        whole = MulticlassAccuracy(num_classes=classes(model), average="micro")(
            model(x), y
        )
        plain = (model(x).argmax(dim=1) == y).float().mean()
    assert whole.item() == pytest.approx(plain.item())  # plain accuracy, not macro
    assert model.train_acc.compute().item() == pytest.approx(whole.item())


def test_epoch_accuracy_equals_torchmetrics_batch_by_batch() -> None:
    from {{ cookiecutter.package_name }}.system import EpochAccuracy

    generator = torch.Generator().manual_seed(1)
    count = 5
    cheap = EpochAccuracy(num_classes=count)
    reference = MulticlassAccuracy(num_classes=count, average="micro")
    for _epoch in range(2):
        for size in (32, 32, 17):
            logits = torch.randn(size, count, generator=generator)
            targets = torch.randint(0, count, (size,), generator=generator)
            cheap.update(logits, targets)
            reference.update(logits, targets)
        assert torch.equal(cheap.compute(), reference.compute())
        cheap.reset()
        reference.reset()
    assert cheap.preds == []


def test_test_and_predict_steps(
    model: Classifier, batch: Batch, logged: dict[str, Any]
) -> None:
    model.test_step(batch, 0)
    assert {"test_loss", "test_acc"} <= logged.keys()
    probabilities = model.predict_step(batch, 0)
    assert probabilities.shape == (len(batch[1]), classes(model))
    assert probabilities.dtype == torch.float32
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(len(batch[1])))
    assert torch.equal(probabilities.argmax(dim=1), model(batch[0]).argmax(dim=1))


def test_the_model_standardises_raw_inputs(batch: Batch) -> None:
    spec = {"kind": "image", "name": "x", "shape": list(batch[0].shape[1:])}
    channels = batch[0].shape[1]

    def build(mean: float, std: float) -> Classifier:
        pl.seed_everything(0, verbose=False)
        net = MLP(batch[0].shape[1:], 3)
        stats = {"mean": [mean] * channels, "std": [std] * channels}
        return Classifier(
            net=net, num_classes=3, preprocessing=json.dumps(spec | stats)
        )

    plain, shifted = build(0.0, 1.0), build(5.0, 2.0)
    x = batch[0]
    with torch.no_grad():
        assert torch.allclose(shifted(x * 2 + 5), plain(x), atol=1e-5)


def test_the_table_encoder_standardises_numbers_and_one_hot_encodes_categories() -> (
    None
):
    columns: list[dict[str, Any]] = [
        {"name": "a", "kind": "numeric", "mean": 10.0, "std": 2.0},
        {"name": "b", "kind": "categorical", "categories": ["x", "y", "z"]},
        {"name": "c", "kind": "numeric", "mean": 0.0, "std": 0.0},  # constant column
    ]
    encoder = TableEncoder(columns)
    rows = torch.tensor([[12.0, 2.0, 3.0], [8.0, 0.0, -1.0], [10.0, -1.0, 0.0]])
    expected = torch.tensor(
        [[1.0, 3.0, 0, 0, 1], [-1.0, -1.0, 1, 0, 0], [0.0, 0.0, 0, 0, 0]]
    )
    assert encoder.features == 5
    assert torch.equal(encoder(rows), expected)


def test_the_cnn_takes_images_of_any_size() -> None:
    for shape in ([1, 8, 8], [3, 32, 48]):
        net = CNN(shape, num_classes=4)
        assert net(torch.zeros(2, *shape)).shape == (2, 4)
    with pytest.raises(ValueError, match="channels, height, width"):
        CNN([64], num_classes=4)


def test_configure_optimizers_uses_the_configured_lr(
    make_model: Callable[..., Classifier],
) -> None:
    model = make_model(lr=0.005, weight_decay=1e-4)
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    (group,) = optimizer.param_groups
    assert group["lr"] == 0.005
    assert group["weight_decay"] == 1e-4
    assert len(group["params"]) == len(list(model.parameters()))


def test_hyperparameters_are_saved(make_model: Callable[..., Classifier]) -> None:
    model = make_model(hidden_size=16, dropout=0.25, lr=0.1)
    linear = next(m for m in model.net.modules() if isinstance(m, torch.nn.Linear))
    assert isinstance(linear, torch.nn.Linear)
    assert linear.out_features == 16
    assert model.hparams["lr"] == 0.1
    assert json.loads(model.hparams["preprocessing"])["kind"] in ("image", "table")


def test_mlp_is_a_plain_module() -> None:
    net = MLP(input_shape=[3, 4], hidden_size=5, num_classes=3)
    assert net(torch.zeros(4, 3, 4)).shape == (4, 3)


def test_one_step_changes_every_parameter(
    model: Classifier, batch: Batch, make_trainer: MakeTrainer
) -> None:
    before = [p.detach().clone() for p in model.parameters()]
    make_trainer(max_steps=1).fit(model, train_dataloaders=loader(batch))
    after = list(model.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_overfits_one_batch(
    model: Classifier, batch: Batch, make_trainer: MakeTrainer
) -> None:
    trainer = make_trainer(max_epochs=30, overfit_batches=1)
    trainer.fit(model, train_dataloaders=loader(batch))
    assert trainer.callback_metrics["train_loss"] < 0.01
    assert trainer.callback_metrics["train_acc"].item() == pytest.approx(1.0)


def test_a_fit_checkpoint_alone_rebuilds_the_model(
    smoke_run: Path,
    datamodule: Any,
    batch: Batch,
    make_model: Callable[..., Classifier],
) -> None:
    path = smoke_run / "checkpoints" / "best.ckpt"
    saved = torch.load(path, weights_only=True)
    restored = Classifier.load_from_checkpoint(path)
    # The network's class and options, and the data's statistics, travel in it.
    assert saved["hyper_parameters"]["net"]["class_path"].endswith("MLP")
    assert restored.input_spec == datamodule.input_spec
    assert restored.class_names == datamodule.class_names
    assert any(key.startswith("preprocess.") for key in saved["state_dict"])
    # The same weights in a model built by hand, as the CLI links it.
    by_hand = make_model()
    by_hand.load_state_dict(saved["state_dict"])
    untrained = make_model()
    with torch.no_grad():
        logits = restored.eval()(batch[0])
        assert torch.equal(logits, by_hand.eval()(batch[0]))
        assert not torch.equal(logits, untrained.eval()(batch[0]))
