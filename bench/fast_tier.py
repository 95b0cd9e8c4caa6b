"""The template's own fast tier (``pytest -m "not e2e"``): wall time and tests."""

from __future__ import annotations

import re
import sys
from typing import Any

from bench.common import ROOT, log, pytest_summary, run

DURATION = re.compile(r"^(\d+(?:\.\d+)?)s (call|setup|teardown)\s+(\S.*)$", re.MULTILINE)


def slowest(output: str) -> list[dict[str, Any]]:
    """pytest's ``--durations`` lines: ``[{"s": 33.0, "when": "call", "test": "..."}]``."""
    return [
        {"s": float(s), "when": when, "test": test.strip()}
        for s, when, test in DURATION.findall(output)
    ]


def measure() -> dict[str, Any]:
    """The fast tier from the repository root: wall time, counts, slowest tests, failures."""
    command = [sys.executable, "-m", "pytest", "-m", "not e2e", "-q", "-p", "no:randomly"]
    # --durations only prints (after the tests); it tells where the time went.
    ran = run([*command, "--durations=10"], cwd=ROOT, timeout=1800)
    summary = pytest_summary(ran.output)
    if ran.returncode != 0:
        failed = [line for line in ran.output.splitlines() if line.startswith(("FAILED", "ERROR"))]
        log(f"the fast tier exited {ran.returncode}:\n" + "\n".join(failed[:60]))
    return {
        "command": command,
        "returncode": ran.returncode,
        "wall_s": ran.wall_s,
        **summary,
        "slowest": slowest(ran.output),
        "failures": [
            line for line in ran.output.splitlines() if line.startswith(("FAILED", "ERROR"))
        ],
    }
