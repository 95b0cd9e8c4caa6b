"""The parts table: what runs on the installed default project, one line per area.

Each part is a module of this package with a function
``measure(project: Path, env: Mapping[str, str]) -> dict[str, Any]``: it gets
the baked default project, already installed with Poetry (its ``.venv`` inside
the project), and Poetry's environment, and returns JSON-ready figures, which
land under ``project.<name>`` in the results. An optional
``rows(result) -> list[tuple[str, str]]`` gives its lines in the Markdown
table; without it, every number or string at the top of its result gets a
line. A part whose module is missing is skipped with a note, so the table may
list areas before their modules land. Adding an area: a module, and one line
in ``PARTS``. ``--skip NAME`` leaves a part out.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import log

Measure = Callable[[Path, Mapping[str, str]], dict[str, Any]]
Rows = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


@dataclass(frozen=True)
class Part:
    """One area measured on the installed project."""

    name: str
    module: str
    what: str
    options: Callable[[argparse.Namespace], dict[str, Any]] = field(default=lambda args: {})


PARTS = (
    Part("baked_suite", "bench.baked_suite", "the baked test suite and its import floor"),
    Part(
        "training",
        "bench.training",
        "Trainer.fit beside plain PyTorch and Lightning's barebones floor",
        lambda args: {"runs": args.fit_runs},
    ),
    Part("search", "bench.search", "a 16-trial Optuna study with 1 and 2 workers"),
    Part("serving", "bench.serving", "ONNX export and HTTP serving throughput"),
)


def load(part: Part) -> Any | None:
    """The part's module, or ``None`` when it does not exist (yet)."""
    try:
        return importlib.import_module(part.module)
    except ModuleNotFoundError as error:
        if error.name != part.module:
            raise
        return None


def selected(args: argparse.Namespace) -> dict[str, Measure]:
    """``name -> measure`` for every part not skipped whose module exists, in table order."""
    chosen: dict[str, Measure] = {}
    for part in PARTS:
        if part.name in args.skip:
            continue
        module = load(part)
        if module is None:
            log(f"part {part.name}: no module {part.module} yet, skipped")
            continue
        options = part.options(args)

        def measure(
            project: Path, env: Mapping[str, str], module: Any = module, options: Any = options
        ) -> dict[str, Any]:
            result: dict[str, Any] = module.measure(project, env, **options)
            return result

        chosen[part.name] = measure
    return chosen


def generic_rows(name: str) -> Rows:
    """Table lines for a part without ``rows``: its top-level numbers and strings."""

    def rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
        lines = []
        for key, value in result.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                continue
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            lines.append((f"{name}: {key}", shown))
        return lines

    return rows


def table_rows() -> dict[str, Rows]:
    """Each existing part's table lines, except the built-in ones the report draws itself."""
    renderers: dict[str, Rows] = {}
    for part in PARTS:
        if part.name in ("baked_suite", "training"):
            continue
        module = load(part)
        if module is not None:
            renderers[part.name] = getattr(module, "rows", None) or generic_rows(part.name)
    return renderers
