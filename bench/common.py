"""What every part of the benchmark shares: running and timing commands, small maths.

Nothing here measures anything by itself; the parts (``bakes``, ``fast_tier``,
``project``, ``training``, ...) use these helpers, and so may any new part.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The template repository's root."""
TESTS = ROOT / "tests"

GB = 1e9
MB = 1e6

# Environment variables the benchmark removes for everything it runs.
DROPPED_ENV = ("PYTHONDONTWRITEBYTECODE",)

SUMMARY_TIME = re.compile(r" in (\d+(?:\.\d+)?)s\b")
SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


def log(message: str) -> None:
    """Progress, on stderr (stdout holds only the final table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of nothing")
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0:
        raise ValueError(f"ratio over {denominator}")
    return numerator / denominator


def pytest_summary(output: str) -> dict[str, Any]:
    """Counts and duration from pytest's last summary line.

    ``"150 passed, 2 skipped in 25.31s"`` -> ``{"passed": 150, "skipped": 2,
    "pytest_s": 25.31}``; ``{}`` when there is no summary line.
    """
    lines = [line for line in output.splitlines() if SUMMARY_TIME.search(line)]
    lines = [line for line in lines if SUMMARY_COUNT.search(line) or "no tests ran" in line]
    if not lines:
        return {}
    last = lines[-1]
    summary: dict[str, Any] = {}
    for number, word in SUMMARY_COUNT.findall(last):
        key = "errors" if word.startswith("error") else word
        summary[key] = summary.get(key, 0) + int(number)
    found = SUMMARY_TIME.search(last)
    if found:
        summary["pytest_s"] = float(found.group(1))
    return summary


def tests_run(summary: Mapping[str, Any]) -> int:
    """Tests that ran and passed (what a count target counts)."""
    return int(summary.get("passed", 0)) + int(summary.get("xfailed", 0))


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (apparent size, hard links once, links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for item in path.rglob("*"):
        if item.is_symlink() or not item.is_file():
            continue
        info = item.lstat()
        key = (info.st_dev, info.st_ino)
        if key not in seen:
            seen.add(key)
            total += info.st_size
    return total


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 1 else f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def describe_tests(summary: Mapping[str, Any]) -> str:
    words = [
        f"{summary[k]} {k}" for k in ("passed", "failed", "errors", "skipped") if summary.get(k)
    ]
    return ", ".join(words) or "no tests"


@dataclass
class Ran:
    """A finished command: exit status, wall time, peak memory, output."""

    returncode: int
    wall_s: float
    maxrss_bytes: int | None
    output: str

    def tail(self, chars: int = 3000) -> str:
        return self.output[-chars:]


def run(
    command: Sequence[str | Path],
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> Ran:
    """Run ``command``; time it and (on POSIX) read the child's own peak memory.

    Output (stdout and stderr together) goes through a file, so the child can
    never block on a pipe, and ``os.wait4`` gives the resources of this child
    alone (``RUSAGE_CHILDREN`` would be the maximum over every child so far).
    """
    with tempfile.TemporaryFile("w+b") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        maxrss: int | None = None
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            process.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(process.pid, 0)
                wall = time.perf_counter() - started
                process.returncode = os.waitstatus_to_exitcode(status)
                maxrss = usage.ru_maxrss * 1024  # KiB on Linux
            else:  # pragma: no cover - Windows
                process.wait()
                wall = time.perf_counter() - started
        except BaseException:
            if process.returncode is None:
                process.kill()
                process.wait()
            raise
        finally:
            timer.cancel()
        if expired:
            raise subprocess.TimeoutExpired(process.args, timeout)
        sink.seek(0)
        output = sink.read().decode("utf-8", errors="replace")
    return Ran(int(process.returncode), wall, maxrss, output)


def run_checked(command: Sequence[str | Path], **kwargs: Any) -> Ran:
    ran = run(command, **kwargs)
    if ran.returncode != 0:
        shown = " ".join(str(part) for part in command)
        raise RuntimeError(f"{shown} failed ({ran.returncode}):\n{ran.tail()}")
    return ran


def tool(name: str) -> str:
    """A console script of the template's venv: the test harness's own lookup."""
    return str(test_module("harness").tool(name))


def test_module(name: str) -> Any:
    """A helper module of the template's tests (``harness``, ``e2e.local_index``, ...)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return importlib.import_module(name)


@contextlib.contextmanager
def cookiecutter_config(folder: Path) -> Iterator[Path]:
    """A cookiecutter config file keeping replays and clones out of the user's home."""
    config = folder / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(folder / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(folder / 'replay'))}\n",
        encoding="utf-8",
    )
    yield config


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1: the hooks' "next steps" must not reach the table.

    Their stderr (warnings) still shows; a failing hook raises anyway.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def interleaved(
    commands: Mapping[str, Callable[[], Sequence[str | Path]]],
    runs: int,
    warmup: int = 1,
    **options: Any,
) -> dict[str, list[float]]:
    """Wall times of each command, run in turn ``runs`` times after ``warmup`` rounds.

    Each factory makes the command line for one run (e.g. with a fresh output
    folder). The order alternates every round, so a drift in the machine's
    load falls on every command alike.
    """
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + runs):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            ran = run_checked(commands[name](), **options)
            if round_ >= warmup:
                times[name].append(ran.wall_s)
    return times
