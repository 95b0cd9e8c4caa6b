"""The baked DDP test with no network: it runs on loopback alone, or skips with the reason.

In a network namespace of its own (``unshare -n``: as root, or ``unshare -rn``
where unprivileged user namespaces are allowed), the baked
``test_ddp_on_two_cpu_processes`` runs with the test environment's Python:

- loopback down (what ``unshare -n`` gives): it skips at once, naming the
  reason, instead of waiting for its timeout with rank 1 left running;
- loopback up and nothing else: the two processes meet on 127.0.0.1 and pass.

And an MNIST bake without torchvision (or without the download) skips the DDP
test with the DataModule's reasons instead of failing.

Every run goes through :func:`run_tracked`: no process may outlive it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import BakedProject

from .steps import pytest_counts, run_tracked

pytestmark = pytest.mark.e2e

DDP_TEST = "tests/test_distributed.py::test_ddp_on_two_cpu_processes"
# The baked test's own limit is 180 s; this one only catches a hang of the harness.
TIMEOUT_S = 400


@functools.cache
def namespace_prefix() -> tuple[list[str], str]:
    """A command prefix that runs a command with no network, or ``([], why not)``."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return [], "needs Linux's unshare to make a network namespace"
    prefix = [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-rn"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return [], f"{' '.join(prefix)} is not allowed here: {probe.stderr.strip()}"
    return prefix, ""


def offline_command(command: list[str], *, loopback: bool) -> list[str]:
    prefix, why = namespace_prefix()
    if not prefix:
        pytest.skip(why)
    if not loopback:
        return [*prefix, *command]
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("needs `ip` (iproute2) to bring loopback up in the namespace")
    return [*prefix, "sh", "-c", f'"{ip}" link set lo up && exec "$@"', "sh", *command]


def baked_pytest(*args: str) -> list[str]:
    """The baked project's pytest, run by the test environment's Python."""
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *args]


def environment(project: BakedProject) -> dict[str, str]:
    dropped = {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONPATH"] = str(project.path / "src")
    return env


@pytest.fixture(scope="module")
def project(bake: Any, e2e_dir: Path) -> BakedProject:
    baked: BakedProject = bake()
    return baked.copy(e2e_dir / "no-network" / baked.path.name)


def test_ddp_skips_at_once_when_loopback_is_down(project: BakedProject) -> None:
    command = offline_command(baked_pytest(DDP_TEST), loopback=False)
    result, _ = run_tracked(command, project.path, environment(project), timeout=TIMEOUT_S)
    assert pytest_counts(result.stdout) == {"skipped": 1}, result.stdout[-3000:]
    assert "loopback interface is down" in result.stdout


def test_ddp_runs_on_loopback_alone(project: BakedProject) -> None:
    command = offline_command(baked_pytest(DDP_TEST), loopback=True)
    result, _ = run_tracked(
        command, project.path, environment(project), check=False, timeout=TIMEOUT_S
    )
    assert pytest_counts(result.stdout) == {"passed": 1}, result.stdout[-5000:]
    assert result.returncode == 0


def test_mnist_ddp_skips_without_torchvision_or_its_data(bake: Any, e2e_dir: Path) -> None:
    """The DDP test takes the DataModule fixture's skips (no torchvision, no download)."""
    baked: BakedProject = bake(dataset="mnist")
    project = baked.copy(e2e_dir / "no-network-mnist" / baked.path.name)
    command = baked_pytest(DDP_TEST)
    # Offline where possible, so that MNIST cannot be downloaded even where
    # torchvision imports.
    prefix, why = namespace_prefix()
    if not prefix and importlib.util.find_spec("torchvision") is not None:
        pytest.skip(f"torchvision is installed and {why}: the data could be downloaded")
    result, _ = run_tracked(
        [*prefix, *command], project.path, environment(project), check=False, timeout=TIMEOUT_S
    )
    assert pytest_counts(result.stdout) == {"skipped": 1}, result.stdout[-5000:]
    reasons = ("torchvision cannot be imported", "MNIST could not be downloaded")
    assert any(reason in result.stdout for reason in reasons), result.stdout[-3000:]
