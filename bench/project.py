"""A baked project's life with Poetry: lock, install (cold and warm cache), first import.

``measure`` bakes the default project against the end-to-end tier's local
PyTorch index, locks and installs it, then hands the installed project and
Poetry's environment to each part of the parts table (``bench/parts.py``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.bakes import bake
from bench.common import (
    DROPPED_ENV,
    Ran,
    cookiecutter_config,
    log,
    median,
    quiet_stdout,
    run_checked,
    seconds,
    test_module,
    tool,
    tree_size,
)


@dataclass
class Local:
    """The local PyTorch index and Poetry's environment, from the end-to-end tier."""

    index: Any
    env: dict[str, str]
    mirror: str
    wheel: Path


def mirror_url() -> str:
    """The public index's simple URL, as pip knows it (never written into a file)."""
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def _plain(function: Any) -> Any:
    """A pytest fixture's own function (``__wrapped__``), to call outside pytest."""
    return getattr(function, "__wrapped__", function)


@contextlib.contextmanager
def local_setup(work: Path, cache: Path) -> Iterator[Local]:
    """Serve the CPU torch wheel on 127.0.0.1 and give Poetry an isolated environment.

    Reuses the end-to-end tier's helpers (``tests/e2e``); Poetry's cache is
    ``cache``, private to this run.
    """
    e2e = test_module("e2e.conftest")
    local_index = test_module("e2e.local_index")
    torch_version = version("torch")
    if "+cpu" not in torch_version:
        raise RuntimeError(f"the template venv's torch is {torch_version}, not a CPU build")
    wheels = work / "wheels"
    try:
        wheel = e2e.download_wheel(f"torch=={torch_version}", wheels)
    except RuntimeError:
        pytorch_cpu = test_module("harness").COOKIECUTTER_JSON["torch_index_url"] + "/cpu"
        wheel = e2e.download_wheel(
            f"torch=={torch_version}", wheels, "--extra-index-url", pytorch_cpu
        )
    index = local_index.LocalIndex(work / "index", e2e.CHANNELS)
    index.add([wheel])
    make_env = getattr(e2e, "poetry_environment", None) or _plain(e2e.poetry_env)
    env = {k: v for k, v in make_env(work).items() if k not in DROPPED_ENV}
    env["POETRY_CACHE_DIR"] = str(cache)
    try:
        yield Local(index, env, mirror_url(), wheel)
    finally:
        index.stop()


def bake_project(work: Path, name: str, options: Mapping[str, str]) -> Path:
    out = work / name
    out.mkdir()
    with cookiecutter_config(work) as config, quiet_stdout():
        return bake(options, out, config)


def plain_torch(project: Path) -> None:
    """Make torch a plain dependency: drop the PyTorch source rules of ``pyproject.toml``.

    The mirror then serves the registry's torch, which is its CUDA build on Linux.
    """
    path = project / "pyproject.toml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.strip() == "[tool.poetry.dependencies]":
            skipping = True
            continue
        if skipping and (line.startswith("[") or line.startswith("#")):
            skipping = False
        if not skipping:
            kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")


def poetry(project: Path, env: Mapping[str, str], *args: str, timeout: float = 1800) -> Ran:
    log(f"  poetry {' '.join(args)}")
    ran = run_checked([tool("poetry"), *args], cwd=project, env=env, timeout=timeout)
    log(f"  ... {seconds(ran.wall_s)}")
    return ran


def bench_poetry(project: Path, env: Mapping[str, str], warm: bool, result: dict[str, Any]) -> None:
    """``poetry lock`` and ``poetry install`` with a cold cache, then (``warm``) again."""
    result["lock_cold_s"] = poetry(project, env, "lock").wall_s
    result["install_cold_s"] = poetry(project, env, "install").wall_s
    if warm:
        (project / "poetry.lock").unlink()
        result["lock_warm_s"] = poetry(project, env, "lock").wall_s
        shutil.rmtree(project / ".venv")
        result["install_warm_s"] = poetry(project, env, "install").wall_s
    venv = project / ".venv"
    result["venv_bytes"] = tree_size(venv)
    steps = test_module("e2e.steps")
    dists = steps.installed_distributions(venv)
    result["torch"] = dists.get("torch")
    result["gpu_distributions"] = steps.gpu_distributions(venv)


def measure_imports(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``import <package>.cli`` in the fresh venv: the first time (writing bytecode), then again.

    ``poetry install`` compiles no bytecode, so the first command after it pays
    for compiling torch and Lightning once.
    """
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    package = answers.get("cookiecutter", answers)["package_name"]
    python = project / ".venv" / "bin" / "python"
    times = []
    for _ in range(3):
        times.append(run_checked([python, "-c", f"import {package}.cli"], cwd=project, env=env))
    result = {"first_s": times[0].wall_s, "warm_s": median([t.wall_s for t in times[1:]])}
    log(
        f"  import {package}.cli: first {seconds(result['first_s'])},"
        f" then {seconds(result['warm_s'])}"
    )
    return result


def package_and_slug(project: Path) -> tuple[str, str]:
    """The baked project's package name and slug, from its ``.cookiecutter.json``."""
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    answers = answers.get("cookiecutter", answers)
    return answers["package_name"], answers["project_slug"]


def measure(
    work: Path,
    result: dict[str, Any],
    parts: Mapping[str, Callable[[Path, Mapping[str, str]], dict[str, Any]]],
    warm: bool = True,
    keep: bool = False,
    cuda_torch: bool = False,
    downloads: bool = True,
) -> None:
    """The default bake with Poetry, then every part in ``parts`` on the installed project.

    Fills ``result`` as it goes, so a failing step keeps what came before; a
    failing part is recorded under ``errors`` and the next one runs.
    """
    cache = work / "poetry-cache"
    with local_setup(work, cache) as local:
        options = {"package_index_url": local.mirror, "torch_index_url": local.index.base}
        log("default bake, CPU torch from the local index, the rest through the mirror")
        project = bake_project(work, "cpu", options)
        result["cpu"] = {}
        bench_poetry(project, local.env, warm, result["cpu"])
        result["imports"] = measure_imports(project, local.env)
        for name, part in parts.items():
            log(f"part {name}")
            try:
                result[name] = part(project, local.env)
            except Exception as error:  # one part failing must not lose the others
                log(f"part {name} failed: {error!r}")
                result.setdefault("errors", []).append(f"{name}: {error!r}")
        if downloads:
            try:
                from bench import downloads as sizes

                result["downloads"] = sizes.measure(local.wheel, local.mirror)
            except Exception as error:
                log(f"download sizes failed: {error!r}")
                result.setdefault("errors", []).append(f"downloads: {error!r}")
        first_model(result)
        if not keep:
            shutil.rmtree(project.parent, ignore_errors=True)
        if cuda_torch:
            log("plain torch from the registry (CUDA build; several GB)")
            project = bake_project(work, "cuda", options)
            plain_torch(project)
            result["cuda"] = {}
            bench_poetry(project, local.env, False, result["cuda"])
            shutil.rmtree(project.parent, ignore_errors=True)


def first_model(result: dict[str, Any]) -> None:
    """Time to a first model from a fresh copy: lock, install, first import, fit (cold/warm cache).

    The fit is the training CLI's whole process (console script), after the
    first import has written the bytecode.
    """
    cpu, imports = result.get("cpu") or {}, result.get("imports") or {}
    fit = (result.get("training") or {}).get("cli_process_s")
    if fit is None or "first_s" not in imports:
        return
    for cache in ("cold", "warm"):
        if f"lock_{cache}_s" in cpu:
            steps = {
                "lock_s": cpu[f"lock_{cache}_s"],
                "install_s": cpu[f"install_{cache}_s"],
                "first_import_s": imports["first_s"],
                "fit_s": fit,
            }
            result.setdefault("first_model", {})[cache] = {
                **steps,
                "total_s": sum(steps.values()),
            }
