"""Benchmark of ``tune``: a 16-trial study of the default search on digits.

    .venv/bin/python bench/search.py PROJECT     # a baked, Poetry-installed project

Runs, in a baked project (its ``.venv/bin/<slug>``; without one, this Python
with ``PROJECT/src`` on the path), the default search (``configs/search.yaml``)
over ``configs/default.yaml`` with 1 and with 2 worker processes sharing the
study's journal file, and one ``fit`` of the default config. Reports the wall
time and trials per minute of each, their ratio, and the best ``val_loss``
found against the default config's. Run folders go to a temporary folder.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TRIALS = 16
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def command(project: Path, env: dict[str, str]) -> list[str]:
    """How to start the project's CLI (its console script when installed)."""
    package = next(p.name for p in (project / "src").iterdir() if (p / "cli.py").is_file())
    slug = package.replace("_", "-")
    script = project / ".venv" / "bin" / slug
    if script.is_file():
        return [str(script)]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project / "src"), env.get("PYTHONPATH")]))
    return [sys.executable, "-m", package]


def tune_wall(
    cli: Sequence[str], project: Path, env: Mapping[str, str], root: Path, workers: int
) -> tuple[float, list[dict[str, str]]]:
    """Seconds for ``workers`` processes to finish the study; its trials.csv rows."""
    name = f"bench{workers}"
    words = [*cli, "tune", "--config", "configs/default.yaml", *QUIET, f"--run.root={root}"]
    words += ["--study", name, "--trials", str(TRIALS)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            words,
            cwd=project,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(workers)
    ]
    errors = [proc.communicate()[1] for proc in procs]
    wall = time.perf_counter() - started
    if any(proc.returncode for proc in procs):
        raise RuntimeError("tune failed:\n" + "\n".join(e[-2000:] for e in errors))
    (folder,) = root.glob(f"*_tune_{name}")
    with (folder / "trials.csv").open(newline="", encoding="utf-8") as file:
        return wall, list(csv.DictReader(file))


def best(rows: Sequence[Mapping[str, str]]) -> float | None:
    values = [float(row["value"]) for row in rows if row.get("value")]
    return min(values) if values else None


def measure(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The figures of a 16-trial study with 1 and 2 workers, and the default fit."""
    environment = dict(env)
    cli = command(project, environment)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as scratch:
        root = Path(scratch)
        fit = [*cli, "fit", "--config", "configs/default.yaml", *QUIET]
        subprocess.run(
            [*fit, f"--run.root={root}", "--run.name=default"],
            cwd=project,
            env=environment,
            check=True,
            capture_output=True,
        )
        (default_run,) = root.glob("*_fit_default")
        with (default_run / "metrics.csv").open(newline="", encoding="utf-8") as file:
            losses = [float(r["val_loss"]) for r in csv.DictReader(file) if r.get("val_loss")]
        one_s, one = tune_wall(cli, project, environment, root, 1)
        two_s, two = tune_wall(cli, project, environment, root, 2)
    states = {
        str(workers): sorted({row["state"] for row in rows})
        for workers, rows in ((1, one), (2, two))
    }
    return {
        "trials": TRIALS,
        "wall_s_1_worker": round(one_s, 1),
        "wall_s_2_workers": round(two_s, 1),
        "trials_per_min_1_worker": round(len(one) / one_s * 60, 1),
        "trials_per_min_2_workers": round(len(two) / two_s * 60, 1),
        "speedup_2_over_1": round(one_s / two_s, 2),
        "trials_run": {"1": len(one), "2": len(two)},
        "trial_states": states,
        "pruned": {
            "1": sum(r["state"] == "PRUNED" for r in one),
            "2": sum(r["state"] == "PRUNED" for r in two),
        },
        "best_val_loss_1_worker": best(one),
        "best_val_loss_2_workers": best(two),
        "default_config_val_loss": min(losses) if losses else None,
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]).resolve(), os.environ), indent=2))
