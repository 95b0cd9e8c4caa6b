"""Your own table: a CSV (or Parquet) file, one sample per row, one column the class.

    fit --data TableDataModule --data.path FILE.csv --data.target COLUMN

Every other column is a feature unless ``--data.features`` lists them. A
column of numbers is numeric: standardised with the training split's mean and
deviation, inside the model. A column of text (or one listed in
``--data.categorical``) is categorical: its categories are those of the
training split, one-hot encoded inside the model. The target's values,
numbers or text, are the class names. Column names are used as given.

The model takes rows of raw values, one number per column in this order: a
numeric column's value, a categorical column's category index (see
``input_spec``); ``serve`` and ``predict`` do that lookup from the names.
Anything the data cannot be used as is stops the command with one line naming
the file, the line and the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch.utils.data import Dataset, TensorDataset
from typing_extensions import override

from .datamodule import ClassificationDataModule, Rows
from .errors import UsageError

MOSTLY_NUMERIC = 0.5
"""A text column with at least this share of numbers is numeric with stray text."""


def read_table(path: str, option: str = "data.path") -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (pandas' own readers).

    Raises:
        UsageError: The file is missing, empty or not a table.
    """
    source = Path(path)
    if not source.is_file():
        raise UsageError(f"{option} {path}: no such file")
    try:
        if source.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(source)
        return pd.read_csv(source)
    except ImportError as missing:
        raise UsageError(
            f"{option} {path}: reading Parquet needs pyarrow (pip install pyarrow):"
            f" {missing}"
        ) from None
    except (ValueError, OSError, UnicodeDecodeError) as error:  # pandas' parse errors
        message = " ".join(str(error).split())[:200]
        raise UsageError(f"{option} {path}: not a readable table ({message})") from None


def _line(position: int) -> int:
    """The file line of a data row (the header is line 1)."""
    return position + 2


class TableDataModule(ClassificationDataModule):
    """The rows of a CSV or Parquet file, split into train, validation and test sets.

    Each sample is a ``(row, label)`` pair: ``float32`` values, one per
    feature column, and the ``int64`` index of the row's class.
    ``predict_path``: a CSV or Parquet file with the feature columns (a
    target column there is ignored).
    """

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        categorical: list[str] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
        predict_path: str | None = None,
    ) -> None:
        """Store the settings; the file is read in ``setup``.

        Args:
            path: The CSV (or ``.parquet``) file.
            target: The column holding each row's class.
            features: The feature columns, in order (default: every other one).
            categorical: Columns to treat as categories even if they hold
                numbers (codes, years, zip codes).
            batch_size: Rows per batch, for every split.
            num_workers: Worker processes per loader (``0``: the table is in
                memory, the main process is fastest).
            val_fraction: Share of all rows held out for validation.
            test_fraction: Share of all rows held out for the final test.
            split_seed: Seed of the split alone (independent of training seeds).
            predict_path: A CSV or Parquet file of rows to predict instead of
                the test split.
        """
        super().__init__(
            batch_size,
            num_workers,
            val_fraction,
            test_fraction,
            split_seed,
            predict_path,
        )
        self.save_hyperparameters()
        self.path = path
        self.target = target
        self.features = list(features) if features is not None else None
        self.categorical = set(categorical or [])
        self.frame = pd.DataFrame()
        self.kinds: dict[str, str] = {}
        self.values = torch.empty(0)
        self.labels = torch.empty(0, dtype=torch.int64)

    @override
    def read(self) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Read the file, decide each column's kind, and the classes."""
        frame = read_table(self.path)
        columns = [str(name) for name in frame.columns]
        frame.columns = pd.Index(columns)
        if self.target not in columns:
            raise UsageError(
                f"data.target {self.target!r}: no such column in {self.path}; its"
                f" columns: {', '.join(repr(name) for name in columns)}"
            )
        features = self.features or [name for name in columns if name != self.target]
        for name in [*features, *sorted(self.categorical)]:
            if name not in columns:
                raise UsageError(
                    f"data.features: no column {name!r} in {self.path}; its columns:"
                    f" {', '.join(repr(column) for column in columns)}"
                )
        if self.target in features:
            raise UsageError(f"data.features: {self.target!r} is the target column")
        if not features:
            raise UsageError(
                f"data.path {self.path}: no feature column besides the target"
            )
        target = frame[self.target]
        if not pd.api.types.is_numeric_dtype(target):
            target = target.astype("string")
        if target.isna().any():
            row = int(np.flatnonzero(target.isna().to_numpy())[0])
            raise UsageError(
                f"data.path {self.path} line {_line(row)}: column {self.target!r} (the"
                " target) has no value"
            )
        self.kinds = {name: self._kind(frame[name]) for name in features}
        self.frame = frame[features]
        classes = sorted(target.unique().tolist())
        codes = pd.Index(classes).get_indexer(pd.Index(target)).astype(np.int64)
        self.labels = torch.from_numpy(codes)
        return codes, [str(value) for value in classes]

    def _kind(self, column: pd.Series[Any]) -> str:
        """``"numeric"`` or ``"categorical"``; a missing value or stray text stops."""
        name = str(column.name)
        missing = column.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise UsageError(
                f"data.path {self.path} line {_line(row)}: column {name!r} has no value"
                " (fill or drop such rows first)"
            )
        if name in self.categorical or pd.api.types.is_bool_dtype(column):
            return "categorical"
        if pd.api.types.is_numeric_dtype(column):
            return "numeric"
        # Each distinct value is parsed once (a text column has few), weighed by
        # how often it occurs: the same share of rows as parsing every row.
        counts = column.value_counts(sort=False)
        numbers = pd.to_numeric(pd.Series(counts.index), errors="coerce").notna()
        parsed = numbers.to_numpy()
        if counts.to_numpy()[parsed].sum() >= MOSTLY_NUMERIC * len(column):
            stray = column.isin(counts.index[~parsed]).to_numpy()
            row = int(np.flatnonzero(stray)[0])
            raise UsageError(
                f"data.path {self.path} line {_line(row)}: column {name!r} holds"
                f" {column.iloc[row]!r}, not a number like the rest of the column (fix"
                " it, or list the column in data.categorical)"
            )
        return "categorical"

    @override
    def describe(self, train: Rows) -> dict[str, Any]:
        """Each column's statistics or categories, from the training rows."""
        columns: list[dict[str, Any]] = []
        values = np.empty(self.frame.shape, dtype=np.float32)
        for position, (name, kind) in enumerate(self.kinds.items()):
            column = self.frame[name]
            if kind == "numeric":
                numbers = column.to_numpy(dtype=np.float64)
                mean, std = numbers[train].mean(), numbers[train].std()
                std = float(std) if std > 0 else 1.0
                columns.append(
                    {"name": name, "kind": kind, "mean": float(mean), "std": std}
                )
                values[:, position] = numbers
            else:
                text = column.astype(str)
                categories = sorted(text.iloc[train].unique().tolist())
                columns.append({"name": name, "kind": kind, "categories": categories})
                # A category only the held-out rows have encodes as all zeros.
                values[:, position] = pd.Index(categories).get_indexer(pd.Index(text))
        self.values = torch.from_numpy(values)
        numeric = sum(1 for kind in self.kinds.values() if kind == "numeric")
        return {
            "kind": "table",
            "name": "features",
            "shape": [len(columns)],
            "columns": columns,
            "target": self.target,
            "description": (
                f"one row of {Path(self.path).name}: {len(columns)} columns"
                f" ({numeric} numeric, {len(columns) - numeric} categorical), a"
                " numeric column's raw value or a categorical column's index in"
                " its categories"
            ),
        }

    @override
    def subset(self, rows: Rows) -> Dataset[tuple[torch.Tensor, ...]]:
        """The rows at ``rows`` and their labels."""
        positions = torch.from_numpy(rows)
        return TensorDataset(self.values[positions], self.labels[positions])

    @override
    def read_predict(
        self, path: str
    ) -> tuple[Dataset[tuple[torch.Tensor, ...]], list[str]]:
        """The rows of a table with the feature columns, encoded as in training."""
        frame = read_table(path, "data.predict_path")
        frame.columns = pd.Index([str(name) for name in frame.columns])
        values = encode_rows(frame, self.input_spec["columns"], path)
        inputs = torch.from_numpy(values)
        no_labels = torch.full((len(inputs),), -1, dtype=torch.int64)
        return TensorDataset(inputs, no_labels), [
            str(row) for row in range(len(inputs))
        ]


def encode_rows(
    frame: pd.DataFrame, columns: list[dict[str, Any]], path: str
) -> npt.NDArray[np.float32]:
    """A table's rows as the model's raw input: values, and category indices.

    Raises:
        UsageError: A feature column is missing, or a value is missing, not a
            number in a numeric column, or a category training never saw.
    """
    missing = [
        column["name"] for column in columns if column["name"] not in frame.columns
    ]
    if missing:
        raise UsageError(
            f"data.predict_path {path}: no column {missing[0]!r}; the model needs"
            f" {', '.join(repr(column['name']) for column in columns)}"
        )
    values = np.empty((len(frame), len(columns)), dtype=np.float32)
    for position, column in enumerate(columns):
        name, cells = column["name"], frame[column["name"]]
        empty = cells.isna().to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise UsageError(
                f"data.predict_path {path} line {_line(row)}: column {name!r} has no"
                " value"
            )
        if column["kind"] == "numeric":
            numbers = pd.to_numeric(cells, errors="coerce")
            bad = numbers.isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise UsageError(
                    f"data.predict_path {path} line {_line(row)}: column {name!r}"
                    f" holds {cells.iloc[row]!r}, not a number"
                )
            values[:, position] = numbers.to_numpy(dtype=np.float64)
        else:
            codes = pd.Index(column["categories"]).get_indexer(cells.astype(str))
            if (codes < 0).any():
                row = int(np.flatnonzero(codes < 0)[0])
                known = ", ".join(repr(c) for c in column["categories"][:10])
                raise UsageError(
                    f"data.predict_path {path} line {_line(row)}: column {name!r} holds"
                    f" {cells.iloc[row]!r}, a category training never saw (it knows"
                    f" {known})"
                )
            values[:, position] = codes
    return values
