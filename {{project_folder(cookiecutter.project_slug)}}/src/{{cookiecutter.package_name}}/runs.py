"""Compare run folders: ``runs [ROOT]``.

A table of the run folders under ROOT (default ``runs/``, and the trials in
each study folder there): name, command, status, epochs, the best and last
value of the monitored metric, duration, and only the hyperparameters that
differ between the runs listed (never where a run wrote or what it showed).
It reads the run folders alone (through :func:`~.run.open_run`), so it works
with every logger and with runs copied from another machine; a folder that
is not a readable run is listed as ``unreadable`` with the reason. torch is
never imported: the table is quick.

On a terminal (or with ``COLUMNS`` set) the table fits its width: long run
names wrap onto more lines, hyperparameters are headed by the shortest part
of their key that is still unique (``lr`` for ``model.lr``), and those that
do not fit beside the fixed columns follow in further blocks, each led by
the run's name. Piped into a file, each run is one line.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import UsageError
from .names import CONFIG, PROGRAM
from .run import open_run
from .summary import Summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDY = "study.json"
"""The file that marks a study folder of ``tune`` (its trials are runs)."""

NOT_HYPERPARAMETERS = (
    "run.",
    "config",
    "resume",
    "ckpt_path",
    "torch_threads",
    "checkpoint.",
    "data.num_workers",
    "data.predict_path",
    "trainer.enable_",  # progress bar, model summary, checkpointing, autolog
    "trainer.logger",
    "trainer.log_every_n_steps",
    "trainer.callbacks",
    "trainer.default_root_dir",
    "trainer.profiler",
    "trainer.fast_dev_run",
    "trainer.num_sanity_val_steps",
    "trainer.detect_anomaly",
    "trainer.barebones",
    "trainer.plugins",
    "trainer.model_registry",
)
"""Config keys (prefixes) that say where a run went or what it showed, not how
it trained: display and logging switches, paths, speed settings."""

NAME_WIDTH = 16
"""The narrowest the name column gets on a narrow terminal (names wrap)."""

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
    """A nested config as ``{"model.lr": 0.02, ...}`` (lists stay values).

    A class given as ``class_path`` and ``init_args`` reads as the class's
    name and its arguments: ``{"model.net": "MLP", "model.net.hidden_size": 64}``.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "class_path" and prefix:
            flat[prefix.rstrip(".")] = str(value).rpartition(".")[2]
        elif key == "init_args" and isinstance(value, Mapping):
            flat |= flatten(value, prefix)
        elif isinstance(value, Mapping) and value:
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


def terminal_width() -> int | None:
    """The width to fit: ``COLUMNS``, else the terminal's; ``None`` off a terminal."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def headers(columns: Sequence[str]) -> dict[str, str]:
    """Each column's heading: a hyperparameter's shortest unique key suffix."""

    def unique(suffix: str) -> bool:
        matching = (c == suffix or c.endswith(f".{suffix}") for c in columns)
        return suffix not in COLUMNS and sum(matching) == 1

    shown: dict[str, str] = {}
    for column in columns:
        parts = column.split(".")
        suffixes = (".".join(parts[-n:]) for n in range(1, len(parts)))
        shown[column] = (
            column if column in COLUMNS else next(filter(unique, suffixes), column)
        )
    return shown


def wrap_name(name: str, width: int) -> list[str]:
    """``name`` in lines of at most ``width``, broken after ``_``, ``/`` or ``-``."""
    lines = [""]
    for token in re.findall(r"[^_/-]*[_/-]|[^_/-]+", name):
        while len(lines[-1]) + len(token) > width:
            room = width - len(lines[-1]) if len(token) > width else 0
            lines[-1] += token[:room]
            token = token[room:]
            lines.append("")
        lines[-1] += token
    return [line for line in lines if line]


def table(
    rows: Sequence[RunRow], columns: Sequence[str], width: int | None = None
) -> str:
    """The rows as aligned text under a header, within ``width`` characters if given.

    Without ``width`` each row is one line. With it, names wrap in their
    column, and the hyperparameters that do not fit beside the fixed columns
    follow in blocks of their own, each led by the name column.
    """
    metrics = {row.metric for row in rows if row.metric}
    suffix = f" {next(iter(metrics))}" if len(metrics) == 1 else ""
    heads = headers(columns)
    heads |= {c: c + suffix for c in ("best", "last") if c in heads}
    cells = {c: [cell(row.value(c)) for row in rows] for c in columns}
    widths = {c: max(len(heads[c]), *map(len, cells[c])) for c in columns}
    fixed = [c for c in columns if c in COLUMNS and c != "name"]
    blocks: list[list[str]] = [fixed]
    if width is not None:
        room = width - sum(widths[c] + 2 for c in fixed)
        widths["name"] = max(NAME_WIDTH, min(widths["name"], room))
    used = widths["name"] + sum(widths[c] + 2 for c in fixed)
    for column in (c for c in columns if c not in COLUMNS):
        if width is not None and blocks[-1] and used + widths[column] + 2 > width:
            blocks.append([])
            used = widths["name"]
        blocks[-1].append(column)
        used += widths[column] + 2

    def line(texts: Iterable[str], shown: Sequence[str]) -> str:
        padded = (t.ljust(widths[c]) for t, c in zip(texts, shown, strict=True))
        return "  ".join(padded).rstrip()

    lines: list[str] = []
    for block in blocks:
        shown = ["name", *block]
        if lines:
            lines.append("")  # a blank line between two blocks
        lines.append(line((heads[c] for c in shown), shown))
        for index, row in enumerate(rows):
            first, *more = wrap_name(row.name, widths["name"]) or [""]
            lines.append(line([first, *(cells[c][index] for c in block)], shown))
            lines += more
    return "\n".join(lines)


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


def plot_curves(rows: Sequence[RunRow], path: Path) -> Figure:
    """One PNG overlaying each run's monitored metric per epoch.

    The legend (up to 12 runs) stands to the right of the axes, so that no
    name hides a curve; every run has a colour of its own (matplotlib's
    ``tab20`` beyond its default ten); runs that did not complete are dashed,
    their status in the legend. Returns the figure, already saved.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    drawn = [row for row in rows if row.curve]
    if len(drawn) > 10:
        axes.set_prop_cycle(color=[colormaps["tab20"](i) for i in range(20)])
    for row in drawn:
        epochs, values = zip(*row.curve, strict=True)
        complete = row.status == "complete"
        label = row.name if complete else f"{row.name} ({row.status})"
        style = "-" if complete else "--"
        axes.plot(epochs, values, style, marker="o", markersize=3, label=label)
    metrics = sorted({row.metric for row in drawn})
    axes.set_title(f"{', '.join(metrics) or 'no metric'} of {len(drawn)} runs")
    axes.set_xlabel("epoch")
    axes.set_ylabel(", ".join(metrics))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if 0 < len(drawn) <= 12:
        figure.legend(loc="outside right upper", fontsize="small")
    try:
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise UsageError(f"--plot {path}: cannot write it ({error.strerror})") from None
    return figure


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
    shown = {heading: column for column, heading in headers(columns).items()}
    sort = str(shown.get(options.sort, options.sort))  # a heading, or a whole key
    if sort not in columns and not any(sort in row.params for row in rows):
        raise UsageError(
            f"--sort {options.sort}: not a column (choose from {', '.join(shown)})"
        )
    rows = sort_rows(rows, sort, options.reverse)
    width = terminal_width()
    if rows:
        print(table(rows, columns, width))
    for row in rows:
        if row.error:
            line = f"unreadable: {row.error}"
            print(textwrap.fill(line, width, subsequent_indent="  ") if width else line)
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
