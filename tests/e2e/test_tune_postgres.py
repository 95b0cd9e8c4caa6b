"""Two ``tune`` workers sharing one study on a real PostgreSQL server.

The test starts its own server from Debian's ``postgresql`` package on a free
127.0.0.1 port (as an unprivileged user when run as root: initdb and postgres
refuse root), and stops it with its whole process group. It is skipped, with
the reason, when the server binaries are missing (``.ci/run`` installs them).

The workers run the baked project from its source folder with the template's
venv (PYTHONPATH=src): that venv already has torch, Lightning, Optuna and the
driver (SQLAlchemy + psycopg 3, ``postgresql+psycopg://``), which a baked
project's user adds with ``poetry add psycopg[binary] sqlalchemy``.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

USER = "tune"


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and postgres."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    for postgres in reversed(found):
        folder = Path(postgres).parent
        if (folder / "initdb").is_file():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def as_server_user(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user when this process is root."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL")
    return [runuser, "-u", "postgres", "--", *command]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL server for this test; its SQLAlchemy URL."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed")
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed")
    home = Path(tempfile.mkdtemp(prefix="tune-postgres-"))
    server: subprocess.Popen[str] | None = None
    try:
        if os.geteuid() == 0:
            shutil.chown(home, "postgres")
        data = home / "data"
        subprocess.run(
            as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust"]),
            check=True,
            capture_output=True,
            text=True,
        )
        port = free_port()
        command = [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(home),
        ]
        server = subprocess.Popen(
            as_server_user(command),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
        import sqlalchemy

        deadline = time.monotonic() + 60
        while True:
            try:
                sqlalchemy.create_engine(url).connect().close()
                break
            except sqlalchemy.exc.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {server.stderr}") from None
                time.sleep(0.3)
        yield url
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        shutil.rmtree(home, ignore_errors=True)


def test_two_workers_share_a_study_on_postgresql(
    bake: Any, tmp_path: Path, postgres_url: str
) -> None:
    project = bake().copy(tmp_path / "project")
    package = project.path / "src"
    env = {**os.environ, "PYTHONPATH": str(package)}
    slug_module = next(p.name for p in package.iterdir() if (p / "tune.py").is_file())
    command = [
        sys.executable,
        "-m",
        slug_module,
        "tune",
        "--config",
        "configs/smoke.yaml",
        "--trainer.limit_train_batches=3",
        "--trainer.limit_val_batches=1",
        "--trainer.accelerator=cpu",
        "--study",
        "shared",
        "--storage",
        postgres_url,
        "--trials",
        "6",
    ]
    # Optuna creates its tables on first use; two workers doing that at the same
    # instant on an empty database race (duplicate alembic_version type), so the
    # schema is made once first, as a cluster's first job would.
    import optuna

    optuna.storages.RDBStorage(postgres_url).remove_session()
    workers = [
        subprocess.Popen(
            command,
            cwd=project.path,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=900) for worker in workers]
        codes = [worker.returncode for worker in workers]
        assert codes == [0, 0], [err[-3000:] for _, err in outputs]
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()

    import optuna

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    numbers = [trial.number for trial in trials]
    assert sorted(numbers) == list(range(len(trials)))  # none lost, none twice
    assert len(trials) >= 6
    assert {trial.state.name for trial in trials} <= {"COMPLETE", "PRUNED"}
    workers_seen = {trial.user_attrs["worker"] for trial in trials}
    assert len(workers_seen) == 2, f"one worker ran every trial: {workers_seen}"
    # Both workers used the one study folder; each trial has its run folder.
    (folder,) = (project.path / "runs").glob("*_tune_shared")
    run_dirs = sorted(folder.glob("*_fit_trial-*"))
    assert len(run_dirs) == len(trials)
    with (folder / "trials.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= len(trials) - 1  # the last writer may predate one trial
    assert "postgresql+psycopg://tune@" in (folder / "study.json").read_text("utf-8")
