"""What ``predict`` writes into its run folder: ``predictions.csv``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from .names import PREDICTIONS


class PredictionWriter(BasePredictionWriter):
    """Write ``predict``'s output to ``predictions.csv``, one row per sample.

    Columns: ``input`` (the sample's name: its row in the file it came from,
    its image file's name, or its position in the test split), ``prediction``
    (the most probable class's name), ``prediction_index`` (its index, what
    ``serve`` and the ONNX model answer) and ``probability_<class>`` for every
    class.
    The DataModule names the samples (``predict_names``) and the classes
    (``class_names``). Under DDP each process predicts a share of the samples
    and writes its own file, ``predictions-rank<N>.csv``.
    """

    def __init__(self, run_dir: Path) -> None:
        """Write into ``run_dir``.

        Args:
            run_dir: The run folder.
        """
        super().__init__(write_interval="batch")
        self.run_dir = run_dir
        self.rows: list[tuple[int, list[float]]] = []

    @override
    def setup(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str
    ) -> None:
        """Agree with every process on rank zero's run folder."""
        self.run_dir = Path(trainer.strategy.broadcast(str(self.run_dir)))

    @override
    def on_predict_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Start with no rows."""
        self.rows = []

    @override
    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Collect the batch's class probabilities with their sample indices."""
        if batch_indices is not None:
            self.rows.extend(zip(batch_indices, prediction.tolist(), strict=True))

    @override
    def on_predict_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Write the collected rows."""
        name = PREDICTIONS
        if trainer.world_size > 1:
            name = f"predictions-rank{trainer.global_rank}.csv"
        data = getattr(trainer, "datamodule", None)
        names: list[str] = list(getattr(data, "predict_names", []))
        classes = list(getattr(data, "class_names", []))
        width = len(self.rows[0][1]) if self.rows else len(classes)
        if len(classes) != width:
            classes = [str(number) for number in range(width)]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / name).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(
                [
                    "input",
                    "prediction",
                    "prediction_index",
                    *(f"probability_{c}" for c in classes),
                ]
            )
            for index, probabilities in self.rows:
                best = max(range(width), key=probabilities.__getitem__)
                label = names[index] if index < len(names) else str(index)
                writer.writerow(
                    [
                        label,
                        classes[best],
                        best,
                        *(f"{p:.7g}" for p in probabilities),
                    ]
                )
