"""The system: the LightningModule that trains the network.

It owns everything around the network (``net``, any ``nn.Module``: ``model.MLP``
by default, ``model.CNN``, or your own): the preprocessing of raw inputs, the
loss, the metrics, the optimiser and what happens in each training,
validation, test and prediction step.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy
from torchmetrics.utilities import dim_zero_cat
from typing_extensions import override

from .model import build_preprocessing

Batch = tuple[Tensor, Tensor]
"""A batch of ``(inputs, targets)``: inputs of any shape, integer class targets."""


class EpochAccuracy(Metric):
    """Plain accuracy over an epoch, counted once, when it is computed.

    ``MulticlassAccuracy.update`` counts each batch as it comes, which (with
    deterministic algorithms, the default here) costs about a third of a
    training step of a small network. This metric only keeps each batch's predicted
    classes and targets, a few microseconds, and hands them all to the same
    function, ``multiclass_accuracy`` (micro average: plain accuracy), when the
    epoch's value is computed: the value is the same, to the last digit. Under DDP every
    process's batches are gathered first. It holds two integers per sample
    until the epoch ends.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    preds: list[Tensor]
    target: list[Tensor]

    def __init__(self, num_classes: int) -> None:
        """Count ``num_classes`` classes.

        Args:
            num_classes: Number of classes.
        """
        super().__init__()
        self.num_classes = num_classes
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    @override
    def update(self, logits: Tensor, target: Tensor) -> None:
        """Keep a batch's predicted classes and targets."""
        self.preds.append(logits.argmax(dim=1))
        self.target.append(target)

    @override
    def compute(self) -> Tensor:
        """The share of samples classified right since the last reset."""
        return multiclass_accuracy(
            dim_zero_cat(self.preds),
            dim_zero_cat(self.target),
            self.num_classes,
            average="micro",
        )


class Classifier(pl.LightningModule):
    """Trains a network with cross-entropy and Adam, and reports accuracy.

    Logs ``train_loss``/``train_acc`` per epoch, ``val_loss``/``val_acc`` and
    ``test_loss``/``test_acc``: ``*_acc`` is plain accuracy, the share of
    samples classified right; ``val_balanced_acc``/``test_balanced_acc`` are
    the mean of the per-class recalls (balanced accuracy), the fairer number
    when classes differ in size. It takes raw inputs, as the data gives them,
    and preprocesses them itself (``model.build_preprocessing`` of the
    DataModule's ``input_spec``). Every argument, the network's class and
    options included, is saved as a hyperparameter, so
    ``Classifier.load_from_checkpoint(path)`` rebuilds the same model.

    Each step adds its batch to torchmetrics objects (a running mean of the
    loss, the accuracy's counts) and logs those objects on the epoch's first
    batch only: Lightning keeps a logged metric, computes it when the epoch
    ends and resets it for the next one. ``self.log`` costs far more per call
    than a metric's ``update``, so this pattern keeps the per-step cost low;
    log a plain tensor only for values wanted at every step (``on_step=True``).
    The training accuracy, updated at every training step, is an
    :class:`EpochAccuracy`, which counts once per epoch.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        preprocessing: str | None = None,
        class_names: list[str] | None = None,
        lr: float = 0.02,
        weight_decay: float = 0.0,
        compile: bool = False,
    ) -> None:
        """Keep the network; build the preprocessing and the metrics.

        Args:
            net: The network (``--model.net MLP``, ``CNN`` or a class path);
                its ``input_shape`` and ``num_classes`` come from the data.
            num_classes: Number of classes, taken from the DataModule.
            preprocessing: The DataModule's ``input_spec`` as JSON text (what
                a raw sample is, with the training split's statistics), taken
                from it. ``None``: the network takes the inputs as they come.
            class_names: The name of each class index, taken from the
                DataModule (kept so that a checkpoint alone names its classes).
            lr: Adam's learning rate.
            weight_decay: Adam's L2 penalty.
            compile: Compile the network with ``torch.compile`` (the
                ``nn.Module`` in place, so checkpoints keep their keys).
        """
        super().__init__()
        with warnings.catch_warnings():  # the network's config is what is saved
            warnings.filterwarnings("ignore", ".*is an instance of `nn.Module`")
            self.save_hyperparameters()
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_names = list(class_names or map(str, range(num_classes)))
        self.input_spec: dict[str, Any] = (
            json.loads(preprocessing) if preprocessing else {}
        )
        self.preprocess = (
            build_preprocessing(self.input_spec) if self.input_spec else nn.Identity()
        )
        self.net = net
        if compile:
            self.net.compile()
        # One metric object per stage: each keeps its own running state.
        self.train_acc = EpochAccuracy(num_classes)  # cheap per training step
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_balanced_acc = MulticlassAccuracy(num_classes=num_classes)
        self.test_balanced_acc = MulticlassAccuracy(num_classes=num_classes)
        # Epoch means of the loss, weighted by batch size (as self.log's own).
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        # Lets the model summary show input and output shapes.
        if "shape" in self.input_spec:
            self.example_input_array = torch.zeros(1, *self.input_spec["shape"])

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) for a batch of raw inputs."""
        logits: Tensor = self.net(self.preprocess(x))
        return logits

    @override
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Cross-entropy loss of one training batch (Lightning does the rest)."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_loss.update(loss.detach(), len(y))
        self.train_acc.update(logits.detach(), y)
        if batch_idx == 0:  # once per epoch (see the class docstring)
            self.log(
                "train_loss",
                self.train_loss,
                on_step=False,
                on_epoch=True,
                prog_bar=True,
            )
            self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    @override
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """Log loss and accuracy over the validation set."""
        x, y = batch
        logits = self(x)
        self.val_loss.update(F.cross_entropy(logits, y), len(y))
        self.val_acc.update(logits, y)
        self.val_balanced_acc.update(logits, y)
        if batch_idx == 0:  # once per epoch; the metrics sync across processes
            self.log("val_loss", self.val_loss, prog_bar=True)
            self.log("val_acc", self.val_acc, prog_bar=True)
            self.log("val_balanced_acc", self.val_balanced_acc)

    @override
    def test_step(self, batch: Batch, batch_idx: int) -> None:
        """Log loss and accuracy over the test set."""
        x, y = batch
        logits = self(x)
        self.test_loss.update(F.cross_entropy(logits, y), len(y))
        self.test_acc.update(logits, y)
        self.test_balanced_acc.update(logits, y)
        if batch_idx == 0:  # once per epoch, as in validation
            self.log("test_loss", self.test_loss)
            self.log("test_acc", self.test_acc)
            self.log("test_balanced_acc", self.test_balanced_acc)

    @override
    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Class probabilities, ``(batch, num_classes)``, of each input (no targets).

        The predicted class is the most probable one (``argmax(dim=1)``).
        """
        x, _ = batch
        probabilities: Tensor = F.softmax(self(x), dim=1)
        return probabilities

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over all parameters, with the configured learning rate."""
        return torch.optim.Adam(
            self.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
