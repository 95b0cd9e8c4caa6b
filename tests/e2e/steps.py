"""Helpers shared by the end-to-end tests: running commands, reading results."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import subprocess
import sys
import time
import uuid
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


# Set in the environment of every command run_tracked starts: its descendants
# inherit it, even those that start a session of their own or daemonise.
RUN_MARKER = "COOKIECUTTER_POETRY_ML_TEST_RUN"


def marked_processes(marker: str) -> dict[int, str]:
    """pid -> command line of every process whose environment holds ``marker``.

    Linux only (``/proc``); elsewhere an empty dict.
    """
    proc = Path("/proc")
    if not sys.platform.startswith("linux") or not proc.is_dir():
        return {}
    wanted = f"{RUN_MARKER}={marker}".encode()
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":  # a zombie has ended; its parent only has to reap it
            found[int(entry.name)] = command.decode(errors="replace")
    return found


def stop_marked(marker: str, grace: float) -> dict[int, str]:
    """Wait up to ``grace`` s for the marked processes to end; kill the rest, return them."""
    deadline = time.monotonic() + grace
    left = marked_processes(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = marked_processes(marker)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left


def run_tracked(
    command: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str],
    *,
    check: bool = True,
    timeout: float = 600,
    grace: float = 10,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """:func:`run`, then fail if any process it started is still there.

    Every descendant carries a marker in its environment (even one that starts
    a session of its own); those still alive ``grace`` seconds after the
    command ended, timed out or failed are killed, and named in the assertion.
    A baked project's tests must leave nothing running.
    """
    marker = uuid.uuid4().hex
    try:
        outcome = run(command, cwd, {**env, RUN_MARKER: marker}, check=check, timeout=timeout)
    except BaseException as error:
        # A process left holding the output pipe makes the command time out.
        if left := stop_marked(marker, grace):
            raise AssertionError(_left_running(left)) from error
        raise
    left = stop_marked(marker, grace)
    assert not left, _left_running(left)
    return outcome


def _left_running(left: Mapping[int, str]) -> str:
    return "processes left running (now killed):\n" + "\n".join(
        f"  {pid}: {line[:200]}" for pid, line in sorted(left.items())
    )


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
