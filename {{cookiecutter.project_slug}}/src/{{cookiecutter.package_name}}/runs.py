"""Compare run folders: ``runs [ROOT]``.

A table of the run folders under ROOT (default ``runs/``, and the trials in
each study folder there): name, command, status, epochs, the best and last
value of the monitored metric, duration, and only the hyperparameters that
differ between the runs listed. It reads the run folders alone (through
:func:`~.run.open_run`), so it works with every logger and with runs copied
from another machine; a folder that is not a readable run is listed as
``unreadable`` with the reason. torch is never imported: the table is quick.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError
from .names import PROGRAM
from .run import CONFIG, open_run
from .summary import Summary

STUDY = "study.json"
"""The file that marks a study folder of ``tune`` (its trials are runs)."""

NOT_HYPERPARAMETERS = ("run.", "config", "resume", "ckpt_path")
"""Config keys (prefixes) that say where a run went, not how it trained."""

COLUMNS = ("name", "command", "status", "epochs", "best", "last", "duration_s")
"""The fixed columns, before the hyperparameters that differ."""


@dataclass
class RunRow:
    """What the table shows of one folder."""

    name: str
    """The folder, relative to ROOT."""
    path: Path
    """The folder."""
    command: str = ""
    status: str = "unreadable"
    epochs: int | None = None
    metric: str = ""
    mode: str = "min"
    best: float | None = None
    last: float | None = None
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    curve: list[tuple[float, float]] = field(default_factory=list)
    error: str = ""

    def value(self, column: str) -> Any:
        """The value in ``column`` (a fixed column or a hyperparameter)."""
        if column in COLUMNS:
            return getattr(self, column)
        return self.params.get(column)


def find_runs(root: Path) -> list[tuple[str, Path]]:
    """The candidate run folders under ``root``: ``(name, path)``, sorted by name.

    A study folder's trials are listed instead of the study folder; a run
    folder given as ``root`` lists itself.

    Raises:
        UsageError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder of runs")
    if (root / CONFIG).is_file():
        return [(root.name, root)]
    found: list[tuple[str, Path]] = []
    for child in _subfolders(root):
        if (child / STUDY).is_file():
            found += [(f"{child.name}/{t.name}", t) for t in _subfolders(child)]
        else:
            found.append((child.name, child))
    return sorted(found)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )


def read_row(name: str, path: Path) -> RunRow:
    """One folder as a table row; ``unreadable`` (with the reason) if not a run."""
    row = RunRow(name=name, path=path)
    try:
        run = open_run(path)
        config = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise UsageError(f"{run.config_path}: not a mapping")
        metrics = run.metrics()
    except UsageError as error:
        row.error = str(error)
        return row
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        row.error = f"{path}: unreadable ({' '.join(str(error).split())[:120]})"
        return row
    checkpoint = config.get("checkpoint") or {}
    row.command = str(run.manifest.get("subcommand") or "")
    row.status = run.status
    row.metric = str(checkpoint.get("monitor") or "val_loss")
    row.mode = str(checkpoint.get("mode") or "min")
    epochs = [r["epoch"] for r in metrics if "epoch" in r]
    row.epochs = int(max(epochs)) + 1 if epochs else None
    row.curve = [
        (float(r.get("epoch", i)), float(r[row.metric]))
        for i, r in enumerate(metrics)
        if row.metric in r
    ]
    values = [value for _, value in row.curve]
    if values:
        row.best = max(values) if row.mode == "max" else min(values)
        row.last = values[-1]
    duration = run.manifest.get("duration_s")
    row.duration_s = float(duration) if isinstance(duration, int | float) else None
    row.params = {
        key: value
        for key, value in flatten(config).items()
        if not key.startswith(NOT_HYPERPARAMETERS)
    }
    return row


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.lr": 0.02, ...}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing(rows: Iterable[RunRow]) -> list[str]:
    """The hyperparameters whose values are not the same in every readable row."""
    readable = [row for row in rows if row.status != "unreadable"]
    keys = list(dict.fromkeys(key for row in readable for key in row.params))
    return [
        key for key in keys if len({repr(row.params.get(key)) for row in readable}) > 1
    ]


def sort_rows(rows: list[RunRow], key: str, reverse: bool) -> list[RunRow]:
    """``rows`` sorted by ``key``; rows without a value come last either way."""
    present = [row for row in rows if row.value(key) is not None]
    missing = [row for row in rows if row.value(key) is None]

    def order(row: RunRow) -> tuple[int, float, str]:
        value = row.value(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (0, float(value), "")
        return (1, 0.0, str(value))

    return sorted(present, key=order, reverse=reverse) + missing


def _goodness(row: RunRow) -> float:
    """Lower is better: the best value, negated for a metric to maximise."""
    best = row.best if row.best is not None else math.inf
    return -best if row.mode == "max" else best


def cell(value: Any) -> str:
    """A value as the table shows it."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def table(rows: Sequence[RunRow], columns: Sequence[str]) -> str:
    """The rows as aligned text, one line each, under a header."""
    metrics = {row.metric for row in rows if row.metric}
    suffix = f" {next(iter(metrics))}" if len(metrics) == 1 else ""
    headers = [c + suffix if c in ("best", "last") else c for c in columns]
    cells = [headers, *([cell(row.value(c)) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(
            text.ljust(width) for text, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in cells
    )


def write_csv(rows: Sequence[RunRow], columns: Sequence[str], path: Path) -> None:
    """The table as CSV, with each row's metric and any error."""
    try:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow([*columns, "metric", "error"])
            for row in rows:
                values = ["" if row.value(c) is None else row.value(c) for c in columns]
                writer.writerow([*values, row.metric, row.error])
    except OSError as error:
        raise UsageError(f"--csv {path}: cannot write it ({error.strerror})") from None


def plot_curves(rows: Sequence[RunRow], path: Path) -> None:
    """One PNG overlaying each run's monitored metric per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    drawn = [row for row in rows if row.curve]
    for row in drawn:
        epochs, values = zip(*row.curve, strict=True)
        axes.plot(epochs, values, marker="o", markersize=3, label=row.name)
    metrics = sorted({row.metric for row in drawn})
    axes.set_title(f"{', '.join(metrics) or 'no metric'} of {len(drawn)} runs")
    axes.set_xlabel("epoch")
    axes.set_ylabel(", ".join(metrics))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if 0 < len(drawn) <= 12:
        axes.legend(fontsize="small")
    try:
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise UsageError(f"--plot {path}: cannot write it ({error.strerror})") from None


def parser(program: str) -> argparse.ArgumentParser:
    """The options of ``runs``."""
    parser = argparse.ArgumentParser(
        prog=program,
        description=(
            "A table of the run folders under ROOT (and the trials of its studies):"
            " status, epochs, best and last value of the monitored metric, duration"
            " and the hyperparameters that differ."
        ),
    )
    parser.add_argument("root", nargs="?", default="runs", metavar="ROOT")
    parser.add_argument(
        "--sort",
        default="name",
        metavar="KEY",
        help="Column to sort by (name, status, best, duration_s, model.lr, ...).",
    )
    parser.add_argument("--reverse", action="store_true", help="Sort descending.")
    parser.add_argument(
        "--last", type=int, default=None, metavar="N", help="Only the N newest runs."
    )
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE",
        help="A PNG overlaying the learning curves of the runs listed.",
    )
    return parser


def main(args: list[str]) -> None:
    """Run ``runs``: ``args`` are the command's words, ``"runs"`` first.

    Raises:
        UsageError: ROOT is not a folder, or a bad ``--sort``/``--last``.
    """
    options = parser(f"{PROGRAM} {args[0]}").parse_args(args[1:])
    root = Path(options.root)
    if options.last is not None and options.last < 1:
        raise UsageError(f"--last {options.last}: must be 1 or more")
    rows = [read_row(name, path) for name, path in find_runs(root)]
    if options.last is not None:
        rows = rows[-options.last :]
    columns = [*COLUMNS, *differing(rows)]
    if options.sort not in columns and not any(options.sort in r.params for r in rows):
        raise UsageError(
            f"--sort {options.sort}: not a column (choose from {', '.join(columns)})"
        )
    rows = sort_rows(rows, options.sort, options.reverse)
    if rows:
        print(table(rows, columns))
    for row in rows:
        if row.error:
            print(f"unreadable: {row.error}")
    if options.csv is not None:
        write_csv(rows, columns, options.csv)
    if options.plot is not None:
        plot_curves(rows, options.plot)
    unreadable = sum(row.status == "unreadable" for row in rows)
    summary = Summary(
        f"runs: {len(rows)} listed under {root.as_posix()}"
        + (f" ({unreadable} unreadable)" if unreadable else "")
    )
    scored = [r for r in rows if r.best is not None and r.status == "complete"]
    best = min(scored, key=_goodness) if scored else None
    if best is not None:
        summary.add("best run", best.path).add(f"best {best.metric}", cell(best.best))
    if options.csv is not None:
        summary.add("csv", options.csv)
    if options.plot is not None:
        summary.add("plot", options.plot)
    if best is not None:
        summary.suggest(PROGRAM, "fit", "--config", best.path / CONFIG)
    if options.plot is None:
        summary.suggest(PROGRAM, "runs", root, "--plot", "curves.png")
    summary.print()
