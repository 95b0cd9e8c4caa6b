"""Learning-curve plots, drawn with matplotlib's Agg backend (no display).

matplotlib is imported inside the function: importing this module is free,
and nothing here touches pyplot's global state, so plotting from a training
run never interferes with a notebook or another backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

Row = Mapping[str, float | int | str]
"""One row of per-epoch metrics, as written to ``metrics.csv``."""

_STAGES = ("train_", "val_")


def plot_learning_curves(rows: Sequence[Row], path: Path) -> None:
    """Save one panel per metric (loss, accuracy, ...), train and val per panel.

    Metrics named ``train_<m>`` and ``val_<m>`` share the panel ``<m>``;
    values missing from a row (say, an epoch without validation) are skipped.

    Args:
        rows: Per-epoch metrics, each with an ``epoch`` key.
        path: The PNG file to write.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # "train_loss" and "val_loss" go to the panel "loss", and so on.
    panels = sorted(
        {key.split("_", 1)[1] for row in rows for key in row if key.startswith(_STAGES)}
    )
    figure = Figure(figsize=(5 * max(len(panels), 1), 4))
    FigureCanvasAgg(figure)  # attaches the Agg canvas that savefig renders with
    axes = figure.subplots(1, max(len(panels), 1), squeeze=False)[0]
    figure.subplots_adjust(left=0.08, right=0.97, wspace=0.25)
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
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=100)
