"""The networks, and the preprocessing that travels with them.

Following Lightning's own style, a network is a plain ``nn.Module`` that knows
nothing about training; the system (``system.Classifier``) takes one as its
``net`` argument. Pick one on the command line (``--model.net CNN``), set its
options (``--model.net.init_args.hidden_size 128``), or give the class path of
your own module. Every network here takes two arguments that the command line
fills in from the DataModule, never typed by hand:

- ``input_shape``: the shape of one sample as the network sees it, after the
  preprocessing (a table's 13 columns may become 20 numbers once its
  categories are one-hot encoded);
- ``num_classes``: how many scores to answer per sample.

A network of your own that takes those two arguments works with every command;
see ``docs/your-data.md``.

The preprocessing modules turn raw inputs, exactly as the data gives them,
into what the network takes, with the training split's statistics held as
buffers: they are saved in every checkpoint and become constants of an
exported graph, so a model takes raw inputs wherever it goes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import override


class Standardize(nn.Module):
    """Per-channel ``(x - mean) / std`` of images shaped ``(batch, channels, ...)``."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Keep the statistics, one value per channel.

        Args:
            mean: Mean of each channel's raw training values.
            std: Their standard deviations (positive).
        """
        super().__init__()
        if len(mean) != len(std) or not all(value > 0 for value in std):
            raise ValueError("need one positive std per channel mean")
        shape = (len(mean), 1, 1)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(shape)
        )
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    @override
    def forward(self, x: Tensor) -> Tensor:
        """The standardised inputs, shaped like ``x``."""
        return (x - self.mean) / self.std


class TableEncoder(nn.Module):
    """A table's raw row to numbers: standardised numbers, one-hot categories.

    The input holds one value per column, in the card's order: a numeric
    column's raw value, or a categorical column's category index (``-1``, or
    any index out of range, encodes as all zeros). The output holds the
    standardised numeric columns, then each categorical column's one-hot code.
    """

    mean: Tensor
    std: Tensor
    numeric: Tensor
    slot_columns: Tensor
    slot_codes: Tensor

    def __init__(self, columns: Sequence[Mapping[str, Any]]) -> None:
        """Keep each column's statistics or categories.

        Args:
            columns: One entry per column: ``{"kind": "numeric", "mean": m,
                "std": s}`` or ``{"kind": "categorical", "categories": [...]}``.
        """
        super().__init__()
        numeric = [i for i, column in enumerate(columns) if column["kind"] == "numeric"]
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.int64))
        mean = [float(columns[i]["mean"]) for i in numeric]
        std = [float(columns[i]["std"]) or 1.0 for i in numeric]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        # One slot per (categorical column, category): the slot is 1 where
        # the column holds that category's index.
        slots = [
            (i, k)
            for i, column in enumerate(columns)
            if column["kind"] == "categorical"
            for k in range(len(column["categories"]))
        ]
        self.register_buffer(
            "slot_columns", torch.tensor([i for i, _ in slots], dtype=torch.int64)
        )
        self.register_buffer(
            "slot_codes", torch.tensor([k for _, k in slots], dtype=torch.float32)
        )
        self.features = len(numeric) + len(slots)

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Rows of raw values ``(batch, columns)`` to ``(batch, features)``."""
        numbers = (x[:, self.numeric] - self.mean) / self.std
        onehot = (x[:, self.slot_columns] == self.slot_codes).to(x.dtype)
        return torch.cat([numbers, onehot], dim=1)


def build_preprocessing(spec: Mapping[str, Any]) -> nn.Module:
    """The preprocessing module an input spec describes (see ``docs/your-data.md``).

    Args:
        spec: A DataModule's ``input_spec``: ``kind`` ``"table"`` with
            ``columns``, or ``"image"`` with per-channel ``mean`` and ``std``.
    """
    if spec["kind"] == "table":
        return TableEncoder(spec["columns"])
    if spec["kind"] == "image":
        return Standardize(spec["mean"], spec["std"])
    raise ValueError(f"unknown input kind {spec['kind']!r}: 'table' or 'image'")


class MLP(nn.Module):
    """A multilayer perceptron: flatten, one hidden ReLU layer, class scores."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_size: int = 64,
        dropout: float = 0.0,
    ) -> None:
        """Build the layers.

        Args:
            input_shape: One sample's shape (the command line fills it in).
            num_classes: Output scores per sample (filled in likewise).
            hidden_size: Units in the hidden layer.
            dropout: Probability of zeroing a hidden unit while training.
        """
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) of shape ``(batch, num_classes)``."""
        logits: Tensor = self.layers(x)
        return logits


class CNN(nn.Module):
    """A small convolutional network for images of any size.

    ``blocks`` times: a 3x3 convolution, batch normalisation, ReLU and 2x2 max
    pooling, doubling the channels each time; then global average pooling,
    dropout and a linear layer. Any image size works, down to ``2**blocks``
    pixels a side.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: int = 16,
        blocks: int = 2,
        dropout: float = 0.0,
    ) -> None:
        """Build the layers.

        Args:
            input_shape: ``(channels, height, width)`` of one image (filled in).
            num_classes: Output scores per sample (filled in).
            channels: Channels of the first convolution (doubled per block).
            blocks: Convolution blocks.
            dropout: Dropout before the linear layer.
        """
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"CNN needs images (channels, height, width), got {input_shape}"
            )
        layers: list[nn.Module] = []
        width = input_shape[0]
        for block in range(blocks):
            out = channels * 2**block
            layers += [
                nn.Conv2d(width, out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) of shape ``(batch, num_classes)``."""
        logits: Tensor = self.head(self.features(x))
        return logits
