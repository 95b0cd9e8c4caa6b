"""Session fixtures of the end-to-end tier, and its summary table.

Everything here is session-scoped and only set up when an ``e2e`` test asks
for it, so the fast tier (``-m "not e2e"``) pays nothing for it.

- ``pytorch_index``: a local stand-in for PyTorch's wheel indexes (see
  :mod:`.local_index`) serving the CPU torch wheel that pip already has, under
  ``/whl/cpu/`` and ``/whl/<cuda tag>/``. PyTorch's real index is not
  reachable from every CI machine, and Poetry resolves *all* extras when
  locking, so both channels must answer.
- ``mirror_url``: the public index's "simple" URL, taken from pip at run time;
  baked as the project's primary source (``package_index_url``), which is also
  how a user points a project at a mirror.
- ``poetry_env``: environment variables for every ``poetry`` command: the
  user's Poetry configuration, data and ``POETRY_*`` variables never leak in,
  venvs are created in the project, keyring is off.
- ``E2E_REPORT``: what the tests measured, printed as a table at the end of
  the session and written to ``.cache/e2e/report.json``.

Poetry's cache lives in ``.cache/e2e/poetry`` (ignored by git) and is kept
between sessions, so a second run downloads nothing from the registry: it only
holds downloads keyed by URL and hash, so it cannot change what gets
resolved. Entries of the local index (whose URL changes with its port) are
pruned before and after each session. Everything else (bakes, venvs, the
index folder) lives in one temporary folder removed at the end.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR

from .local_index import LocalIndex

E2E_CACHE = TEMPLATE_DIR / ".cache" / "e2e"
POETRY_CACHE = E2E_CACHE / "poetry"
REPORT_FILE = E2E_CACHE / "report.json"
CUDA_TAG: str = COOKIECUTTER_JSON["_cuda_tag"]
# The local stand-in serves these channels, as PyTorch's index does.
CHANNELS = ("cpu", CUDA_TAG)
# Poetry sources of the baked project that point at the local index.
LOCAL_SOURCES = ("pytorch-cpu", "pytorch-cuda")


@dataclass
class Report:
    """Measurements per variant, in the order they were recorded."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def record(self, variant: str, **values: Any) -> None:
        self.rows.setdefault(variant, {}).update(values)


E2E_REPORT = Report()

COLUMNS = {
    "lock_s": "lock s",
    "install_s": "install s",
    "venv_mb": "venv MB",
    "nvidia": "nvidia pkgs",
    "torch": "torch",
    "tests": "tests",
    "pytest_s": "pytest s",
    "lint_s": "lint s",
    "train_s": "train s",
    "val_acc": "val acc",
    "total_s": "variant s",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the e2e tests measured (nothing when none ran)."""
    if not E2E_REPORT.rows:
        return
    wall = time.monotonic() - E2E_REPORT.started
    rows = [["variant", *COLUMNS.values()]]
    for variant, values in E2E_REPORT.rows.items():
        rows.append([variant, *(_cell(values.get(key)) for key in COLUMNS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    write = terminalreporter.write_line
    terminalreporter.section("end-to-end measurements")
    for number, row in enumerate(rows):
        write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            write("  ".join("-" * width for width in widths))
    write(f"e2e wall time (from the first e2e fixture): {wall:.0f} s")
    E2E_CACHE.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(
        json.dumps({"wall_s": round(wall, 1), "variants": E2E_REPORT.rows}, indent=2) + "\n",
        encoding="utf-8",
    )
    write(f"written to {REPORT_FILE.relative_to(TEMPLATE_DIR)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 1 else f"{value:.1f}"
    return str(value)


@pytest.fixture(scope="session")
def e2e_report() -> Report:
    return E2E_REPORT


@pytest.fixture(scope="session")
def e2e_dir() -> Iterator[Path]:
    """One temporary folder for the session's bakes, venvs and index; removed after."""
    E2E_REPORT.started = time.monotonic()
    path = Path(tempfile.mkdtemp(prefix="e2e-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=600,
    )


def download_wheel(requirement: str, destination: Path, *extra: str) -> Path:
    """One wheel (no dependencies) through pip, which also searches its local wheel folders."""
    before = set(destination.glob("*.whl")) if destination.exists() else set()
    result = _pip(
        "download",
        requirement,
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
        str(destination),
        *extra,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed:\n{result.stdout}{result.stderr}")
    found = sorted(set(destination.glob("*.whl")) - before) or sorted(destination.glob("*.whl"))
    name = requirement.split("=")[0].strip().lower()
    matching = [w for w in found if w.name.lower().startswith(f"{name}-")]
    assert matching, f"pip download {requirement} left no wheel in {destination}"
    return matching[-1]


@pytest.fixture(scope="session")
def torch_wheel(e2e_dir: Path) -> Path:
    """The CPU torch wheel matching the torch of the environment running the tests.

    pip finds it in its local wheel folder here (or its cache); elsewhere
    PyTorch's CPU index is tried as well.
    """
    version = importlib.metadata.version("torch")
    if "+cpu" not in version:
        pytest.skip(f"the test environment's torch is {version}, not a CPU build (+cpu)")
    destination = e2e_dir / "wheels"
    try:
        return download_wheel(f"torch=={version}", destination)
    except RuntimeError:
        try:
            return download_wheel(
                f"torch=={version}",
                destination,
                "--extra-index-url",
                "https://download.pytorch.org/whl/cpu",
            )
        except RuntimeError as error:
            pytest.skip(f"cannot get the torch {version} wheel: {error}")


def _prune_local_index_cache(wheel_names: set[str]) -> None:
    """Drop what Poetry cached from the local index (its URL changes every session)."""
    for source in LOCAL_SOURCES:
        shutil.rmtree(POETRY_CACHE / "cache" / "repositories" / source, ignore_errors=True)
    artifacts = POETRY_CACHE / "artifacts"
    if artifacts.is_dir():
        stale = {path.parent for path in artifacts.rglob("*.whl") if path.name in wheel_names}
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pytorch_index(e2e_dir: Path, torch_wheel: Path) -> Iterator[LocalIndex]:
    """PyTorch's wheel index, served locally: ``{url}/whl/cpu``, ``{url}/whl/<cuda tag>``."""
    index = LocalIndex(e2e_dir / "index", CHANNELS)
    index.add([torch_wheel])
    _prune_local_index_cache(index.wheel_names)
    try:
        yield index
    finally:
        index.stop()
        _prune_local_index_cache(index.wheel_names)


@pytest.fixture(scope="session")
def forget_local_downloads(pytorch_index: LocalIndex) -> Callable[[], None]:
    """Make the next ``poetry install`` download torch from the local index again.

    So that its access log shows which channel each install takes torch from.
    """
    return lambda: _prune_local_index_cache(pytorch_index.wheel_names)


@pytest.fixture(scope="session")
def mirror_url() -> str:
    """The public index's simple URL, as pip knows it (never written into the tests)."""
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


@pytest.fixture(scope="session")
def poetry_env(e2e_dir: Path) -> dict[str, str]:
    """Environment for ``poetry`` commands, isolated from the user's configuration."""
    # PYTHONDONTWRITEBYTECODE too: Poetry installs without compiling, so without
    # .pyc files every command would compile torch and lightning again (~8 s).
    dropped = {
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "PYTHONPATH",
        "PYTHONHOME",
        "PIP_REQUIRE_VIRTUALENV",
        "PYTHONDONTWRITEBYTECODE",
    }
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("POETRY_") and key not in dropped
    }
    POETRY_CACHE.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "POETRY_CONFIG_DIR": str(e2e_dir / "poetry-config"),
            "POETRY_DATA_DIR": str(e2e_dir / "poetry-data"),
            "POETRY_CACHE_DIR": str(POETRY_CACHE),
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",
            # The venv gets the interpreter running these tests, whose tags
            # match the wheel the local index serves.
            "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",
            "POETRY_KEYRING_ENABLED": "false",
            "POETRY_NO_INTERACTION": "1",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
    )
    return env
