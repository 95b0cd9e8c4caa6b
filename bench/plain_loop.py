"""The default digits run as a plain PyTorch loop: the floor of ``Trainer.fit``.

No Lightning: the same work as ``fit --config configs/default.yaml`` of a
default bake (digits), written by hand, so that the ratio of the two is what
the training system costs on top of it. Run it with the baked project's
Python (it needs torch, NumPy, scikit-learn and, with ``--record``,
matplotlib)::

    .venv/bin/python bench/plain_loop.py                  # the arithmetic alone
    .venv/bin/python bench/plain_loop.py --record DIR     # and the run's record

It prints one JSON line on stdout.

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

With ``--record DIR`` it also keeps the record a ``fit`` run keeps, as a hand-
written loop would: the training loss and accuracy of every epoch (accumulated
batch by batch), ``metrics.csv`` rewritten after every epoch, ``last.ckpt``
(weights and optimiser state, for resuming) after every epoch and
``best.ckpt`` whenever the validation loss improves, and a learning-curve PNG
(one panel per metric, the best epoch marked) at the end. matplotlib is
imported before the clock starts, as Lightning imports it before ``fit``.

The timed part starts before the data is loaded (``Trainer.fit`` sets the
DataModule up too) and ends after the last validation (and, with
``--record``, after the plot is written).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

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


def network() -> nn.Module:
    """The MLP, its layers built in the project's order (the same initial draws)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, HIDDEN),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(HIDDEN, CLASSES),
    )


class Scores:
    """A loss mean weighted by batch size, and the macro accuracy, over batches."""

    def __init__(self) -> None:
        self.loss_sum, self.count = 0.0, 0
        self.correct = torch.zeros(CLASSES, dtype=torch.int64)
        self.support = torch.zeros(CLASSES, dtype=torch.int64)

    def add(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        self.loss_sum += loss.item() * len(targets)
        self.count += len(targets)
        hits = logits.argmax(dim=1) == targets
        self.correct += torch.bincount(targets[hits], minlength=CLASSES)
        self.support += torch.bincount(targets, minlength=CLASSES)

    def result(self, stage: str) -> dict[str, float]:
        present = self.support > 0
        per_class = self.correct[present].double() / self.support[present].double()
        return {
            f"{stage}_acc": per_class.mean().item(),
            f"{stage}_loss": self.loss_sum / self.count,
        }


def evaluate(net: nn.Module, loader: DataLoader[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """Validation loss (weighted by batch size) and macro accuracy."""
    net.eval()
    scores = Scores()
    with torch.no_grad():
        for x, y in loader:
            logits = net(x)
            scores.add(logits, y, F.cross_entropy(logits, y))
    net.train()
    return scores.result("val")


def write_metrics(rows: list[dict[str, Any]], path: Path) -> None:
    """All epochs so far, one row each (rewritten every epoch, as the run folder's)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, Any]], path: Path, best: int) -> None:
    """Train and validation curves, one panel per metric, the best epoch marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.4))
    FigureCanvasAgg(figure)
    for ax, metric in zip(figure.subplots(1, 2), ("acc", "loss"), strict=True):
        for stage in ("train", "val"):
            values = [row[f"{stage}_{metric}"] for row in rows]
            ax.plot(range(len(rows)), values, marker="o", label=stage)
        ax.axvline(best, color="grey", linestyle="--", label=f"best (epoch {best})")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(path.parent.name)
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--record",
        type=Path,
        help="also keep the run's record in this folder: metrics, checkpoints, plot",
    )
    record: Path | None = parser.parse_args(argv).record
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        import matplotlib.figure  # noqa: F401  (imported before fit, as by Lightning)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    net = network()
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)

    started = time.perf_counter()
    c0 = time.thread_time()
    train_set, val_set = data()
    train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=BATCH_SIZE)
    rows: list[dict[str, Any]] = []
    best_loss, best_epoch, step = float("inf"), 0, 0
    net.train()
    for epoch in range(EPOCHS):
        scores = Scores()
        for x, y in train_loader:
            optimizer.zero_grad(set_to_none=True)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            step += 1
            if record is not None:
                scores.add(logits.detach(), y, loss.detach())
        validated = evaluate(net, val_loader)
        if record is None:
            rows.append(validated)
            continue
        rows.append({"epoch": epoch, "step": step, **scores.result("train"), **validated})
        write_metrics(rows, record / "metrics.csv")
        state = {
            "epoch": epoch,
            "global_step": step,
            "state_dict": net.state_dict(),
            "optimizer_states": [optimizer.state_dict()],
        }
        torch.save(state, record / "last.ckpt")
        if validated["val_loss"] < best_loss:
            best_loss, best_epoch = validated["val_loss"], epoch
            torch.save(state, record / "best.ckpt")
    if record is not None:
        plot(rows, record / "learning_curves.png", best_epoch)
    fit_s = time.perf_counter() - started
    last = {key: rows[-1][key] for key in ("val_loss", "val_acc")}
    result = {"cpu_s": time.thread_time() - c0, "fit_s": fit_s, "epochs": EPOCHS, **last}
    print(json.dumps({**result, "record": record is not None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
