"""The few lines every command ends with: what happened, where it is, what next.

Each command (``fit``, ``test``, ``tune``, ``export``, ...) builds a
:class:`Summary` and prints it once, from the global rank-zero process only,
also when the progress bar is off. The lines are plain text, one
``label: value`` fact a line, so that people read them and tests parse them
(:func:`parse_summary`). Nothing heavy is imported here.

The training commands' summaries are built here too, by
:func:`command_summary`, from the :class:`Outcome` that
``callbacks.RunSummary`` collects while the Trainer runs: the callback says
what happened, this module which commands come next.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .names import (
    BEST_CHECKPOINT,
    CONFIG,
    LAST_CHECKPOINT,
    MANIFEST,
    METRICS,
    PLOT,
    PROGRAM,
    SUMMARIES,
)
from .plots import best_epoch
from .run import Row, source_run

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


@dataclass
class Outcome:
    """How ``fit``, ``validate``, ``test`` or ``predict`` ended, for its summary."""

    command: str
    """The Trainer's method: ``fit``, ``validate``, ``test`` or ``predict``."""
    run: Path
    """The run folder."""
    status: str
    """The manifest's ``status``: ``complete``, ``failed``, ``interrupted``, ..."""
    duration_s: float = 0.0
    rows: list[Row] = field(default_factory=list)
    """The rows of ``metrics.csv``, one per epoch (one row after evaluating)."""
    monitor: str | None = None
    """The metric the best checkpoint is chosen by (``val_loss``)."""
    mode: str = "min"
    """``min`` or ``max``: which way ``monitor`` is better."""
    best_checkpoint: str = ""
    """After ``fit``: the best checkpoint the Trainer kept."""
    checkpoint: str | None = None
    """After evaluating: the checkpoint scored."""
    error: str = ""
    """What failed (``TypeName: message``); empty after Ctrl+C or a success."""


def command_summary(outcome: Outcome) -> Summary:
    """The summary a training command ends with, and the commands to run next."""
    if outcome.status != "complete":
        return _stopped(outcome)
    if outcome.command == "fit":
        return _fitted(outcome)
    return _evaluated(outcome)


def next_commands(run: Path) -> list[list[str | Path]]:
    """The commands that use a trained run, for those this project has."""
    commands: list[list[str | Path]] = [
        [PROGRAM, "test", "--run", run],
        [PROGRAM, "predict", "--run", run],
    ]
    if "export" in SUMMARIES:
        commands.append([PROGRAM, "export", run])
    if "tune" in SUMMARIES:
        commands.append([PROGRAM, "tune", "--config", run / CONFIG])
    return commands


def _fitted(outcome: Outcome) -> Summary:
    """After ``fit``: the run, its best checkpoint, best and last metrics, plots."""
    run, rows = outcome.run, outcome.rows
    epochs = int(rows[-1]["epoch"]) + 1 if rows else 0
    summary = Summary(f"fit complete: {epochs} epochs in {outcome.duration_s:.1f} s")
    summary.add("run", run)
    best = best_epoch(rows, outcome.monitor, outcome.mode)
    if outcome.best_checkpoint:
        text = _shown(outcome.best_checkpoint)
        if best is not None:
            pick = "highest" if outcome.mode == "max" else "lowest"
            text += f" (epoch {best}, {pick} {outcome.monitor})"
        summary.add("best checkpoint", text)
    at_best = next((row for row in rows if row.get("epoch") == best), {})
    for key in sorted({key for row in rows for key in row if key.startswith("val_")}):
        epoch, value = next((r["epoch"], r[key]) for r in reversed(rows) if key in r)
        if key not in at_best:
            text = f"last {_number(value)} (epoch {epoch})"
        elif epoch == best:
            text = f"{_number(value)} (epoch {epoch}: best and last)"
        else:
            text = (
                f"best {_number(at_best[key])} (epoch {best}),"
                f" last {_number(value)} (epoch {epoch})"
            )
        summary.add(key, text)
    if (run / PLOT).is_file():
        summary.add("plot", run / PLOT)
    for words in next_commands(run):
        summary.suggest(*words)
    return summary


def _evaluated(outcome: Outcome) -> Summary:
    """After ``validate``, ``test`` or ``predict``: the scores or the predictions."""
    run, command = outcome.run, outcome.command
    summary = Summary(f"{command} complete").add("run", run)
    if outcome.checkpoint:
        summary.add("checkpoint", outcome.checkpoint)
    if command == "predict":
        for path in sorted(run.glob("predictions*.csv")):
            with path.open(encoding="utf-8") as file:
                count = sum(1 for _ in file) - 1
            summary.add("predictions", f"{path.as_posix()} ({count} rows)")
    else:
        for key, value in (outcome.rows[0] if outcome.rows else {}).items():
            summary.add(key, _number(value))
        summary.add("metrics", run / METRICS)
    source = source_run(outcome.checkpoint)
    if source is not None:
        for words in next_commands(source):
            if words[1] != command:
                summary.suggest(*words)
    return summary


def _stopped(outcome: Outcome) -> Summary:
    """After a failure, Ctrl+C or pruning: what the run folder kept."""
    run = outcome.run
    title = f"{outcome.command} {outcome.status}"
    if outcome.error:
        title += f": {outcome.error}".splitlines()[0]
    summary = Summary(title).add("run", run)
    kept = [name for name in (CONFIG, MANIFEST, PLOT) if (run / name).is_file()]
    if (run / METRICS).is_file():
        kept.append(f"{METRICS} ({len(outcome.rows)} rows)")
    kept += [
        name for name in (BEST_CHECKPOINT, LAST_CHECKPOINT) if (run / name).is_file()
    ]
    summary.add("kept", ", ".join(kept) or "nothing")
    resumable = outcome.command == "fit" and outcome.status != "pruned"
    if resumable and (run / LAST_CHECKPOINT).is_file():
        summary.suggest(PROGRAM, "fit", "--resume", run)
    return summary


def _shown(path: str) -> str:
    """A path as the summary shows it: relative to the working folder when in it."""
    absolute = Path(path)
    if absolute.is_absolute() and absolute.is_relative_to(Path.cwd()):
        return absolute.relative_to(Path.cwd()).as_posix()
    return path


def _number(value: float | int) -> str:
    """A metric as a short number: 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
