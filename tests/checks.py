"""Checks that any baked project must pass, whatever its options.

Each check takes a :class:`BakedProject`, raises ``AssertionError`` with a
readable message on failure, and reads the project's options from the answers
it recorded, so one call works for every combination.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib

import yaml
from harness import BakedProject, tool

# Jinja markers that must never survive a bake. GitHub Actions' `${{ ... }}`
# expressions are meant to be there and are allowed.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#")


def check_rendered(project: BakedProject) -> None:
    """No Jinja syntax is left in any file or file name."""
    leftovers = []
    for relative in sorted(project.files()):
        if UNRENDERED.search(relative):
            leftovers.append(f"{relative}: in the file name")
            continue
        try:
            text = project.read(relative)
        except UnicodeDecodeError:
            continue  # binary files are copied as they are
        for number, line in enumerate(text.splitlines(), 1):
            if UNRENDERED.search(line):
                leftovers.append(f"{relative}:{number}: {line.strip()}")
    assert not leftovers, "unrendered Jinja:\n" + "\n".join(leftovers)


def check_parses(project: BakedProject) -> None:
    """Every TOML, YAML, JSON and Python file parses."""
    for relative in sorted(project.files()):
        text = project.read(relative) if not relative.endswith((".png", ".ckpt")) else ""
        try:
            if relative.endswith(".toml"):
                tomllib.loads(text)
            elif relative.endswith((".yml", ".yaml")):
                list(yaml.safe_load_all(text))
            elif relative.endswith(".json"):
                json.loads(text)
            elif relative.endswith(".py"):
                ast.parse(text, filename=relative)
        except Exception as error:  # the message names the file, whatever the parser
            raise AssertionError(f"{relative} does not parse: {error}") from error


def check_style(project: BakedProject) -> None:
    """The chosen linter and formatter report nothing."""
    if project.answers["code_style"] == "ruff":
        project.run(tool("ruff"), "check", "--no-cache", ".")
        project.run(tool("ruff"), "format", "--check", "--no-cache", ".")
    else:
        project.run(tool("black"), "--check", ".")
        project.run(tool("isort"), "--check-only", ".")
        project.run(tool("flake8"))


def check_types(project: BakedProject) -> None:
    """mypy, configured by the project's pyproject, reports nothing."""
    if project.answers["type_checker"] == "mypy":
        project.run(tool("mypy"))
