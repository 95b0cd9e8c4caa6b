"""The ``logger=mlflow`` bake against a real MLflow tracking server on 127.0.0.1.

The server is the test venv's full ``mlflow server`` (the bake depends on
the lighter ``mlflow-skinny``, a client only) with a SQLite backend and the
server's own artifact store in a temporary folder, started in a process group
of its own on a free port and stopped with that group; nothing it started may
be left running. The bake is the installed one of :mod:`.scale_workspace`,
its own venv's Python pointed at the server by ``MLFLOW_TRACKING_URI``.
Everything is read back through ``MlflowClient``:

- ``fit``: the MLflow run named after the run folder holds the config's
  parameters, one point per epoch of every metric in ``metrics.csv`` with the
  same values, and the best checkpoint's path (tag) and score (metric).
- ``export --mlflow``: the export folder lands among that run's artifacts,
  the files byte for byte.
- ``tune``: one parent run per study, named after it, and every trial's run
  as its child, each with the score Optuna recorded for the trial.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Report
from .local_index import LocalIndex
from .scale_workspace import Installed, installed
from .steps import RUN_MARKER, run_tracked, stop_marked

pytestmark = pytest.mark.e2e

QUIET = ("--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false")
EPOCHS = 3
EXPERIMENT = "my-ml-project"  # the bake's slug: MLFlowLogger's experiment_name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, e2e_report: Report) -> Iterator[str]:
    """The tracking server's URL, for the module's tests; stopped with its process group."""
    if importlib.util.find_spec("mlflow.server") is None:
        pytest.skip("the full mlflow (its server) is not installed in the test venv")
    home = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    marker = uuid.uuid4().hex
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    log = (home / "server.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
            "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination", str(home / "artifacts"),
        ],
        cwd=home,
        env={**env, RUN_MARKER: marker},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + 180
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                shown = (home / "server.log").read_text(errors="replace")[-4000:]
                raise AssertionError(f"mlflow server did not come up at {url}:\n{shown}")
            time.sleep(0.5)
        e2e_report.record("mlflow", server_start_s=round(time.monotonic() - started, 1))
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        left = stop_marked(marker, grace=10)
    assert not left, f"mlflow server processes left running (now killed): {left}"


@pytest.fixture(scope="module")
def project(
    bake: Any,
    e2e_dir: Path,
    pytorch_index: LocalIndex,
    mirror_url: str,
    poetry_env: dict[str, str],
    e2e_report: Report,
) -> Installed:
    return installed(bake, e2e_dir, pytorch_index, mirror_url, poetry_env, e2e_report)


def command(project: Installed, url: str, *words: str | Path) -> str:
    """Run the bake's CLI with its own Python, logging to ``url``; its stdout."""
    result, _ = run_tracked(
        [project.python, "-m", project.package, *words],
        project.path,
        project.command_env(MLFLOW_TRACKING_URI=url),
        timeout=600,
    )
    return result.stdout


def new_folders(parent: Path, before: set[Path], pattern: str) -> list[Path]:
    return sorted(path for path in parent.glob(pattern) if path not in before and path.is_dir())


def epoch_rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return [
            {key: float(value) for key, value in row.items() if value}
            for row in csv.DictReader(file)
        ]


def client_for(url: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url)


def experiment_id(client: Any) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no experiment {EXPERIMENT!r} on the server"
    return str(experiment.experiment_id)


def test_fit_and_export_log_to_the_tracking_server(
    server: str, project: Installed, tmp_path: Path
) -> None:
    runs = project.path / "runs"
    before = set(runs.iterdir())
    command(
        project, server, "fit", "--config", "configs/default.yaml",
        f"--trainer.max_epochs={EPOCHS}", *QUIET,
    )
    (run_dir,) = new_folders(runs, before, "*_fit")
    client = client_for(server)
    found = client.search_runs(
        [experiment_id(client)], filter_string=f"tags.`mlflow.runName` = '{run_dir.name}'"
    )
    assert len(found) == 1, [run.info.run_name for run in found]
    run = found[0]
    assert run.info.status == "FINISHED"

    # Parameters: the model's hyperparameters as the run's config resolved them.
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    params = run.data.params
    assert float(params["lr"]) == pytest.approx(float(config["model"]["lr"]))
    assert int(params["num_classes"]) == 10

    # Per-epoch metrics: every column of metrics.csv, one point per epoch.
    rows = epoch_rows(run_dir)
    assert len(rows) == EPOCHS
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        history = client.get_metric_history(run.info.run_id, name)
        assert [point.value for point in history] == pytest.approx(
            [row[name] for row in rows], rel=1e-6
        ), name
    steps = [point.step for point in client.get_metric_history(run.info.run_id, "val_loss")]
    assert steps == sorted(steps)
    assert len(set(steps)) == EPOCHS

    # The best checkpoint: its absolute path and its score.
    best = min(row["val_loss"] for row in rows)
    assert run.data.metrics["best_val_loss"] == pytest.approx(best, rel=1e-6)
    best_path = Path(run.data.tags["best_checkpoint"])
    assert best_path == (run_dir / "checkpoints" / "best.ckpt").resolve()
    assert best_path.is_file()

    # export --mlflow: the export folder among the run's artifacts, byte for byte.
    printed = command(project, server, "export", run_dir, "--mlflow")
    assert run.info.run_id in printed
    exported = run_dir / "export"
    listed = client.list_artifacts(run.info.run_id, "export")
    assert sorted(Path(item.path).name for item in listed) == sorted(
        path.name for path in exported.iterdir()
    )
    copy = Path(client.download_artifacts(run.info.run_id, "export", str(tmp_path)))
    for name in ("model.onnx", "model.json"):
        assert (copy / name).read_bytes() == (exported / name).read_bytes(), name


def test_tune_groups_its_trials_under_one_parent_run(server: str, project: Installed) -> None:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    runs = project.path / "runs"
    trials = 3
    study_name = "tracked"
    before = set(runs.iterdir())
    command(
        project, server, "tune", "--config", "configs/default.yaml",
        "--study", study_name, f"--trials={trials}", "--pruner=none",
        "--trainer.max_epochs=2",
    )
    (study_dir,) = new_folders(runs, before, f"*_tune_{study_name}")
    storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    study = optuna.load_study(study_name=study_name, storage=storage)
    done = study.get_trials(deepcopy=False)
    assert len(done) == trials
    assert {trial.state for trial in done} == {optuna.trial.TrialState.COMPLETE}

    client = client_for(server)
    experiment = experiment_id(client)
    parents = [
        run
        for run in client.search_runs([experiment], "tags.`optuna.role` = 'study'")
        if run.data.tags.get("optuna.study") == study_name
    ]
    assert len(parents) == 1, [run.info.run_id for run in parents]
    parent = parents[0]
    assert parent.info.run_name == study_name
    children = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    # One child per trial, named after the trial's run folder, with its score.
    scores = {Path(str(t.user_attrs["run_dir"])).name: t.value for t in done}
    assert {child.info.run_name for child in children} == set(scores)
    assert len(children) == trials
    for child in children:
        assert child.info.status == "FINISHED", child.info.run_name
        assert child.data.metrics["best_val_loss"] == pytest.approx(
            scores[child.info.run_name], rel=1e-6
        ), child.info.run_name
