"""What the experiment logger records, read back with the logger's own reader."""

from __future__ import annotations

import csv
{%- if cookiecutter.logger in ["mlflow", "tensorboard"] %}
from collections.abc import Callable
{%- endif %}
from pathlib import Path

import pytest

{% if cookiecutter.logger == "mlflow" -%}
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.summary import parse_summary
{% endif -%}
from {{ cookiecutter.package_name }}.tracking import (
{%- if cookiecutter.logger == "mlflow" %}
    ARTIFACT_PATH,
    BEST_CHECKPOINT_TAG,
{%- endif %}
    log_export,
    mlflow_settings,
    resolve_tracking_uri,
)

EPOCHS = 3


CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"


def epoch_rows(run_dir: Path) -> list[dict[str, float]]:
    """``metrics.csv``, one row per epoch, numbers as floats."""
    with (run_dir / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return [
            {key: float(value) for key, value in row.items() if value}
            for row in csv.DictReader(file)
        ]


def test_tracking_uri_from_the_config_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri("sqlite:///x.db", None) == "sqlite:///x.db"
    assert resolve_tracking_uri(None, None) == "http://127.0.0.1:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    store = tmp_path / "mlruns"
    assert resolve_tracking_uri(None, str(store)) == store.as_uri()


def test_a_run_without_an_mlflow_logger_logs_no_export(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        f"trainer:\n  logger:\n    class_path: {CSV_LOGGER}\n",
        encoding="utf-8",
    )
    assert mlflow_settings(tmp_path) is None
    assert log_export(tmp_path, tmp_path) is None
{%- if cookiecutter.logger == "mlflow" %}


def test_fit_logs_params_metrics_and_the_best_checkpoint_to_mlflow(
    run_cli: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "store").as_uri()
    run_dir = run_cli(
        "fit",
        f"--trainer.max_epochs={EPOCHS}",
        f"--trainer.logger.init_args.tracking_uri={uri}",
    )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("{{ cookiecutter.project_slug }}")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == run_dir.name
    assert float(run.data.params["lr"]) > 0
    rows = epoch_rows(run_dir)
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [point.value for point in history] == pytest.approx(
        [row["val_loss"] for row in rows], rel=1e-6
    )
    best = min(row["val_loss"] for row in rows)
    assert run.data.metrics["best_val_loss"] == pytest.approx(best, rel=1e-6)
    best_path = Path(run.data.tags[BEST_CHECKPOINT_TAG])
    assert best_path == (run_dir / "checkpoints" / "best.ckpt").resolve()

    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)  # the config's save_dir is relative to the project
        main(["export", str(run_dir), "--mlflow"])
    facts = parse_summary(capsys.readouterr().out)
    assert facts["mlflow run"] == [run.info.run_id]
    listed = client.list_artifacts(run.info.run_id, ARTIFACT_PATH)
    exported = sorted(path.name for path in (run_dir / "export").iterdir())
    assert sorted(Path(item.path).name for item in listed) == exported
    assert {"model.onnx", "model.json"} <= set(exported)


def test_export_to_mlflow_of_a_run_that_did_not_log_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text(
        f"trainer:\n  logger:\n    class_path: {CSV_LOGGER}\n",
        encoding="utf-8",
    )
    (tmp_path / "manifest.json").write_text('{"subcommand": "fit"}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path), "--mlflow"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--mlflow" in line
    assert str(tmp_path) in line
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "config.yaml",
        "manifest.json",
    ]


def test_export_to_mlflow_names_a_missing_run(
    run_cli: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from {{ cookiecutter.package_name }}.errors import UsageError

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = run_cli(
        "fit",
        "--trainer.max_epochs=1",
        f"--trainer.logger.init_args.tracking_uri={(tmp_path / 'store').as_uri()}",
    )
    store, other = (tmp_path / "store").as_uri(), (tmp_path / "other").as_uri()
    config = run_dir / "config.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(store, other), encoding="utf-8")
    with pytest.raises(UsageError, match="no MLflow run named"):
        log_export(run_dir, tmp_path)
{%- elif cookiecutter.logger == "tensorboard" %}


def test_tensorboard_events_hold_the_epoch_metrics(
    run_cli: Callable[..., Path],
) -> None:
    from tensorboard.backend.event_processing import event_accumulator

    run_dir = run_cli("fit", f"--trainer.max_epochs={EPOCHS}")
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    rows = epoch_rows(run_dir)
    for name in ("val_loss", "val_acc", "train_loss"):
        values = [event.value for event in events.Scalars(name)]
        assert values == pytest.approx([row[name] for row in rows], rel=1e-6), name
    steps = [event.step for event in events.Scalars("val_loss")]
    assert len(steps) == EPOCHS
{%- endif %}
