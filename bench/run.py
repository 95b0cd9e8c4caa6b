"""Benchmarks of the template: bake speed (beside other templates), its test tiers,
and a baked project's life (Poetry, its test suite, training, and any other part).

    .venv/bin/python bench/run.py                # everything except the CUDA torch install
    .venv/bin/python bench/run.py --quick        # bakes and the fast tier only (no Poetry)
    .venv/bin/python bench/run.py --peers DIR... # also bake other templates' checkouts
    .venv/bin/python bench/run.py --skip training --json out.json

The one entry point of the ``bench`` package (see bench/README.md for its
layout). Progress goes to stderr; a Markdown table to stdout and the figures
to ``bench/results/bench-<time>.json`` (or ``--json PATH``). These are
benchmarks, never assertions: each target prints PASS, MISS or SKIP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the package importable
    sys.path.insert(0, str(ROOT))

from bench import bakes, fast_tier, parts, project, report  # noqa: E402
from bench.common import DROPPED_ENV, log  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
PART_NAMES = {part.name for part in parts.PARTS}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the Poetry part (lock, install, baked suite, training)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=7,
        help="whole-process bakes (and floors) to take the median of (default 7)",
    )
    parser.add_argument(
        "--fit-runs",
        type=int,
        default=5,
        help="timed training runs (and of each reference) to take the median of (default 5)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the JSON (default bench/results/bench-<time>.json)",
    )
    parser.add_argument(
        "--cuda-torch",
        action="store_true",
        help="also lock and install the registry's torch (CUDA: ~3.5 GB, 5.6 GB venv)",
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="lock and install once, with a cold Poetry cache only",
    )
    parser.add_argument(
        "--peers",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        metavar="DIR",
        help="other templates' checkouts to bake beside ours (interleaved, same run)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (bakes, the installed project) for profiling",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["bake", "in-process", "fast-tier", "project", "downloads"]
        + [part.name.replace("_", "-") for part in parts.PARTS],
        help="leave out one part (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.fit_runs < 1:
        parser.error("--runs and --fit-runs must be at least 1")
    if args.quick:
        args.skip.append("project")
    args.skip = [
        name.replace("-", "_") if name.replace("-", "_") in PART_NAMES else name
        for name in args.skip
    ]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    shown = " ".join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    results: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "command": shown,
        "machine": report.machine(),
        "load_before": report.load(),
    }
    # Measure what a user's machine does: Python writes bytecode. (Some CI
    # machines forbid it, which makes every import of torch and Lightning in
    # a fresh venv compile them again, seconds each time.)
    results["env_dropped"] = [n for n in DROPPED_ENV if os.environ.pop(n, None) is not None]
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        results["bake"] = {}
        if "bake" not in args.skip:
            log(f"whole-process bake vs import floor, {args.runs} runs each, interleaved")
            results["bake"]["process"] = bakes.measure_process(args.runs, work, peers=args.peers)
        if "in-process" not in args.skip:
            combos = bakes.option_combinations()
            log(f"in-process bakes: {len(combos)} option combinations")
            results["bake"]["in_process"] = bakes.measure_in_process(combos, work)
        if "fast-tier" not in args.skip:
            log('the fast tier: pytest -m "not e2e"')
            results["fast_tier"] = fast_tier.measure()
        if "project" not in args.skip:
            results["project"] = {}
            try:
                project.measure(
                    work,
                    results["project"],
                    parts.selected(args),
                    warm=not args.no_warm,
                    keep=args.keep,
                    cuda_torch=args.cuda_torch,
                    downloads="downloads" not in args.skip,
                )
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                log(f"the project part failed: {error}")
                results.setdefault("errors", []).append(f"project: {error}")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = report.load()
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.evaluate(results)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    path = report.write_json(results, args.json or RESULTS_DIR / f"bench-{stamp}.json")
    print(report.table(results, parts.table_rows()))
    print(f"\nwall time {results['wall_s']:.0f} s; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
