"""Callbacks that keep a run's record in its run folder, and collect how it ended.

They read metrics from ``trainer.callback_metrics``, never from a logger's
files, so the record looks the same whichever logger is configured (or none).
Only the global rank-zero process writes the shared files, so they are safe
under DDP on any number of devices and nodes.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from .names import CONFIG, MANIFEST, METRICS, PLOT
from .plots import plot_learning_curves
from .run import Row, read_metrics, slurm_job
from .summary import Outcome
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
        self._record_epoch(trainer)

    def _record_epoch(self, trainer: pl.Trainer, validation_only: bool = False) -> None:
        """Append a row of the epoch's metrics (never an earlier epoch's values)."""
        validated, self._validated_this_epoch = self._validated_this_epoch, False
        metrics = {
            key: value
            for key, value in _scalars(trainer.callback_metrics).items()
            if (validated if key.startswith("val_") else not validation_only)
        }
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
        An epoch stopped after its validation (where pruning stops a trial)
        keeps a row of its validation metrics: the value it was judged by.
        """
        if trainer.state.fn == "fit" and self._validated_this_epoch:
            self._record_epoch(trainer, validation_only=True)
        if isinstance(exception, KeyboardInterrupt | SIGTERMException):
            status = "interrupted"
        elif type(exception).__name__ == "TrialPruned":
            status = "pruned"
        else:
            status = "failed"
        self._plot(trainer, status)
        self._finish(trainer, status, error=f"{type(exception).__name__}: {exception}")

    @property
    def written(self) -> dict[str, Any]:
        """The manifest as last written (empty before ``setup``, and off rank zero)."""
        return self._written

    def _plot(self, trainer: pl.Trainer, status: str = "complete") -> None:
        """Plot the rows; a run that did not complete says so in the title."""
        if trainer.is_global_zero and self.rows:
            checkpoint = trainer.checkpoint_callback
            title = self.run_dir.name
            if status != "complete":
                title += f" ({status} after epoch {self.rows[-1]['epoch']})"
            plot_learning_curves(
                self.rows,
                self.run_dir / PLOT,
                title=title,
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


class RunSummary(pl.Callback):
    """Collect how a command ended, for the summary the command prints.

    When ``fit``, ``validate``, ``test`` or ``predict`` ends or fails, the
    global rank-zero process gathers what the run's :class:`RunFolder` wrote
    and what the Trainer knows (its best checkpoint) into an
    :class:`~.summary.Outcome`. The command prints
    :func:`~.summary.command_summary` of it, which says what to run next.
    Put it after the other callbacks: it collects what they wrote.
    """

    def __init__(self, record: RunFolder) -> None:
        """Collect what ``record`` writes.

        Args:
            record: The run's :class:`RunFolder` callback.
        """
        self.record = record
        self.outcome: Outcome | None = None
        """How the command ended; ``None`` until it has (and off rank zero)."""

    @staticmethod
    def collected(trainer: pl.Trainer) -> Outcome | None:
        """The outcome collected by the Trainer's ``RunSummary``, if it has one."""
        callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set at run time
        found = [c.outcome for c in callbacks if isinstance(c, RunSummary)]
        return next((outcome for outcome in found if outcome is not None), None)

    @override
    def teardown(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str
    ) -> None:
        """The command is done (Lightning skips this hook after a failure)."""
        self._collect(trainer)

    @override
    def on_exception(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        exception: BaseException,
    ) -> None:
        """The command failed, was interrupted or pruned."""
        interrupted = isinstance(exception, KeyboardInterrupt)
        error = "" if interrupted else f"{type(exception).__name__}: {exception}"
        self._collect(trainer, error)

    def _collect(self, trainer: pl.Trainer, error: str = "") -> None:
        if not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback
        written = self.record.written
        self.outcome = Outcome(
            command=trainer.state.fn.value if trainer.state.fn else "run",
            run=self.record.run_dir,
            status=str(written.get("status") or "failed"),
            duration_s=float(written.get("duration_s") or 0.0),
            rows=list(self.record.rows),
            monitor=getattr(checkpoint, "monitor", None),
            mode=str(getattr(checkpoint, "mode", "min")),
            best_checkpoint=str(getattr(checkpoint, "best_model_path", "") or ""),
            checkpoint=self.record.manifest.get("ckpt_path"),
            error=error,
        )


def _scalars(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """Single-number metrics as floats, sorted by name (train_* before val_*)."""
    return {
        key: metrics[key].item() for key in sorted(metrics) if metrics[key].numel() == 1
    }
