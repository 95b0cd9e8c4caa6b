"""The path without Poetry: a plain venv, pip, the baked tests and a training run.

What it proves: the published metadata alone (PEP 621 dependencies, the PEP 735
``dev`` group, poetry-core as the build backend) installs the project into a
fresh virtual environment with nothing but pip, and the project's tests and its
CLI work there. torch goes in first from the CPU wheel the local index serves,
as a user would from PyTorch's CPU index, so pip keeps it instead of fetching
the multi-GB CUDA build; everything else comes from pip's configured index.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import venv
from pathlib import Path
from typing import Any

import pytest

from .conftest import Report
from .steps import (
    MIN_VAL_ACC,
    describe_counts,
    folder_size_mib,
    gpu_distributions,
    installed_distributions,
    newest_run_metrics,
    pytest_counts,
    run,
    run_tracked,
    validation_accuracy,
)

pytestmark = pytest.mark.e2e

NAME = "pip (plain venv)"


def test_pip_install_into_a_plain_venv(
    bake: Any, e2e_dir: Path, torch_wheel: Path, e2e_report: Report
) -> None:
    started = time.monotonic()
    project = bake().copy(e2e_dir / "pip" / "project")
    env_dir = e2e_dir / "pip" / "venv"
    # No pip inside: the test environment's pip (new enough for --group) installs
    # into it through --python.
    venv.create(env_dir, with_pip=False)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]

    _, torch_s = run([*pip, torch_wheel], project.path, env)
    _, rest_s = run([*pip, "-e", ".", "--group", "dev"], project.path, env)
    size = folder_size_mib(env_dir)
    gpu = gpu_distributions(env_dir)
    torch = installed_distributions(env_dir).get("torch")
    install_s = round(torch_s + rest_s, 1)
    e2e_report.record(NAME, install_s=install_s, venv_mb=round(size), nvidia=len(gpu), torch=torch)
    assert not gpu, f"CUDA packages in the venv: {gpu}"
    assert (torch or "").endswith("+cpu"), f"pip replaced the CPU torch with {torch}"

    result, elapsed = run_tracked([python, "-m", "pytest"], project.path, env, check=False)
    counts = pytest_counts(result.stdout)
    e2e_report.record(NAME, tests=describe_counts(counts), pytest_s=round(elapsed, 1))
    assert counts.get("passed", 0) > 0, f"no test ran:\n{result.stdout[-3000:]}"
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]

    slug = project.answers["project_slug"]
    script = bin_dir / (f"{slug}.exe" if os.name == "nt" else slug)
    _, train_s = run([script, "fit", "--config", "configs/default.yaml"], project.path, env)
    run_dir, rows = newest_run_metrics(project.path)
    accuracy = validation_accuracy(rows)
    e2e_report.record(
        NAME,
        train_s=round(train_s, 1),
        val_acc=round(accuracy, 4),
        total_s=round(time.monotonic() - started, 1),
    )
    assert accuracy >= MIN_VAL_ACC, f"val accuracy {accuracy:.3f} in {run_dir}"
    shutil.rmtree(env_dir, ignore_errors=True)  # over a GB; the session folder goes later
