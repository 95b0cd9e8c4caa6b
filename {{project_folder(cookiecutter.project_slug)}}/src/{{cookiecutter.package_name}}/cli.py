"""The project's command line: one subcommand per capability.

This module only wires subcommands to the modules that implement them, and
imports none of them until one is chosen: ``--help`` answers at once, and
``serve`` never loads torch. Each implementing module has a ``main(args)``
taking the command's words, its name first.

A :class:`~.errors.UsageError` from any command (a bad option, a missing
file, a folder that is not a run) is printed as one line and ends the
process with status 2. Set the environment variable named by
:data:`TRACEBACK_VARIABLE` to ``1`` to see the full traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

from .errors import USAGE_EXIT_STATUS, UsageError
from .names import PROGRAM, SUMMARIES, TRACEBACK_VARIABLE


class Command(NamedTuple):
    """A subcommand: the module implementing it and one sentence for ``--help``."""

    module: str
    summary: str


MODULES: dict[str, str] = {
    "fit": "train",
    "validate": "train",
    "test": "train",
    "predict": "train",
    "export": "export",
    "serve": "serve",
{%- if cookiecutter.hpo == "optuna" %}
    "tune": "tune",
{%- endif %}
    "runs": "runs",
}
"""The module that implements each subcommand."""

COMMANDS: dict[str, Command] = {
    name: Command(MODULES[name], summary) for name, summary in SUMMARIES.items()
}
"""Every subcommand, in the order ``--help`` lists them."""

GUIDE = "docs/training.md"
"""The walk-through that ``--help`` points to."""


def usage() -> str:
    """The text of ``--help``: the project, its commands, and where to read on."""
    from . import __doc__ as package_doc
    from . import __version__

    # The package docstring: a first line, then the project's name and description.
    about = [" ".join(part.split()) for part in (package_doc or "").split("\n\n")[1:]]
    width = max(len(name) for name in COMMANDS) + 2
    lines = [
        f"usage: {PROGRAM} COMMAND [OPTIONS]",
        "",
        f"{': '.join(part for part in about if part)} (version {__version__})",
        "",
        "commands:",
        *(f"  {name:<{width}}{command.summary}" for name, command in COMMANDS.items()),
        "",
        f"`{PROGRAM} COMMAND --help` lists the options of a command; {GUIDE}",
        "walks through training, evaluating and comparing runs.",
    ]
    return "\n".join(lines)


def run_command(words: list[str]) -> None:
    """Run the subcommand that ``words`` start with (``--help`` when none)."""
    if not words or words[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if words else sys.stderr)
        if not words:
            raise SystemExit(USAGE_EXIT_STATUS)
        return
    if words[0] == "--version":
        from . import __version__

        print(f"{PROGRAM} {__version__}")
        return
    command = COMMANDS.get(words[0])
    if command is None:
        raise UsageError(
            f"unknown command {words[0]!r}; choose one of {', '.join(COMMANDS)}"
            f" (`{PROGRAM} --help` says what each does)"
        )
    module = importlib.import_module(f".{command.module}", __package__)
    module.main(words)


def main(args: list[str] | None = None) -> None:
    """Run the command line; ``args`` replaces ``sys.argv[1:]`` when given.

    Args:
        args: Command-line words, e.g. ``["fit", "--config", "configs/default.yaml"]``.

    Raises:
        SystemExit: With status 2 after a usage error (and as each command exits).
    """
    words = sys.argv[1:] if args is None else list(args)
    try:
        run_command(words)
    except UsageError as error:
        if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            raise
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT_STATUS) from None


if __name__ == "__main__":
    main()
