"""Training: the baked ``Trainer.fit`` beside plain PyTorch doing the same work.

``measure`` alternates, in one run, the CLI's ``fit --config configs/default.yaml``
(``Trainer.fit`` timed inside the process) with three references, all run with
the project's Python on the same data, network, optimiser, batches, epochs,
thread and seed, each reaching the same validation accuracy:

- ``plain``: ``bench/plain_loop.py``, the arithmetic alone (no Lightning, no record);
- ``plain_record``: ``bench/plain_loop.py --record``, the same loop keeping the
  record a ``fit`` keeps (per-epoch training metrics, ``metrics.csv``, last and
  best checkpoints with the optimiser state, the learning-curve PNG);
- ``floor``: ``bench/lightning_floor.py``, the arithmetic under
  ``Trainer(barebones=True)``: Lightning's own loop with every feature off.

The ratios of the medians say what Lightning costs (floor / plain) and what the
template's features cost on top (fit / floor); fit / plain_record is the
headline: the training system against hand-written code doing its work. Then
the console script alone (whole process, peak memory) and once through
``poetry run``.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import ROOT, log, median, ratio, run, run_checked, seconds, test_module, tool

PLAIN_LOOP = ROOT / "bench" / "plain_loop.py"
LIGHTNING_FLOOR = ROOT / "bench" / "lightning_floor.py"
REFERENCES = ("plain", "plain_record", "floor")
"""The references timed beside ``fit``, in the order of the first round."""


# Runs the CLI as `<slug> fit --config configs/default.yaml` does, timing Trainer.fit.
FIT_PROBE = """
import json, sys, time
import lightning.pytorch as pl
spent = []
fit = pl.Trainer.fit
def timed(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return fit(self, *args, **kwargs)
    finally:
        spent.append(time.perf_counter() - started)
pl.Trainer.fit = timed
from {package}.cli import main
main(["fit", "--config", "configs/default.yaml"])
print("BENCH_FIT_S=" + json.dumps(spent))
"""


def validation_accuracy(project: Path, since: float) -> dict[str, Any]:
    """The newest run folder written after ``since``: its final validation accuracy and epochs."""
    steps = test_module("e2e.steps")
    try:
        run_dir, rows = steps.newest_run_metrics(project)
        if run_dir.stat().st_mtime < since:
            return {"val_acc": None}
        return {
            "val_acc": float(steps.validation_accuracy(rows)),
            "epochs": len(rows),
            "run_dir": str(run_dir.relative_to(project)),
        }
    except AssertionError as error:
        log(f"no validation accuracy: {error}")
        return {"val_acc": None}


def measure(project: Path, env: Mapping[str, str], runs: int = 5) -> dict[str, Any]:
    """``fit`` with the default config: ``runs`` timed probes, then the CLI itself once."""
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    answers = answers.get("cookiecutter", answers)
    package, slug = answers["package_name"], answers["project_slug"]
    python = project / ".venv" / "bin" / "python"
    probes: list[dict[str, Any]] = []
    references: dict[str, list[dict[str, Any]]] = {name: [] for name in REFERENCES}
    for number in range(runs):
        turn = number % len(REFERENCES)  # each reference takes each place in turn
        order = [*REFERENCES[turn:], *REFERENCES[:turn]]
        before, after = (order, []) if number % 2 else ([], order)  # fit first, then last
        for name in before:
            references[name].append(reference(name, python, project, env))
        started = time.time()
        ran = run([python, "-c", FIT_PROBE.format(package=package)], cwd=project, env=env)
        if ran.returncode != 0:
            raise RuntimeError(f"fit probe failed ({ran.returncode}):\n{ran.tail()}")
        found = re.search(r"BENCH_FIT_S=(\[.*\])", ran.output)
        fit_s = sum(json.loads(found.group(1))) if found else None
        outcome = validation_accuracy(project, started)
        probes.append(
            {
                "fit_s": fit_s,
                "process_s": ran.wall_s,
                "maxrss_bytes": ran.maxrss_bytes,
                **outcome,
            }
        )
        log(
            f"  fit {number + 1}/{runs}: fit() {seconds(fit_s)}, process {seconds(ran.wall_s)},"
            f" val acc {outcome['val_acc']}"
        )
        for name in after:
            references[name].append(reference(name, python, project, env))
    # The command the docs give, through Poetry, once: what a user waits for.
    started = time.time()
    command = [tool("poetry"), "run", slug, "fit", "--config", "configs/default.yaml"]
    cli = run_checked(command, cwd=project, env=env)
    cli_outcome = validation_accuracy(project, started)
    # The console script alone (no Poetry start-up), with its peak memory.
    started = time.time()
    direct = run_checked(
        [project / ".venv" / "bin" / slug, "fit", "--config", "configs/default.yaml"],
        cwd=project,
        env=env,
    )
    direct_outcome = validation_accuracy(project, started)
    log(f"  poetry run: {seconds(cli.wall_s)}; console script: {seconds(direct.wall_s)}")
    fits = [p["fit_s"] for p in probes if p["fit_s"] is not None]
    accuracies = [p["val_acc"] for p in probes if p["val_acc"] is not None]
    fit_s = median(fits) if fits else None
    medians = {name: median([r["fit_s"] for r in done]) for name, done in references.items()}
    return {
        "runs": runs,
        "probes": probes,
        "references": references,
        "plain_median_s": medians["plain"],
        "plain_record_median_s": medians["plain_record"],
        "floor_median_s": medians["floor"],
        "reference_val_accs": {name: done[-1]["val_acc"] for name, done in references.items()},
        "fit_over_plain": ratio(fit_s, medians["plain"]) if fit_s else None,
        "fit_over_plain_record": ratio(fit_s, medians["plain_record"]) if fit_s else None,
        "floor_over_plain": ratio(medians["floor"], medians["plain"]),
        "fit_over_floor": ratio(fit_s, medians["floor"]) if fit_s else None,
        "fit_median_s": fit_s,
        "val_acc": accuracies[-1] if accuracies else cli_outcome["val_acc"],
        "epochs": probes[-1].get("epochs"),
        "poetry_run_fit_s": cli.wall_s,
        "poetry_run_val_acc": cli_outcome["val_acc"],
        "cli_val_acc": direct_outcome["val_acc"],
        "cli_process_s": direct.wall_s,
        "cli_maxrss_bytes": direct.maxrss_bytes,
    }


def reference(name: str, python: Path, project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """One run of a reference (``REFERENCES``) with the project's Python: its JSON line."""
    with tempfile.TemporaryDirectory(prefix="bench-plain-record-") as record:
        commands: dict[str, list[str | Path]] = {
            "plain": [python, PLAIN_LOOP],
            "plain_record": [python, PLAIN_LOOP, "--record", record],
            "floor": [python, LIGHTNING_FLOOR],
        }
        command = commands[name]
        ran = run_checked(command, cwd=project, env=env)
    result: dict[str, Any] = json.loads(ran.output.strip().splitlines()[-1])
    log(f"  {name}: {seconds(result['fit_s'])}, val acc {result['val_acc']:.4f}")
    return result
