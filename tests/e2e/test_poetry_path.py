"""The user's path with Poetry, for real, on two contrasting bakes.

For each variant: ``poetry check --strict``, ``poetry lock``, what Poetry
would install on Linux, Windows and macOS with and without the ``cuda`` extra,
``poetry install`` (CPU torch only, no nvidia packages, venv size), the baked
test suite, the linters and type checker, a training run through the CLI, and
``poetry build``. Each step skips when a step it needs failed, so one failure
is reported once.

The bakes take every package from the public index through the
``package_index_url`` (mirror) option and torch from the local stand-in of
PyTorch's index (``torch_index_url``); see ``conftest.py``.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from harness import BakedProject, tomllib, tool

from .conftest import Report, download_wheel
from .local_index import LocalIndex, wheel_metadata
from .steps import (
    GPU_DISTRIBUTIONS,
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

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "black-flake8,tensorboard": {
        "code_style": "black-flake8",
        "type_checker": "none",
        "logger": "tensorboard",
        "python_version": "3.11",
        "docs": "none",
        "pre_commit": "no",
        "ci": "gitlab",
    },
}
VENV_LIMIT_MIB = 1.5 * 1024
INSTALL_PLAN = Path(__file__).with_name("install_plan.py")
TORCH_PACKAGES = ("torch", "torchvision")


@dataclass
class Workspace:
    """One variant's private copy of its bake, and what its steps achieved."""

    name: str
    project: BakedProject
    env: dict[str, str]
    index: LocalIndex
    report: Report
    passed: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return self.project.path

    def poetry(self, *args: str, check: bool = True) -> tuple[Any, float]:
        return run([tool("poetry"), *args], self.path, self.env, check=check)

    def needs(self, *steps: str) -> None:
        missing = [step for step in steps if step not in self.passed]
        if missing:
            pytest.skip(f"needs the {', '.join(missing)} step(s), which did not pass")

    def record(self, **values: Any) -> None:
        self.report.record(self.name, **values)


def bake_for_e2e(
    bake: Any, e2e_dir: Path, name: str, options: dict[str, str], index: LocalIndex, mirror: str
) -> BakedProject:
    """Bake with the mirror and the local PyTorch index; a private copy to work in."""
    baked: BakedProject = bake(**options, package_index_url=mirror, torch_index_url=index.base)
    return baked.copy(e2e_dir / name.replace(",", "-") / baked.path.name)


@pytest.fixture(scope="module", params=list(VARIANTS))
def workspace(
    request: pytest.FixtureRequest,
    bake: Any,
    e2e_dir: Path,
    pytorch_index: LocalIndex,
    mirror_url: str,
    poetry_env: dict[str, str],
    e2e_report: Report,
) -> Iterator[Workspace]:
    name = request.param
    started = time.monotonic()
    project = bake_for_e2e(bake, e2e_dir, name, VARIANTS[name], pytorch_index, mirror_url)
    e2e_report.record(name)
    yield Workspace(name, project, poetry_env, pytorch_index, e2e_report)
    e2e_report.record(name, total_s=round(time.monotonic() - started, 1))
    # Each venv is over a GB: drop it before the next variant builds its own.
    shutil.rmtree(project.path / ".venv", ignore_errors=True)


def install_plans(path: Path, env: dict[str, str]) -> dict[str, dict[str, list[list[str]]]]:
    """What ``poetry install`` would install per platform and extra (see install_plan.py)."""
    result, _ = run([sys.executable, INSTALL_PLAN, path], path, env)
    plans: dict[str, dict[str, list[list[str]]]] = json.loads(result.stdout)
    return plans


def locked_sources(lock: dict[str, Any], name: str) -> list[str]:
    """The sources (``""``: the default index) of each locked build of ``name``."""
    packages = [p for p in lock["package"] if p["name"] == name]
    return sorted(p.get("source", {}).get("reference", "") for p in packages)


def check_torch_plans(plans: dict[str, dict[str, list[list[str]]]], default_source: str) -> None:
    """One build of each torch package per platform and extra, from the right index."""
    expected = {
        ("linux", ""): "pytorch-cpu",
        ("linux", "cuda"): "pytorch-cuda",
        ("windows", ""): "pytorch-cpu",
        ("windows", "cuda"): "pytorch-cuda",
        ("macos", ""): default_source,
        ("macos", "cuda"): default_source,
    }
    problems = []
    for (platform, extra), source in expected.items():
        plan = plans[platform][extra]
        names = {name for name, _, _ in plan}
        for package in TORCH_PACKAGES:
            builds = [(version, src) for name, version, src in plan if name == package]
            if package == "torch" or builds:
                wanted = [src for _, src in builds] == [source]
                if not wanted:
                    problems.append(f"{platform} {extra or '(no extra)'}: {package} {builds}")
        gpu = sorted(n for n in names if GPU_DISTRIBUTIONS.match(n))
        if not extra and gpu:
            problems.append(f"{platform} (no extra) would install {gpu}")
    hint = (
        "\n(Both the CPU and the CUDA build for one platform: Poetry installed from the lock"
        " file's markers, which cannot tell them apart; the bake's poetry.toml must set"
        " installer.re-resolve = true.)"
        if any("pytorch-cpu" in p and "pytorch-cuda" in p for p in problems)
        else ""
    )
    assert not problems, (
        "poetry install would pick the wrong PyTorch builds:\n" + "\n".join(problems) + hint
    )


def test_lock(workspace: Workspace) -> None:
    check, _ = workspace.poetry("check", "--strict")
    assert "warning" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr
    _, elapsed = workspace.poetry("lock")
    workspace.record(lock_s=round(elapsed, 1))
    workspace.poetry("check", "--lock")
    lock = tomllib.loads((workspace.path / "poetry.lock").read_text(encoding="utf-8"))
    torch_sources = locked_sources(lock, "torch")
    # macOS takes the standard build from the primary source (the mirror).
    assert set(torch_sources) == {"mirror", "pytorch-cpu", "pytorch-cuda"}, torch_sources
    assert torch_sources.count("pytorch-cpu") == torch_sources.count("pytorch-cuda") == 1
    assert "cuda" in lock.get("extras", {}), "the lock file has no cuda extra"
    workspace.passed.add("lock")


def test_install_plans(workspace: Workspace) -> None:
    workspace.needs("lock")
    check_torch_plans(install_plans(workspace.path, workspace.env), default_source="mirror")


def test_install(workspace: Workspace, forget_local_downloads: Any) -> None:
    workspace.needs("lock")
    forget_local_downloads()
    since = len(workspace.index.requested)
    _, elapsed = workspace.poetry("install")
    workspace.record(install_s=round(elapsed, 1))
    downloads = workspace.index.downloads(since)

    venv = workspace.path / ".venv"
    dists = installed_distributions(venv)
    gpu = gpu_distributions(venv)
    size = folder_size_mib(venv)
    workspace.record(
        torch=dists.get("torch"), nvidia=len(gpu), venv_mb=round(size), torch_from=downloads
    )
    assert dists.get("torch", "").endswith("+cpu"), f"torch {dists.get('torch')} is not a CPU build"
    assert not gpu, f"CUDA packages in the venv: {gpu}"
    assert downloads, "torch was not downloaded from the local PyTorch index"
    assert all(path.startswith("/whl/cpu/") for path in downloads), (
        f"poetry install fetched {downloads}: only PyTorch's CPU index should be used"
        " (both builds: does the bake's poetry.toml set installer.re-resolve = true?)"
    )
    assert size <= VENV_LIMIT_MIB, f".venv is {size:.0f} MiB (limit {VENV_LIMIT_MIB:.0f})"
    workspace.passed.add("install")

    again, _ = workspace.poetry("install")
    assert "No dependencies to install or update" in again.stdout, (
        f"a second poetry install is not a no-op:\n{again.stdout}"
    )


def test_baked_test_suite(workspace: Workspace) -> None:
    workspace.needs("install")
    # Nothing the suite starts (DDP's second process, say) may outlive it.
    command = [tool("poetry"), "run", "pytest"]
    result, elapsed = run_tracked(command, workspace.path, workspace.env, check=False)
    counts = pytest_counts(result.stdout)
    workspace.record(tests=describe_counts(counts), pytest_s=round(elapsed, 1))
    assert counts.get("passed", 0) > 0, f"no test ran:\n{result.stdout[-3000:]}"
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]


def test_style_and_types(workspace: Workspace) -> None:
    workspace.needs("install")
    answers = workspace.project.answers
    if answers["code_style"] == "ruff":
        commands = [["ruff", "check", "."], ["ruff", "format", "--check", "."]]
    else:
        commands = [["black", "--check", "."], ["isort", "--check-only", "."], ["flake8"]]
    if answers["type_checker"] == "mypy":
        commands.append(["mypy"])
    started = time.monotonic()
    failures = []
    for command in commands:
        result, _ = workspace.poetry("run", *command, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            shown = " ".join(command)
            failures.append(f"$ poetry run {shown}  (exit {result.returncode})\n{output}")
    workspace.record(lint_s=round(time.monotonic() - started, 1))
    assert not failures, "\n\n".join(failures)


def test_training_run(workspace: Workspace) -> None:
    workspace.needs("install")
    slug = workspace.project.answers["project_slug"]
    # The command the README and docs/training.md give.
    _, elapsed = workspace.poetry("run", slug, "fit", "--config", "configs/default.yaml")
    run_dir, rows = newest_run_metrics(workspace.path)
    accuracy = validation_accuracy(rows)
    workspace.record(train_s=round(elapsed, 1), val_acc=round(accuracy, 4), epochs=len(rows))
    assert accuracy >= MIN_VAL_ACC, f"val accuracy {accuracy:.3f} in {run_dir}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _http(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers={"content-type": "application/json"})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        connection.close()


# One variant is enough: the serve group does not depend on the options.
@pytest.mark.parametrize("workspace", ["default"], indirect=True)
def test_serve_only_install(workspace: Workspace, e2e_dir: Path) -> None:
    """Export with the training install; a second, serve-only install serves it without torch."""
    workspace.needs("install")
    slug = workspace.project.answers["project_slug"]
    package = workspace.project.answers["package_name"]
    run_dir, _ = newest_run_metrics(workspace.path)
    _, export_s = workspace.poetry("run", slug, "export", str(run_dir))
    exported = run_dir / "export"
    assert (exported / "model.onnx").is_file()
    assert (exported / "model.json").is_file()

    # A fresh copy, as a serving machine would check the project out.
    serving = e2e_dir / "serve-only" / workspace.path.name
    shutil.rmtree(serving.parent, ignore_errors=True)
    serving.mkdir(parents=True)
    for name in ("pyproject.toml", "poetry.toml", "poetry.lock", "README.md", "LICENSE", "src"):
        source = workspace.path / name
        if source.is_dir():
            shutil.copytree(source, serving / name)
        elif source.exists():
            shutil.copy2(source, serving / name)
    _, install_s = run([tool("poetry"), "install", "--only", "serve"], serving, workspace.env)
    venv = serving / ".venv"
    dists = installed_distributions(venv)
    size = folder_size_mib(venv)
    workspace.record(serve_install_s=round(install_s, 1), serve_venv_mb=round(size))
    unwanted = sorted(
        name for name in dists if name in {"torch", "lightning", "torchmetrics", "pytest"}
    )
    assert not unwanted, f"the serving install has {unwanted}"
    assert not gpu_distributions(venv)
    assert {"onnxruntime", "fastapi", "uvicorn"} <= dists.keys(), sorted(dists)
    assert size < 300, f"the serving venv is {size:.0f} MiB"

    script = venv / "bin" / slug
    bad, _ = run([script, "serve", str(serving / "src")], serving, workspace.env, check=False)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr

    port = _free_port()
    server = subprocess.Popen(
        [str(script), "serve", str(exported), "--port", str(port)],
        cwd=serving,
        env=workspace.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[1].decode()[-3000:]
            try:
                if _http(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /health"
            time.sleep(0.2)
        status, card = _http(port, "GET", "/metadata")
        assert status == 200
        row: Any = 0.0  # one sample of the card's shape (the batch axis first)
        for size in reversed(card["input"]["shape"][1:]):
            row = [row] * size
        status, answer = _http(port, "POST", "/predict", {"inputs": [row, row]})
        assert status == 200, answer
        assert len(answer["predictions"]) == 2
        assert _http(port, "POST", "/predict", {"inputs": []})[0] == 422
        imported, _ = run(
            [
                venv / "bin" / "python",
                "-c",
                f"import {package}.serve, sys; print('torch' in sys.modules)",
            ],
            serving,
            workspace.env,
        )
        assert imported.stdout.strip() == "False"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
    workspace.record(export_s=round(export_s, 1))


def test_build(workspace: Workspace) -> None:
    workspace.needs("lock")
    shutil.rmtree(workspace.path / "dist", ignore_errors=True)
    workspace.poetry("build")
    wheels = sorted((workspace.path / "dist").glob("*.whl"))
    sdists = sorted((workspace.path / "dist").glob("*.tar.gz"))
    assert len(wheels) == 1, wheels
    assert len(sdists) == 1, sdists
    with zipfile.ZipFile(wheels[0]) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(names[0]).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    # The published metadata keeps plain requirements: no local versions, no
    # index URLs; the cuda extra is there for pip users too.
    assert "Provides-Extra: cuda" in metadata
    assert requires, metadata
    assert all("+" not in line for line in requires), requires
    assert workspace.index.url not in metadata


def test_mnist_bake_locks_torchvision_from_the_same_indexes(
    bake: Any,
    e2e_dir: Path,
    pytorch_index: LocalIndex,
    mirror_url: str,
    poetry_env: dict[str, str],
    e2e_report: Report,
) -> None:
    """dataset=mnist adds torchvision with torch's source rules: lock and plans only.

    torchvision from the public index does not load beside a CPU torch, so this
    bake is not installed. The local index serves the public torchvision wheel
    that matches torch (torch 2.N pairs with torchvision 0.(N+15)); its
    Requires-Python exclusions (``!=3.14.1`` for 0.28.0) are dropped, as PyTorch's
    real index offers other releases that Poetry could fall back to.
    """
    _, minor, *rest = importlib.metadata.version("torch").split("+")[0].split(".")
    vision = f"0.{int(minor) + 15}.{rest[0] if rest else 0}"
    try:
        wheel = download_wheel(f"torchvision=={vision}", e2e_dir / "wheels-mnist")
    except RuntimeError as error:
        pytest.skip(f"no torchvision {vision} wheel to serve: {error}")
    requires_python = HeaderParser().parsestr(wheel_metadata(wheel).decode())["Requires-Python"]
    relaxed = ",".join(
        part for part in (requires_python or "").split(",") if not part.strip().startswith("!=")
    )
    pytorch_index.add([wheel], requires_python={"torchvision": relaxed})

    name = "mnist (lock only)"
    project = bake_for_e2e(bake, e2e_dir, "mnist", {"dataset": "mnist"}, pytorch_index, mirror_url)
    check, _ = run([tool("poetry"), "check", "--strict"], project.path, poetry_env)
    assert "warning" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr
    _, elapsed = run([tool("poetry"), "lock"], project.path, poetry_env)
    e2e_report.record(name, lock_s=round(elapsed, 1))
    lock = tomllib.loads((project.path / "poetry.lock").read_text(encoding="utf-8"))
    for package in TORCH_PACKAGES:
        sources = locked_sources(lock, package)
        # macOS may get more than one build from the mirror, split by Python version.
        assert set(sources) == {"mirror", "pytorch-cpu", "pytorch-cuda"}, (package, sources)
        assert sources.count("pytorch-cpu") == sources.count("pytorch-cuda") == 1, sources
    check_torch_plans(install_plans(project.path, poetry_env), default_source="mirror")
