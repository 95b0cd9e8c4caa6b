"""The test harness: bake the template with options and inspect the result.

Everything a test needs to know about the template is derived from the
template's own files (``cookiecutter.json``, the hooks' option table), never
repeated here, so adding an option or a file does not mean editing the tests'
expectations by hand.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON: dict[str, Any] = json.loads(
    (TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8")
)
# Tools installed beside the interpreter running the tests (the template's venv).
BIN_DIR = Path(sys.executable).parent


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """Import a Python file by path (hooks are scripts, not an importable package)."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def choices() -> dict[str, list[str]]:
    """Every choice option and its values, default first, from cookiecutter.json."""
    return {
        key: list(value)
        for key, value in COOKIECUTTER_JSON.items()
        if not key.startswith("_") and isinstance(value, list)
    }


def defaults() -> dict[str, str]:
    """The default value of every choice option."""
    return {key: values[0] for key, values in choices().items()}


def tool(name: str) -> str:
    """Path of a console script installed in the test environment."""
    for candidate in (BIN_DIR / name, BIN_DIR / f"{name}.exe"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed in the test environment")
    return found


def template_files() -> Iterator[Path]:
    """Every file of the project template, as paths relative to its root."""
    root = TEMPLATE_DIR / "{{project_folder(cookiecutter.project_slug)}}"
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path.relative_to(root)


@dataclass
class BakedProject:
    """A project baked from the template, with helpers to read and check it."""

    path: Path
    options: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def answers(self) -> dict[str, Any]:
        """The answers the project records about itself (``.cookiecutter.json``)."""
        data = json.loads(self.read(".cookiecutter.json"))
        return dict(data["cookiecutter"])

    @property
    def package(self) -> str:
        return str(self.answers["package_name"])

    def files(self) -> set[str]:
        """Relative POSIX paths of every file in the project."""
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", "site", "dist"}
        return {
            p.relative_to(self.path).as_posix()
            for p in self.path.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(self.path).parts)
        }

    def exists(self, relative: str) -> bool:
        return (self.path / relative).exists()

    def read(self, relative: str) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def toml(self, relative: str = "pyproject.toml") -> dict[str, Any]:
        return tomllib.loads(self.read(relative))

    def yaml(self, relative: str) -> Any:
        return yaml.safe_load(self.read(relative))

    def json(self, relative: str) -> Any:
        return json.loads(self.read(relative))

    def run(
        self,
        *command: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the project; on failure show its whole output."""
        full_env = {**os.environ, **(env or {})}
        result = subprocess.run(
            command,
            cwd=self.path,
            env=full_env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}) in {self.path}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def copy(self, destination: Path) -> BakedProject:
        """A private copy, for tests that change files."""
        shutil.copytree(self.path, destination)
        return BakedProject(destination, self.options)


def option_id(options: Mapping[str, str]) -> str:
    """A short readable test id for an option combination."""
    return ",".join(f"{k}={v}" for k, v in sorted(options.items())) or "defaults"
