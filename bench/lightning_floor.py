"""Lightning's own floor: the plain loop's work under ``Trainer(barebones=True)``.

The same seed, split, network, optimiser, batches and epochs as
``plain_loop.py`` (whose pieces it imports), wrapped in the smallest
LightningModule and run by a Trainer in Lightning's barebones mode, which
turns off everything that costs time per step (logging, checkpoints, progress
bar, model summary, sanity check). What is left is Lightning's loop itself:
its hooks, closures and data fetching. ``fit()`` of the baked project can be
no faster than this; the difference between the two is what the template's
features cost (metrics, checkpoints, logger, progress bar, run folder, plot).
Run it with the baked project's Python::

    .venv/bin/python bench/lightning_floor.py        # one JSON line on stdout

The timed part is ``Trainer.fit``, data loading included, as in the plain
loop; the validation accuracy is computed after it with the plain loop's
``evaluate`` (barebones mode forbids ``self.log``).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.plain_loop import BATCH_SIZE, EPOCHS, LR, SEED, data, evaluate, network


class Floor(pl.LightningModule):
    """The plain loop's network, loss and optimiser, and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.net = network()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=LR)


class Loaders(pl.LightningDataModule):
    """The plain loop's data, loaded when the Trainer sets up (inside the clock)."""

    def setup(self, stage: str) -> None:
        self.train_set, self.val_set = data()

    def train_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return DataLoader(self.train_set, batch_size=BATCH_SIZE, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return DataLoader(self.val_set, batch_size=BATCH_SIZE)


def main() -> int:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    model, loaders = Floor(), Loaders()
    trainer = pl.Trainer(
        barebones=True,
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        deterministic=True,
    )
    started = time.perf_counter()
    c0 = time.thread_time()
    trainer.fit(model, datamodule=loaders)
    fit_s = time.perf_counter() - started
    cpu_s = time.thread_time() - c0
    validated = evaluate(model.net, DataLoader(loaders.val_set, batch_size=BATCH_SIZE))
    print(json.dumps({"cpu_s": cpu_s, "fit_s": fit_s, "epochs": EPOCHS, **validated}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
