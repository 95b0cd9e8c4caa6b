"""The training benchmark's references do the same arithmetic as each other.

``bench/plain_loop.py`` (alone and with ``--record``) and
``bench/lightning_floor.py`` are what ``fit()`` is measured against, so they
must train the same network on the same batches in the same order: all three
end on the same validation loss and accuracy, to the last digit, and the
record is what a ``fit`` run keeps. They run with this venv's Python (torch,
Lightning, scikit-learn, matplotlib), a few seconds each; no timing is asserted.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import TEMPLATE_DIR

pytestmark = pytest.mark.e2e

BENCH = TEMPLATE_DIR / "bench"


def reference(*args: str | Path) -> dict[str, Any]:
    ran = subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def test_the_references_end_on_the_same_numbers(tmp_path: Path) -> None:
    record = tmp_path / "record"
    plain = reference(BENCH / "plain_loop.py")
    recorded = reference(BENCH / "plain_loop.py", "--record", record)
    floor = reference(BENCH / "lightning_floor.py")
    assert (plain["record"], recorded["record"]) == (False, True)
    for other in (recorded, floor):
        assert other["val_loss"] == plain["val_loss"]
        assert other["val_acc"] == plain["val_acc"]
    assert plain["val_acc"] >= 0.95
    assert {p.name for p in record.iterdir()} == {
        "metrics.csv",
        "last.ckpt",
        "best.ckpt",
        "learning_curves.png",
    }
    with (record / "metrics.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == list(range(plain["epochs"]))
    assert set(rows[0]) == {"epoch", "step", "train_acc", "train_loss", "val_acc", "val_loss"}
    assert float(rows[-1]["val_loss"]) == pytest.approx(plain["val_loss"])
    assert float(rows[-1]["train_acc"]) > 0.95
