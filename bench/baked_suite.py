"""The baked project's own test suite, and its floor: importing Lightning in the same venv."""

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
    times = interleaved(commands, runs=3, warmup=0, cwd=project, env=env)
    medians = {name: median(values) for name, values in times.items()}
    result["floor"] = {
        "times_s": times,
        "suite_s": medians["suite"],
        "import_lightning_s": medians["import_lightning"],
        "ratio": ratio(medians["suite"], medians["import_lightning"]),
    }
    log(
        f"  suite {seconds(medians['suite'])} vs import lightning"
        f" {seconds(medians['import_lightning'])}: {result['floor']['ratio']:.2f}x"
    )
    return result
