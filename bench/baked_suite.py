"""The baked project's own test suite, and its floor: importing Lightning in the same venv.

Besides the wall times, where the suite's time goes: how long pytest takes to
start and collect (``--collect-only``: the imports of the test modules, among
them Lightning's), and the seconds each test file spends in its tests
(``--durations=0``, setup and teardown included), largest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import (
    describe_tests,
    interleaved,
    log,
    median,
    pytest_summary,
    ratio,
    run,
    seconds,
    tool,
)
from bench.fast_tier import slowest


def measure(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The suite through ``poetry run`` (fast and whole), then its floor in the same venv.

    The floor: ``python -c "import lightning"``, interleaved with the fast suite
    run straight from the venv (``.venv/bin/python -m pytest -m "not slow"``).
    """
    result: dict[str, Any] = {}
    for key, marker in (("not_slow", ["-m", "not slow"]), ("all", [])):
        command = [tool("poetry"), "run", "pytest", *marker, "-q", "-p", "no:randomly"]
        log(f"  poetry run pytest {' '.join(marker)}")
        ran = run(command, cwd=project, env=env, timeout=1800)
        summary = pytest_summary(ran.output)
        log(f"  ... {describe_tests(summary)} in {seconds(ran.wall_s)}")
        if ran.returncode != 0:
            log(f"the baked suite ({key}) exited {ran.returncode}:\n{ran.tail(4000)}")
        result[key] = {"returncode": ran.returncode, "wall_s": ran.wall_s, **summary}
    python = str(project / ".venv" / "bin" / "python")
    commands = {
        "suite": lambda: [python, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:randomly"],
        "import_lightning": lambda: [python, "-c", "import lightning"],
    }
    commands["collect"] = lambda: [python, "-m", "pytest", "-m", "not slow", "-q", "--co"]
    times = interleaved(commands, runs=3, warmup=0, cwd=project, env=env)
    medians = {name: median(values) for name, values in times.items()}
    result["floor"] = {
        "times_s": times,
        "suite_s": medians["suite"],
        "import_lightning_s": medians["import_lightning"],
        "collect_s": medians["collect"],
        "ratio": ratio(medians["suite"], medians["import_lightning"]),
    }
    ran = run([*commands["suite"](), "--durations=0"], cwd=project, env=env, timeout=1800)
    result["floor"]["files_s"] = seconds_per_file(slowest(ran.output))
    log(
        f"  suite {seconds(medians['suite'])} vs import lightning"
        f" {seconds(medians['import_lightning'])}: {result['floor']['ratio']:.2f}x"
    )
    return result


def seconds_per_file(durations: list[dict[str, Any]]) -> dict[str, float]:
    """The seconds of ``--durations`` lines added up per test file, largest first."""
    files: dict[str, float] = {}
    for entry in durations:
        name = entry["test"].split("::", 1)[0]
        files[name] = files.get(name, 0.0) + entry["s"]
    return {name: round(s, 2) for name, s in sorted(files.items(), key=lambda item: -item[1])}
