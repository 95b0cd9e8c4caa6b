"""The few lines every command ends with: what happened, where it is, what next.

Each command (``fit``, ``test``, ``tune``, ``export``, ...) builds a
:class:`Summary` and prints it once, from the global rank-zero process only,
also when the progress bar is off. The lines are plain text, one
``label: value`` fact a line, so that people read them and tests parse them
(:func:`parse_summary`). Nothing heavy is imported here.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

NEXT = "next"
"""The label of the lines that suggest a command to run next."""


@dataclass
class Summary:
    """A titled list of facts and of commands to run next."""

    title: str
    """One line saying what happened, e.g. ``fit complete: 20 epochs in 2.3 s``."""
    facts: list[tuple[str, str]] = field(default_factory=list)
    """``(label, value)`` pairs, in the order they are printed."""
    next_steps: list[list[str]] = field(default_factory=list)
    """Commands to run next, as words (quoted for the shell when printed)."""

    def add(self, label: str, value: object) -> Summary:
        """Add a fact (paths are shown as POSIX paths); returns the summary."""
        text = value.as_posix() if isinstance(value, Path) else str(value)
        self.facts.append((label, text))
        return self

    def suggest(self, *words: str | Path) -> Summary:
        """Add a command to run next; returns the summary."""
        self.next_steps.append(
            [word.as_posix() if isinstance(word, Path) else word for word in words]
        )
        return self

    def render(self) -> str:
        """The summary as text: the title, then one indented line per entry."""
        width = max([len(label) for label, _ in self.facts] + [len(NEXT)])
        entries = [*self.facts, *((NEXT, shlex.join(w)) for w in self.next_steps)]
        lines = [self.title]
        lines += [f"  {label + ':':<{width + 1}} {value}" for label, value in entries]
        return "\n".join(lines)

    def print(self, file: TextIO | None = None) -> None:
        """Write the summary (to standard output unless told otherwise)."""
        print(self.render(), file=file or sys.stdout, flush=True)


def parse_summary(text: str) -> dict[str, list[str]]:
    """The facts of the first summary in ``text``: label -> values, in order.

    Lines that are not indented ``label: value`` lines are ignored, so this
    reads a summary out of a command's whole output.
    """
    facts: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("  ") or ": " not in line:
            continue
        label, _, value = line.strip().partition(": ")
        facts.setdefault(label.rstrip(":"), []).append(value.strip())
    return facts
