"""Helpers shared by the end-to-end tests: running commands, reading results."""

from __future__ import annotations

import csv
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Distributions that only a CUDA build of torch brings (several GB).
GPU_DISTRIBUTIONS = re.compile(r"^(nvidia[-_].*|triton|cuda[-_].*|pytorch[-_]triton.*)$")
# Well above chance (0.1); the default config reaches about 0.95 on digits.
MIN_VAL_ACC = 0.85
SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


def run(
    command: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    *,
    check: bool = True,
    timeout: float = 600,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``command`` with exactly ``env``; return the result and its wall time.

    On failure (with ``check``) the whole output goes into the assertion.
    """
    started = time.monotonic()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    if check and result.returncode != 0:
        shown = " ".join(str(part) for part in command)
        raise AssertionError(
            f"{shown} failed ({result.returncode}) in {cwd} after {elapsed:.0f} s\n"
            f"--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-20000:]}"
        )
    return result, elapsed


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages")) or sorted(venv.glob("Lib/site-packages"))
    assert found, f"no site-packages in {venv}"
    return found[0]


def installed_distributions(venv: Path) -> dict[str, str]:
    """Name -> version of every distribution installed in a venv (from its dist-info)."""
    found = {}
    for info in site_packages(venv).glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def gpu_distributions(venv: Path) -> list[str]:
    return sorted(name for name in installed_distributions(venv) if GPU_DISTRIBUTIONS.match(name))


def folder_size_mib(path: Path) -> float:
    """Apparent size of a folder's files (links not followed), in MiB."""
    total = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 2**20


def pytest_counts(output: str) -> dict[str, int]:
    """Counts from pytest's last summary line: ``{"passed": 12, "skipped": 1}``."""
    lines = [line for line in output.splitlines() if " in " in line and SUMMARY_COUNT.search(line)]
    counts: dict[str, int] = {}
    if not lines:  # "no tests ran", or pytest did not get that far
        return counts
    for number, word in SUMMARY_COUNT.findall(lines[-1]):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def describe_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {word}" for word, n in counts.items()) or "none ran"


def newest_run_metrics(project: Path) -> tuple[Path, list[dict[str, str]]]:
    """The rows of ``metrics.csv`` in the newest run folder under ``runs/``."""
    runs = sorted(
        (p.parent for p in project.glob("runs/*/metrics.csv")), key=lambda p: p.stat().st_mtime
    )
    assert runs, f"no runs/*/metrics.csv under {project}"
    with (runs[-1] / "metrics.csv").open(encoding="utf-8", newline="") as file:
        return runs[-1], list(csv.DictReader(file))


def validation_accuracy(rows: list[dict[str, str]]) -> float:
    """The last epoch's validation accuracy (a ``val_acc...`` column)."""
    assert rows, "metrics.csv has no rows"
    columns = [c for c in rows[-1] if c.startswith("val_acc") or c == "val_accuracy"]
    assert columns, f"no val_acc column in metrics.csv: {list(rows[-1])}"
    values = [row[columns[0]] for row in rows if row.get(columns[0])]
    return float(values[-1])
