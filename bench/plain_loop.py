"""The default digits run as a plain PyTorch loop: the floor of ``Trainer.fit``.

No Lightning: the same work as ``fit --config configs/default.yaml`` of a
default bake (digits), written by hand, so that the ratio of the two is what
the training system costs on top of the arithmetic. Run it with the baked
project's Python (it needs torch, NumPy and scikit-learn only)::

    .venv/bin/python bench/plain_loop.py            # one JSON line on stdout

What it reproduces, step for step:

- the seed (42) applied to Python, NumPy and torch before anything is built,
  deterministic algorithms and one CPU thread, as the CLI's defaults;
- ``DigitsDataModule``'s split (stratified 70/15/15 with ``split_seed`` 42)
  and its standardisation with the training pixels' mean and deviation;
- ``MLP``: flatten, Linear(64, 64), ReLU, Dropout(0), Linear(64, 10), built
  in the same order, so its initial weights are the same draws;
- Adam (lr 0.02), batches of 64 (shuffled every epoch by a sampler seeded from
  torch's global generator, as ``DataLoader(shuffle=True)`` does), 20 epochs,
  with the validation set evaluated after every epoch;
- the validation accuracy as ``MulticlassAccuracy`` computes it (the mean of
  the per-class accuracies) and the loss as a batch-size-weighted mean.

The timed part starts before the data is loaded (``Trainer.fit`` sets the
DataModule up too) and ends after the last validation.
"""

from __future__ import annotations

import json
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.datasets import load_digits  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 42
SPLIT_SEED = 42
VAL_FRACTION = TEST_FRACTION = 0.15
BATCH_SIZE = 64
EPOCHS = 20
LR = 0.02
HIDDEN = 64
CLASSES = 10


def data() -> tuple[TensorDataset, TensorDataset]:
    """Train and validation sets, split and standardised as DigitsDataModule does."""
    images, labels = load_digits(return_X_y=True)
    train_val, _test = train_test_split(
        np.arange(len(labels)),
        test_size=TEST_FRACTION,
        stratify=labels,
        random_state=SPLIT_SEED,
    )
    train, val = train_test_split(
        train_val,
        test_size=VAL_FRACTION / (1 - TEST_FRACTION),
        stratify=labels[train_val],
        random_state=SPLIT_SEED,
    )
    pixels = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8)
    targets = torch.as_tensor(labels, dtype=torch.int64)
    mean, std = pixels[train].mean(), pixels[train].std()
    pixels = (pixels - mean) / std
    return (
        TensorDataset(pixels[train], targets[train]),
        TensorDataset(pixels[val], targets[val]),
    )


def evaluate(net: nn.Module, loader: DataLoader[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """Validation loss (weighted by batch size) and macro accuracy."""
    net.eval()
    loss_sum, count = 0.0, 0
    correct = torch.zeros(CLASSES, dtype=torch.int64)
    support = torch.zeros(CLASSES, dtype=torch.int64)
    with torch.no_grad():
        for x, y in loader:
            logits = net(x)
            loss_sum += F.cross_entropy(logits, y).item() * len(y)
            count += len(y)
            hits = logits.argmax(dim=1) == y
            correct += torch.bincount(y[hits], minlength=CLASSES)
            support += torch.bincount(y, minlength=CLASSES)
    net.train()
    present = support > 0
    accuracy = (correct[present].double() / support[present].double()).mean().item()
    return {"val_loss": loss_sum / count, "val_acc": accuracy}


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, HIDDEN),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(HIDDEN, CLASSES),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)

    started = time.perf_counter()
    c0 = time.thread_time()
    train_set, val_set = data()
    train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=BATCH_SIZE)
    history = []
    net.train()
    for _epoch in range(EPOCHS):
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        history.append(evaluate(net, val_loader))
    fit_s = time.perf_counter() - started
    print(
        json.dumps(
            {"cpu_s": time.thread_time() - c0, "fit_s": fit_s, "epochs": EPOCHS, **history[-1]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
