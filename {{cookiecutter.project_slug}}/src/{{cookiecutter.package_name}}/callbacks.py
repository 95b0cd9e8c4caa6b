"""Callbacks that keep a run's record in its run folder, and report on it.

They read metrics from ``trainer.callback_metrics``, never from a logger's
files, so the record looks the same whichever logger is configured (or none).
Only the global rank-zero process writes the shared files, so they are safe
under DDP on any number of devices and nodes.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from .names import PROGRAM, SUMMARIES
from .plots import plot_learning_curves
from .run import (
    BEST_CHECKPOINT,
    CONFIG,
    LAST_CHECKPOINT,
    MANIFEST,
    METRICS,
    PLOT,
    PREDICTIONS,
    Row,
    read_metrics,
    slurm_job,
)
from .summary import Summary
from .tracking import log_best_checkpoint


class RunFolder(pl.Callback):
    """Write the config, manifest, per-epoch metrics and learning curves of a run.

    In the run folder:

    - ``config.yaml``: the resolved config, ready for ``--config``.
    - ``manifest.json``: what produced the run (see the ``run`` module), how
      the Trainer ran it and how it ended (``status``: ``running`` until it is
      ``complete``, ``failed``, ``interrupted`` or ``pruned``; ``finished``,
      ``duration_s``; under Slurm, the job as ``slurm``); a resumed run (also
      a requeued Slurm job's) keeps earlier sessions under
      ``previous_sessions``.
    - ``metrics.csv``: one row per epoch while fitting (a single row of final
      metrics for ``validate`` and ``test``), rewritten as rows arrive.
    - ``learning_curves.png``: train and validation curves, after fitting.
    """

    def __init__(self, run_dir: Path, config: str, manifest: dict[str, Any]) -> None:
        """Remember what to write; nothing touches the disk before ``setup``.

        Args:
            run_dir: The run folder, created when the Trainer sets up.
            config: The resolved config as YAML text.
            manifest: The manifest entries known before the Trainer starts.
        """
        self.run_dir = run_dir
        self.config = config
        self.manifest = manifest
        self.rows: list[Row] = []
        self._validated_this_epoch = False
        self._written: dict[str, Any] = {}  # the manifest as last written
        self._started = time.monotonic()

    @override
    def setup(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str
    ) -> None:
        """Create the folder and write the config and manifest (rank zero)."""
        # Each process may have timestamped its own name; rank zero's counts.
        self.run_dir = Path(trainer.strategy.broadcast(str(self.run_dir)))
        if not trainer.is_global_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CONFIG).write_text(self.config, encoding="utf-8")
        self._write_manifest(trainer)
        self.rows = read_metrics(self.run_dir / METRICS) if stage == "fit" else []

    @override
    def on_train_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """After a resume, keep the rows of the epochs the checkpoint had done."""
        self.rows = [row for row in self.rows if row["epoch"] < trainer.current_epoch]

    @override
    def on_validation_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Note that this epoch has fresh validation metrics."""
        self._validated_this_epoch = not trainer.sanity_checking

    @override
    def on_train_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Append the epoch's metrics to ``metrics.csv``."""
        metrics = _scalars(trainer.callback_metrics)
        if not self._validated_this_epoch:  # drop the values of an earlier epoch
            metrics = {k: v for k, v in metrics.items() if not k.startswith("val_")}
        self._validated_this_epoch = False
        if trainer.is_global_zero:
            row: Row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
            self.rows.append(row | metrics)
            self._write_metrics()

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Plot the learning curves; the run is complete.

        An MLflow logger's run also gets the best checkpoint's path and score
        (see ``tracking.log_best_checkpoint``).
        """
        self._plot(trainer)
        if trainer.is_global_zero:
            log_best_checkpoint(trainer)
        self._finish(trainer, "complete")

    @override
    def on_validation_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """For ``validate``, write the final metrics."""
        if trainer.state.fn == "validate":
            self._write_final_metrics(trainer)

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """For ``test``, write the final metrics."""
        self._write_final_metrics(trainer)

    @override
    def on_predict_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """For ``predict``, the run is complete."""
        self._finish(trainer, "complete")

    @override
    def on_exception(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        exception: BaseException,
    ) -> None:
        """A failed or interrupted run still leaves its curves and says how it ended.

        Ctrl+C makes the run ``interrupted``, and so does SIGTERM (Lightning's
        ``SIGTERMException``: how Slurm ends a job it preempts, requeues or
        times out; a requeued job continues the run, see
        ``run.new_run_dir``); Optuna's ``TrialPruned`` (raised by its pruning
        callback) makes it ``pruned``; anything else ``failed``.
        """
        self._plot(trainer)
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            status = "interrupted"
        elif type(exception).__name__ == "TrialPruned":
            status = "pruned"
        else:
            status = "failed"
        self._finish(trainer, status, error=f"{type(exception).__name__}: {exception}")

    @property
    def written(self) -> dict[str, Any]:
        """The manifest as last written (empty before ``setup``, and off rank zero)."""
        return self._written

    def _plot(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero and self.rows:
            checkpoint = trainer.checkpoint_callback
            plot_learning_curves(
                self.rows,
                self.run_dir / PLOT,
                title=self.run_dir.name,
                monitor=getattr(checkpoint, "monitor", None),
                mode=getattr(checkpoint, "mode", "min"),
            )

    def _finish(
        self, trainer: pl.Trainer, status: str, error: str | None = None
    ) -> None:
        """Record in the manifest how and when the run ended (rank zero)."""
        if not trainer.is_global_zero or not self._written:
            return
        self._written |= {
            "status": status,
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self._started, 3),
        }
        if error is not None:
            self._written["error"] = error
        path = self.run_dir / MANIFEST
        path.write_text(json.dumps(self._written, indent=2) + "\n", encoding="utf-8")

    def _write_final_metrics(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero:
            self.rows = [_scalars(trainer.callback_metrics)]
            self._write_metrics()
            if trainer.state.fn in ("validate", "test"):
                self._finish(trainer, "complete")

    def _write_manifest(self, trainer: pl.Trainer) -> None:
        manifest = {
            **self.manifest,
            "trainer": {
                "accelerator": type(trainer.accelerator).__name__,
                "strategy": type(trainer.strategy).__name__,
                "num_nodes": trainer.num_nodes,
                "num_devices": trainer.num_devices,
                "world_size": trainer.world_size,
                "precision": str(trainer.precision),
                "deterministic": torch.are_deterministic_algorithms_enabled(),
                "torch_threads": torch.get_num_threads(),
            },
        }
        if (job := slurm_job()) is not None:
            manifest["slurm"] = job
        path = self.run_dir / MANIFEST
        if path.exists():  # resuming: keep what the earlier sessions recorded
            earlier = json.loads(path.read_text(encoding="utf-8"))
            sessions = earlier.pop("previous_sessions", [])
            if earlier.get("status") == "running" and _requeued(earlier, manifest):
                # Slurm ended that session (after Lightning's HPC checkpoint)
                # harder than the run could record it.
                earlier["status"] = "interrupted"
                earlier["error"] = "Slurm requeued the job"
            manifest["previous_sessions"] = [*sessions, earlier]
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        self._written = manifest
        self._started = time.monotonic()

    def _write_metrics(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        with (self.run_dir / METRICS).open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


def _requeued(earlier: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether ``now`` is a later session of the same Slurm job as ``earlier``."""
    before, after = earlier.get("slurm"), now.get("slurm")
    return (
        isinstance(before, dict)
        and isinstance(after, dict)
        and before.get("job_id") == after.get("job_id")
        and int(after.get("restart_count") or 0) > int(before.get("restart_count") or 0)
    )


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm progress bar, redrawn at most every ``refresh_interval`` s.

    ``TQDMProgressBar`` redraws after every ``refresh_rate`` batches, which for
    a small network costs about as much as the step itself (a redraw formats
    every metric and writes to the terminal). This bar redraws when
    ``refresh_interval`` seconds have passed since its last redraw, and at
    the end of each loop, so it looks the same to a person at any speed of
    training.
    """

    def __init__(self, refresh_interval: float = 0.1, **kwargs: Any) -> None:
        """Redraw at most every ``refresh_interval`` seconds.

        Args:
            refresh_interval: Seconds between two redraws within a loop.
            **kwargs: ``TQDMProgressBar``'s own options (``leave``, ...).
        """
        super().__init__(**kwargs)
        self.refresh_interval = refresh_interval
        self._last_redraw = -float("inf")

    @override
    def _should_update(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or now - self._last_redraw >= self.refresh_interval:
            self._last_redraw = now
            return True
        return False


class RunSummary(pl.Callback):
    """Print, at the end of a command, what it did and what to run next.

    A few ``label: value`` lines (see the ``summary`` module) from the global
    rank-zero process, printed whether or not a progress bar is shown: after
    ``fit``, the run folder, the best checkpoint and its monitored value, the
    last validation metrics, the plot and the commands that use this run;
    after ``validate``/``test``/``predict``, the metrics and where the results
    are; after a failure or Ctrl+C, what the run folder kept. Put it after
    the other callbacks: it reports what they wrote.
    """

    def __init__(self, record: RunFolder) -> None:
        """Report on the run that ``record`` writes.

        Args:
            record: The run's :class:`RunFolder` callback.
        """
        self.record = record

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Summarise the finished training."""
        if trainer.is_global_zero:
            fit_summary(trainer, self.record).print()

    @override
    def on_validation_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """For ``validate``, summarise the scores."""
        if trainer.is_global_zero and trainer.state.fn == "validate":
            evaluation_summary(trainer, self.record, "validate").print()

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Summarise the test scores."""
        if trainer.is_global_zero:
            evaluation_summary(trainer, self.record, "test").print()

    @override
    def on_predict_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Summarise where the predictions are."""
        if trainer.is_global_zero:
            evaluation_summary(trainer, self.record, "predict").print()

    @override
    def on_exception(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        exception: BaseException,
    ) -> None:
        """Say how the command ended and what its run folder kept."""
        if trainer.is_global_zero:
            stopped_summary(trainer, self.record, exception).print()


def fit_summary(trainer: pl.Trainer, record: RunFolder) -> Summary:
    """What a finished ``fit`` tells its user."""
    run = record.run_dir
    duration = float(record.written.get("duration_s", 0.0))
    summary = Summary(
        f"fit complete: {trainer.current_epoch} epochs in {duration:.1f} s"
    )
    summary.add("run", run)
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "")
    if best and Path(best).is_absolute() and Path(best).is_relative_to(Path.cwd()):
        best = Path(best).relative_to(Path.cwd()).as_posix()
    if best:
        score = getattr(checkpoint, "best_model_score", None)
        monitor = getattr(checkpoint, "monitor", None)
        if score is not None and monitor:
            best += f" ({monitor} {_number(float(score))})"
        summary.add("best checkpoint", best)
    last = record.rows[-1] if record.rows else {}
    for key, value in last.items():
        if key.startswith("val_"):
            summary.add(key, _number(value))
    summary.add("epochs", trainer.current_epoch)
    summary.add("duration", f"{duration:.1f} s")
    if (run / PLOT).is_file():
        summary.add("plot", run / PLOT)
    for words in next_commands(run):
        summary.suggest(*words)
    return summary


def next_commands(run: Path) -> list[list[str | Path]]:
    """The commands that use a trained run, for those this project has."""
    commands: list[list[str | Path]] = [
        [PROGRAM, "test", "--run", run],
        [PROGRAM, "predict", "--run", run],
    ]
    if "export" in SUMMARIES:
        commands.append([PROGRAM, "export", run])
    if "tune" in SUMMARIES:
        commands.append([PROGRAM, "tune", "--config", run / CONFIG])
    return commands


def evaluation_summary(trainer: pl.Trainer, record: RunFolder, fn: str) -> Summary:
    """What a finished ``validate``, ``test`` or ``predict`` tells its user."""
    run = record.run_dir
    summary = Summary(f"{fn} complete").add("run", run)
    checkpoint = record.manifest.get("ckpt_path")
    if checkpoint:
        summary.add("checkpoint", checkpoint)
    if fn == "predict":
        written = sorted(run.glob("predictions*.csv"))
        for path in written:
            with path.open(encoding="utf-8") as file:
                count = sum(1 for _ in file) - 1
            summary.add("predictions", f"{path.as_posix()} ({count} rows)")
    else:
        for key, value in (record.rows[0] if record.rows else {}).items():
            summary.add(key, _number(value))
        summary.add("metrics", run / METRICS)
    source = _source_run(checkpoint)
    if source is not None:
        for words in next_commands(source):
            if words[1] != fn:
                summary.suggest(*words)
    return summary


def stopped_summary(
    trainer: pl.Trainer, record: RunFolder, exception: BaseException
) -> Summary:
    """What a failed or interrupted command tells its user: what was kept."""
    run = record.run_dir
    status = str(record.written.get("status", "failed"))
    fn = str(trainer.state.fn or "run")
    title = f"{fn} {status}"
    if not isinstance(exception, KeyboardInterrupt):
        title += f": {type(exception).__name__}: {exception}".splitlines()[0]
    summary = Summary(title).add("run", run)
    kept = [name for name in (CONFIG, MANIFEST, PLOT) if (run / name).is_file()]
    if (run / METRICS).is_file():
        kept.append(f"{METRICS} ({len(record.rows)} rows)")
    kept += [
        name for name in (BEST_CHECKPOINT, LAST_CHECKPOINT) if (run / name).is_file()
    ]
    summary.add("kept", ", ".join(kept) or "nothing")
    if fn == "fit" and (run / LAST_CHECKPOINT).is_file():
        summary.suggest(PROGRAM, "fit", "--resume", run)
    return summary


def _source_run(checkpoint: object) -> Path | None:
    """The run folder a checkpoint file belongs to, if it is in one."""
    if not isinstance(checkpoint, str) or not checkpoint:
        return None
    folder = Path(checkpoint).parent
    if folder.name == "checkpoints" and (folder.parent / CONFIG).is_file():
        return folder.parent
    return None


def _number(value: float | int) -> str:
    """A metric as a short number: 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class PredictionWriter(BasePredictionWriter):
    """Write ``predict``'s output to ``predictions.csv``, one row per sample.

    Columns: ``input`` (the sample's name: its row in the file it came from,
    its image file's name, or its position in the test split), ``prediction``
    (the most probable class) and ``probability_<class>`` for every class.
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
                ["input", "prediction", *(f"probability_{c}" for c in classes)]
            )
            for index, probabilities in self.rows:
                best = max(range(width), key=probabilities.__getitem__)
                label = names[index] if index < len(names) else str(index)
                writer.writerow(
                    [label, classes[best], *(f"{p:.7g}" for p in probabilities)]
                )


def _scalars(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """Single-number metrics as floats, sorted by name (train_* before val_*)."""
    return {
        key: metrics[key].item() for key in sorted(metrics) if metrics[key].numel() == 1
    }
