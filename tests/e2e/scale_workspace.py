"""One installed ``logger=mlflow`` bake shared by the Slurm and MLflow tests.

Baked with the mirror and the local PyTorch index (as in
``test_poetry_path.py``), locked and installed with real Poetry once per
session: the first test that asks pays for it (about a minute), the others
reuse the venv. The bake logs to MLflow, so the same install serves the
Slurm tests (which log to a local store) and the tracking-server tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import BakedProject, tool

from .conftest import Report
from .local_index import LocalIndex
from .steps import run

NAME = "mlflow,slurm"
OPTIONS = {"logger": "mlflow"}


@dataclass
class Installed:
    """The installed bake: its folder, package, venv Python and Poetry's environment."""

    project: BakedProject
    env: dict[str, str]
    install_s: float
    runs_made: list[Path] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.project.path

    @property
    def package(self) -> str:
        return self.project.package

    @property
    def python(self) -> Path:
        return self.path / ".venv" / "bin" / "python"

    def command_env(self, **extra: str) -> dict[str, str]:
        """Environment for the project's own Python (no Poetry, no test venv)."""
        env = {key: value for key, value in self.env.items() if not key.startswith("POETRY_")}
        env.pop("MLFLOW_TRACKING_URI", None)
        return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}


_INSTALLED: dict[Path, Installed | str] = {}


def installed(
    bake: Any,
    e2e_dir: Path,
    index: LocalIndex,
    mirror: str,
    poetry_env: dict[str, str],
    report: Report,
) -> Installed:
    """The session's installed bake (skips the test when it cannot be installed)."""
    found = _INSTALLED.get(e2e_dir)
    if isinstance(found, str):
        pytest.skip(found)
    if found is not None:
        return found
    started = time.monotonic()
    baked: BakedProject = bake(**OPTIONS, package_index_url=mirror, torch_index_url=index.base)
    project = baked.copy(e2e_dir / "mlflow-slurm" / baked.path.name)
    try:
        run([tool("poetry"), "lock"], project.path, poetry_env, timeout=900)
        run([tool("poetry"), "install"], project.path, poetry_env, timeout=900)
    except AssertionError as error:
        _INSTALLED[e2e_dir] = f"the {NAME} bake did not install: {str(error)[:2000]}"
        raise
    elapsed = time.monotonic() - started
    report.record(NAME, install_s=round(elapsed, 1))
    result = Installed(project, dict(poetry_env), elapsed)
    assert result.python.is_file(), f"no venv Python at {result.python}"
    os.makedirs(project.path / "runs", exist_ok=True)
    _INSTALLED[e2e_dir] = result
    return result
