"""Learning-curve plots, drawn with matplotlib's Agg backend (no display).

matplotlib is imported inside the function: importing this module is free,
and nothing here touches pyplot's global state, so plotting from a training
run never interferes with a notebook or another backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Row = Mapping[str, float | int | str]
"""One row of per-epoch metrics, as written to ``metrics.csv``."""

_STAGES = ("train_", "val_")


def best_epoch(
    rows: Sequence[Row], monitor: str | None, mode: str = "min"
) -> int | None:
    """The epoch with the best ``monitor`` value (the first, on a tie), if any.

    Args:
        rows: Per-epoch metrics, each with an ``epoch`` key.
        monitor: The metric the checkpoints follow (e.g. ``val_loss``).
        mode: ``min`` or ``max``: which way is better.
    """
    scored = [
        (float(row[monitor]), int(row["epoch"]))
        for row in rows
        if monitor and monitor in row
    ]
    if not scored:
        return None
    pick = max if mode == "max" else min
    best = pick(value for value, _ in scored)
    return next(epoch for value, epoch in scored if value == best)


def plot_learning_curves(
    rows: Sequence[Row],
    path: Path,
    *,
    title: str = "",
    monitor: str | None = None,
    mode: str = "min",
) -> Figure:
    """Save one panel per metric (loss, accuracy, ...), train and val per panel.

    Metrics named ``train_<m>`` and ``val_<m>`` share the panel ``<m>``;
    values missing from a row (say, an epoch without validation) are skipped.
    Each panel has its axes labelled; the figure is titled ``title`` (the
    run's name) and the epoch with the best ``monitor`` value is marked by a
    dashed line in every panel. The PNG's metadata repeat the title and the
    best epoch (``Title`` and ``Description``).

    Args:
        rows: Per-epoch metrics, each with an ``epoch`` key.
        path: The PNG file to write.
        title: The figure's title, usually the run folder's name.
        monitor: The metric the best checkpoint was chosen by.
        mode: ``min`` or ``max``: which way ``monitor`` is better.

    Returns:
        The figure (already saved), for a caller that wants to look at it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # "train_loss" and "val_loss" go to the panel "loss", and so on.
    panels = sorted(
        {key.split("_", 1)[1] for row in rows for key in row if key.startswith(_STAGES)}
    )
    best = best_epoch(rows, monitor, mode)
    figure = Figure(figsize=(5 * max(len(panels), 1), 4.4))
    FigureCanvasAgg(figure)  # attaches the Agg canvas that savefig renders with
    axes = figure.subplots(1, max(len(panels), 1), squeeze=False)[0]
    figure.subplots_adjust(left=0.08, right=0.97, top=0.82, wspace=0.25)
    if title:
        figure.suptitle(title)
    for ax, metric in zip(axes, panels, strict=False):
        for stage in _STAGES:
            points = [
                (float(row["epoch"]), float(row[stage + metric]))
                for row in rows
                if stage + metric in row
            ]
            if points:
                epochs, values = zip(*points, strict=True)
                ax.plot(epochs, values, marker="o", label=stage.rstrip("_"))
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", label=f"best (epoch {best})")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    description = "" if best is None else f"best epoch: {best} ({monitor}, {mode})"
    figure.savefig(path, dpi=100, metadata={"Title": title, "Description": description})
    return figure
