"""The experiment tracker's record of a run, when the run's config logs to MLflow.

- :func:`log_best_checkpoint`: after ``fit``, the best checkpoint's path
  (tag ``best_checkpoint``) and score (metric ``best_<monitor>``) in the
  MLflow run, beside the parameters and per-epoch metrics that Lightning's
  ``MLFlowLogger`` logs (``RunFolder`` calls it).
- :func:`log_export`: ``export --mlflow`` adds the export folder to the run's
  MLflow run as an artifact (under ``export/``).

The tracking URI is the config's ``trainer.logger.init_args.tracking_uri``,
else ``MLFLOW_TRACKING_URI``, else the local store ``save_dir``
(``./mlruns``), as Lightning's logger picks it. mlflow is imported only
inside the functions that talk to it, so every bake can import this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import UsageError
from .names import CONFIG
from .run import RUN_DIR, RUN_NAME

if TYPE_CHECKING:
    import lightning.pytorch as pl

ARTIFACT_PATH = "export"
"""Where :func:`log_export` puts the export folder among the run's artifacts."""
BEST_CHECKPOINT_TAG = "best_checkpoint"
"""The MLflow run's tag holding the best checkpoint's absolute path."""


def resolve_tracking_uri(configured: str | None, save_dir: str | None) -> str:
    """The tracking URI a run's MLflow logger uses, picked as Lightning's logger does.

    Args:
        configured: ``tracking_uri`` as the config gives it (``None``: not
            given, then ``MLFLOW_TRACKING_URI`` counts).
        save_dir: The local file store used when no URI is set.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or Path(save_dir or "./mlruns").resolve().as_uri()


def log_best_checkpoint(trainer: pl.Trainer) -> list[str]:
    """Record the best checkpoint in every MLflow run the Trainer logs to.

    Its absolute path as the tag ``best_checkpoint``, its score as the
    metric ``best_<monitor>`` (e.g. ``best_val_loss``). Call it on the
    global rank zero when fitting ends.

    Returns:
        The ids of the MLflow runs written to (none without an MLflow logger
        or a best checkpoint).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    checkpoint = trainer.checkpoint_callback
    if not isinstance(checkpoint, ModelCheckpoint) or not checkpoint.best_model_path:
        return []
    path = Path(checkpoint.best_model_path).resolve().as_posix()
    score = checkpoint.best_model_score
    written = []
    for logger in trainer.loggers:
        if not isinstance(logger, MLFlowLogger) or logger.run_id is None:
            continue
        client = logger.experiment
        client.set_tag(logger.run_id, BEST_CHECKPOINT_TAG, path)
        if score is not None and checkpoint.monitor:
            client.log_metric(logger.run_id, f"best_{checkpoint.monitor}", float(score))
        written.append(logger.run_id)
    return written


def mlflow_settings(run_dir: Path) -> dict[str, Any] | None:
    """The MLflow logger's options in a run's ``config.yaml``, or ``None`` without one.

    The placeholders of the run folder are filled in (``run_name`` is
    normally the run folder's name).
    """
    try:
        config = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    trainer = config.get("trainer") if isinstance(config, dict) else None
    logger = trainer.get("logger") if isinstance(trainer, dict) else None
    for entry in logger if isinstance(logger, list) else [logger]:
        if isinstance(entry, dict) and str(entry.get("class_path", "")).endswith(
            "MLFlowLogger"
        ):
            settings = dict(entry.get("init_args") or {})
            for key, value in settings.items():
                if isinstance(value, str):
                    value = value.replace(RUN_DIR, run_dir.as_posix())
                    settings[key] = value.replace(RUN_NAME, run_dir.name)
            return settings
    return None


def log_export(run_dir: Path, folder: Path) -> str | None:
    """Log ``folder`` (an export) as an artifact of the run's MLflow run.

    The MLflow run is the one the run's config logged to: the same tracking
    URI (see :func:`resolve_tracking_uri`), experiment and run name; when several
    runs share the name, the latest.

    Args:
        run_dir: The run folder that was exported.
        folder: The export folder; it lands under ``export/`` in the run's
            artifacts.

    Returns:
        The MLflow run's id, or ``None`` when the run did not log to MLflow.

    Raises:
        UsageError: The run logged to MLflow, but its MLflow run cannot be
            found or reached.
    """
    settings = mlflow_settings(run_dir)
    if settings is None:
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    # As for fit (see train.main): MLflow 3 refuses its local file store unless allowed.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = resolve_tracking_uri(settings.get("tracking_uri"), settings.get("save_dir"))
    experiment = str(settings.get("experiment_name") or "lightning_logs")
    name = str(settings.get("run_name") or "")
    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(experiment)
        runs = (
            client.search_runs(
                [found.experiment_id],
                filter_string=f"tags.`mlflow.runName` = {_quoted(name)}",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if found is not None and name
            else []
        )
        if not runs:
            raise UsageError(
                f"{run_dir}: no MLflow run named {name!r} in experiment"
                f" {experiment!r} at {uri}"
            )
        run_id = str(runs[0].info.run_id)
        client.log_artifacts(run_id, str(folder), artifact_path=ARTIFACT_PATH)
    except MlflowException as error:
        message = " ".join(str(error).split())[:200]
        raise UsageError(f"MLflow at {uri}: {message}") from None
    return run_id


def _quoted(text: str) -> str:
    """``text`` as a string literal of MLflow's search syntax."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
