"""What the terminal shows while a command trains: a progress bar, or a line an epoch.

Lightning's tqdm bar redraws itself in place on a terminal. Anywhere else (a
file, a pipe, a CI log) every redraw becomes a line of its own, hundreds for
a short fit; there one line per epoch says as much. Only Lightning's public
API is used: its callback hooks, ``disable`` and ``get_metrics``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bars on a terminal; off one, a line per epoch.

    On a terminal, the training bar is redrawn when ``refresh_interval``
    seconds have passed since its last redraw, and at the end of each epoch:
    a redraw formats every metric and costs about as much as a training step
    of a small network, and redrawn by time the bar looks the same at any
    speed. Off a terminal there are no bars, and each epoch ends with a line
    of the metrics the bar would show (``epoch 3  val_loss 0.1234 ...``).
    """

    def __init__(self, refresh_interval: float = 0.1, **kwargs: Any) -> None:
        """Redraw the training bar at most every ``refresh_interval`` seconds.

        Args:
            refresh_interval: Seconds between two redraws within an epoch.
            **kwargs: ``TQDMProgressBar``'s own options (``leave``, ...).
        """
        super().__init__(**kwargs)
        self.refresh_interval = refresh_interval
        self.lines = False
        """Whether this process writes a line per epoch instead of bars."""
        self._last_redraw = -math.inf

    @override
    def setup(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str
    ) -> None:
        """Off a terminal, trade the bars for a line per epoch (rank zero only)."""
        super().setup(trainer, pl_module, stage)
        terminal = sys.stdout.isatty()  # where Lightning draws its bars
        self.lines = trainer.is_global_zero and self.refresh_rate > 0 and not terminal
        if self.lines:
            self.disable()

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Redraw the training bar if ``refresh_interval`` has passed, or at the end."""
        now = time.monotonic()
        last = batch_idx + 1 == self.total_train_batches
        if last or now - self._last_redraw >= self.refresh_interval:
            self._last_redraw = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def on_train_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Off a terminal, write the epoch's line."""
        super().on_train_epoch_end(trainer, pl_module)
        if self.lines:
            metrics = self.get_metrics(trainer, pl_module)
            shown = [
                f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                for key, value in sorted(metrics.items())
                if key != "v_num"  # the logger's version, not a metric
            ]
            print("  ".join([f"epoch {trainer.current_epoch}", *shown]), flush=True)
