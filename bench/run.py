"""Benchmarks of the template: bake speed, its test tiers, and a baked project's life.

    .venv/bin/python bench/run.py                # everything except the CUDA torch install
    .venv/bin/python bench/run.py --quick        # bakes and the fast tier only (no Poetry)
    .venv/bin/python bench/run.py --cuda-torch   # also the registry's CUDA torch (~3.5 GB)
    .venv/bin/python bench/run.py --runs 11 --json out.json

Run it with the template's venv (it imports cookiecutter, and the end-to-end
tier's helpers from ``tests/e2e`` for the Poetry part). Progress goes to
stderr; a Markdown table goes to stdout and the figures to
``bench/results/bench-<time>.json`` (or ``--json PATH``). What it measures:

1. whole-process bake with every default (the ``cookiecutter`` executable)
   against ``python -c "import cookiecutter.main"`` (the floor), interleaved,
   median of ``--runs`` each, as a ratio;
2. in-process bakes (cookiecutter's API) over the pairwise option set of
   ``tests/test_options.py`` plus the defaults: median and max per bake;
3. the template's fast tier (``pytest -m "not e2e"``): wall time and tests;
4. for the default bake, through the local PyTorch index and the ``mirror``
   option, as the end-to-end tier does: ``poetry lock`` and ``poetry install``
   with a cold and then a warm Poetry cache, the ``.venv`` size, the baked
   test suite with and without ``-m "not slow"``, and the training CLI's
   ``fit``: ``Trainer.fit`` time, whole process, validation accuracy, peak
   memory. ``--cuda-torch`` adds a bake whose torch is a plain dependency
   from the registry (its CUDA build): a multi-GB download, off by default.

These are benchmarks, never assertions: the targets below print PASS or MISS.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
RESULTS_DIR = ROOT / "bench" / "results"

GB = 1e9
MB = 1e6

# (key, what, limit): checked by :func:`evaluate`.
TARGETS = {
    "bake_ratio": "bake <= 1.4x the floor",
    "fast_tier": "fast tier >= 150 tests in <= 30 s",
    "baked_suite": 'baked suite (-m "not slow") >= 15 tests in <= 20 s',
    "fit": "fit() <= 5 s reaching val acc >= 0.95",
    "venv": "CPU .venv <= 1.5 GB",
}
BAKE_RATIO_MAX = 1.4
FAST_TIER_MIN_TESTS, FAST_TIER_MAX_S = 150, 30.0
BAKED_SUITE_MIN_TESTS, BAKED_SUITE_MAX_S = 15, 20.0
FIT_MAX_S, FIT_MIN_ACC = 5.0, 0.95
VENV_MAX_BYTES = 1.5 * GB

# Environment variables the benchmark removes for everything it runs.
DROPPED_ENV = ("PYTHONDONTWRITEBYTECODE",)

SUMMARY_TIME = re.compile(r" in (\d+(?:\.\d+)?)s\b")
SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


# --- small pure helpers ---------------------------------------------------------


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


# --- running commands -----------------------------------------------------------


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


# --- 1. whole-process bake against the import floor ----------------------------


def interleaved(
    commands: Mapping[str, Callable[[], Sequence[str | Path]]], runs: int, warmup: int = 1
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
            ran = run_checked(commands[name]())
            if round_ >= warmup:
                times[name].append(ran.wall_s)
    return times


def bench_bake_process(runs: int, work: Path, warmup: int = 1) -> dict[str, Any]:
    """The default bake's whole process against the import floor, and where the gap goes.

    Five commands, interleaved: the floor (``import cookiecutter.main``), the
    import of cookiecutter's command line (what its executable loads), a bake
    with ``--accept-hooks no`` (rendering without the hooks), the real bake,
    and the same bake from a copy of the template whose compile cache
    (``template_cache.py``) is emptied before each run: the first bake after a
    fresh clone. The ratio is bake / floor; the others split the difference.
    """
    cookiecutter = tool("cookiecutter")
    counter = iter(range(10**6))
    fresh = work / "fresh-clone"
    shutil.copytree(
        ROOT,
        fresh,
        ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "bench", "node_modules"),
    )

    with cookiecutter_config(work) as config:

        def baking(*extra: str, template: Path = ROOT) -> Callable[[], list[str]]:
            def command() -> list[str]:
                out = work / f"bake-{next(counter)}"
                out.mkdir()
                if template == fresh:
                    shutil.rmtree(fresh / ".cache", ignore_errors=True)
                flags = ["--no-input", "--config-file", str(config), *extra]
                return [cookiecutter, *flags, "-o", str(out), str(template)]

            return command

        def importing(module: str) -> Callable[[], list[str]]:
            return lambda: [sys.executable, "-c", f"import {module}"]

        commands = {
            "bake": baking(),
            "floor": importing("cookiecutter.main"),
            "cli_import": importing("cookiecutter.cli"),
            "bake_no_hooks": baking("--accept-hooks", "no"),
            "bake_empty_cache": baking(template=fresh),
        }
        times = interleaved(commands, runs, warmup)
    medians = {name: median(values) for name, values in times.items()}
    return {
        "runs": runs,
        "times_s": times,
        "medians_s": medians,
        "bake_median_s": medians["bake"],
        "floor_median_s": medians["floor"],
        "ratio": ratio(medians["bake"], medians["floor"]),
        "empty_cache_ratio": ratio(medians["bake_empty_cache"], medians["floor"]),
    }


# --- 2. in-process bakes over the option combinations --------------------------


def option_combinations() -> list[dict[str, str]]:
    """The defaults, then the pairwise set the fast tier bakes (without repeating the defaults)."""
    try:
        pairwise = list(test_module("test_options").PAIRWISE)
    except Exception as error:  # the test module moved or broke: rebuild the same set
        log(f"tests/test_options.py gave no PAIRWISE ({error!r}); computing it here")
        harness, pairs = test_module("harness"), test_module("pairwise")
        hook_only = {"init_git", "poetry_lock"}
        options = {k: v for k, v in harness.choices().items() if k not in hook_only}
        pairwise = pairs.all_pairs(options)
    defaults = test_module("harness").defaults()
    rest = [dict(c) for c in pairwise if any(defaults.get(k) != v for k, v in c.items())]
    return [{}, *rest]


def bake(options: Mapping[str, str], out: Path, config: Path) -> Path:
    """Bake the template in this process (cookiecutter's API), without questions."""
    from cookiecutter.main import cookiecutter  # type: ignore[import-untyped]

    return Path(
        cookiecutter(
            str(ROOT),
            no_input=True,
            extra_context=dict(options),
            output_dir=str(out),
            config_file=str(config),
        )
    )


def bench_bake_inprocess(
    combinations: Sequence[Mapping[str, str]], work: Path, warmup: bool = True
) -> dict[str, Any]:
    """One in-process bake per combination (after an untimed warm-up bake)."""
    times: list[float] = []
    with cookiecutter_config(work) as config, quiet_stdout():
        bakes: list[tuple[Mapping[str, str], bool]] = [({}, False)] if warmup else []
        bakes += [(options, True) for options in combinations]
        for number, (options, timed) in enumerate(bakes):
            out = work / f"inproc-{number}"
            out.mkdir()
            started = time.perf_counter()
            bake(options, out, config)
            if timed:
                times.append(time.perf_counter() - started)
            shutil.rmtree(out, ignore_errors=True)
    slowest = max(range(len(times)), key=times.__getitem__)
    return {
        "combinations": len(times),
        "median_s": median(times),
        "max_s": times[slowest],
        "max_options": dict(combinations[slowest]),
        "times_s": times,
    }


# --- 3. the template's fast tier -----------------------------------------------


DURATION = re.compile(r"^(\d+(?:\.\d+)?)s (call|setup|teardown)\s+(\S.*)$", re.MULTILINE)


def slowest(output: str) -> list[dict[str, Any]]:
    """pytest's ``--durations`` lines: ``[{"s": 33.0, "when": "call", "test": "..."}]``."""
    return [
        {"s": float(s), "when": when, "test": test.strip()}
        for s, when, test in DURATION.findall(output)
    ]


def bench_fast_tier() -> dict[str, Any]:
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


# --- 4. a baked project: Poetry, its test suite, training -----------------------


@dataclass
class Local:
    """The local PyTorch index and Poetry's environment, from the end-to-end tier."""

    index: Any
    env: dict[str, str]
    mirror: str


def mirror_url() -> str:
    """The public index's simple URL, as pip knows it (never written into a file)."""
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def _plain(function: Any) -> Any:
    """A pytest fixture's own function (``__wrapped__``), to call outside pytest."""
    return getattr(function, "__wrapped__", function)


@contextlib.contextmanager
def local_setup(work: Path, cache: Path) -> Iterator[Local]:
    """Serve the CPU torch wheel on 127.0.0.1 and give Poetry an isolated environment.

    Reuses the end-to-end tier's helpers (``tests/e2e``); Poetry's cache is
    ``cache``, private to this run.
    """
    e2e = test_module("e2e.conftest")
    local_index = test_module("e2e.local_index")
    torch_version = version("torch")
    if "+cpu" not in torch_version:
        raise RuntimeError(f"the template venv's torch is {torch_version}, not a CPU build")
    wheels = work / "wheels"
    try:
        wheel = e2e.download_wheel(f"torch=={torch_version}", wheels)
    except RuntimeError:
        pytorch_cpu = test_module("harness").COOKIECUTTER_JSON["_pytorch_index_base"] + "/cpu"
        wheel = e2e.download_wheel(
            f"torch=={torch_version}", wheels, "--extra-index-url", pytorch_cpu
        )
    index = local_index.LocalIndex(work / "index", e2e.CHANNELS)
    index.add([wheel])
    make_env = getattr(e2e, "poetry_environment", None) or _plain(e2e.poetry_env)
    env = {k: v for k, v in make_env(work).items() if k not in DROPPED_ENV}
    env["POETRY_CACHE_DIR"] = str(cache)
    try:
        yield Local(index, env, mirror_url())
    finally:
        index.stop()


def bake_project(work: Path, name: str, options: Mapping[str, str]) -> Path:
    out = work / name
    out.mkdir()
    with cookiecutter_config(work) as config, quiet_stdout():
        return bake(options, out, config)


def plain_torch(project: Path) -> None:
    """Make torch a plain dependency: drop the PyTorch source rules of ``pyproject.toml``.

    The mirror then serves the registry's torch, which is its CUDA build on Linux.
    """
    path = project / "pyproject.toml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.strip() == "[tool.poetry.dependencies]":
            skipping = True
            continue
        if skipping and (line.startswith("[") or line.startswith("#")):
            skipping = False
        if not skipping:
            kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")


def poetry(project: Path, env: Mapping[str, str], *args: str, timeout: float = 1800) -> Ran:
    log(f"  poetry {' '.join(args)}")
    ran = run_checked([tool("poetry"), *args], cwd=project, env=env, timeout=timeout)
    log(f"  ... {seconds(ran.wall_s)}")
    return ran


def bench_poetry(project: Path, env: Mapping[str, str], warm: bool, result: dict[str, Any]) -> None:
    """``poetry lock`` and ``poetry install`` with a cold cache, then (``warm``) again."""
    result["lock_cold_s"] = poetry(project, env, "lock").wall_s
    result["install_cold_s"] = poetry(project, env, "install").wall_s
    if warm:
        (project / "poetry.lock").unlink()
        result["lock_warm_s"] = poetry(project, env, "lock").wall_s
        shutil.rmtree(project / ".venv")
        result["install_warm_s"] = poetry(project, env, "install").wall_s
    venv = project / ".venv"
    result["venv_bytes"] = tree_size(venv)
    steps = test_module("e2e.steps")
    dists = steps.installed_distributions(venv)
    result["torch"] = dists.get("torch")
    result["gpu_distributions"] = steps.gpu_distributions(venv)


def bench_baked_suite(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
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
    return result


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


def bench_training(project: Path, env: Mapping[str, str], runs: int) -> dict[str, Any]:
    """``fit`` with the default config: ``runs`` timed probes, then the CLI itself once."""
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    answers = answers.get("cookiecutter", answers)
    package, slug = answers["package_name"], answers["project_slug"]
    python = project / ".venv" / "bin" / "python"
    probes: list[dict[str, Any]] = []
    for number in range(runs):
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
    return {
        "runs": runs,
        "probes": probes,
        "fit_median_s": median(fits) if fits else None,
        "val_acc": accuracies[-1] if accuracies else cli_outcome["val_acc"],
        "epochs": probes[-1].get("epochs"),
        "poetry_run_fit_s": cli.wall_s,
        "poetry_run_val_acc": cli_outcome["val_acc"],
        "cli_val_acc": direct_outcome["val_acc"],
        "cli_process_s": direct.wall_s,
        "cli_maxrss_bytes": direct.maxrss_bytes,
    }


def bench_imports(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``import <package>.cli`` in the fresh venv: the first time (writing bytecode), then again.

    ``poetry install`` compiles no bytecode, so the first command after it pays
    for compiling torch and Lightning once.
    """
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    package = answers.get("cookiecutter", answers)["package_name"]
    python = project / ".venv" / "bin" / "python"
    times = []
    for _ in range(3):
        times.append(run_checked([python, "-c", f"import {package}.cli"], cwd=project, env=env))
    result = {"first_s": times[0].wall_s, "warm_s": median([t.wall_s for t in times[1:]])}
    log(
        f"  import {package}.cli: first {seconds(result['first_s'])},"
        f" then {seconds(result['warm_s'])}"
    )
    return result


def bench_project(work: Path, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The default bake's whole life with Poetry (and, with ``--cuda-torch``, the CUDA one).

    Fills ``result`` as it goes, so a failing step keeps what came before.
    """
    cache = work / "poetry-cache"
    with local_setup(work, cache) as local:
        options = {"package_index_url": local.mirror, "_pytorch_index_base": local.index.base}
        log("default bake, CPU torch from the local index, the rest through the mirror")
        project = bake_project(work, "cpu", options)
        result["cpu"] = {}
        bench_poetry(project, local.env, not args.no_warm, result["cpu"])
        result["imports"] = bench_imports(project, local.env)
        log("the baked test suite")
        result["baked_suite"] = bench_baked_suite(project, local.env)
        log("training: fit with configs/default.yaml")
        result["training"] = bench_training(project, local.env, args.fit_runs)
        if not args.keep:
            shutil.rmtree(project.parent, ignore_errors=True)
        if args.cuda_torch:
            log("plain torch from the registry (CUDA build; several GB)")
            project = bake_project(work, "cuda", options)
            plain_torch(project)
            result["cuda"] = {}
            bench_poetry(project, local.env, False, result["cuda"])
            shutil.rmtree(project.parent, ignore_errors=True)


# --- targets, table, machine ---------------------------------------------------


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def verdict(ok: bool | None) -> str:
    return "SKIP" if ok is None else "PASS" if ok else "MISS"


def suite_verdict(run: Mapping[str, Any] | None, min_tests: int, max_s: float) -> dict[str, str]:
    """A test run's target: it passed, ran at least ``min_tests``, within ``max_s``."""
    if not run:
        return {"value": "-", "status": "SKIP"}
    ok = run.get("returncode") == 0 and tests_run(run) >= min_tests and run["wall_s"] <= max_s
    return {"value": f"{describe_tests(run)} in {seconds(run['wall_s'])}", "status": verdict(ok)}


def evaluate(results: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Each target's measured value and PASS, MISS or SKIP (not measured)."""
    out: dict[str, dict[str, str]] = {}
    bake = _get(results, "bake", "process", "ratio")
    out["bake_ratio"] = {
        "value": "-" if bake is None else f"{bake:.2f}x",
        "status": verdict(None if bake is None else bake <= BAKE_RATIO_MAX),
    }
    out["fast_tier"] = suite_verdict(
        _get(results, "fast_tier"), FAST_TIER_MIN_TESTS, FAST_TIER_MAX_S
    )
    out["baked_suite"] = suite_verdict(
        _get(results, "project", "baked_suite", "not_slow"),
        BAKED_SUITE_MIN_TESTS,
        BAKED_SUITE_MAX_S,
    )
    training = _get(results, "project", "training")
    if training and training.get("fit_median_s") is not None:
        fit_s, accuracy = training["fit_median_s"], training.get("val_acc")
        ok = fit_s <= FIT_MAX_S and accuracy is not None and accuracy >= FIT_MIN_ACC
        shown = "-" if accuracy is None else f"{accuracy:.4f}"
        out["fit"] = {"value": f"{seconds(fit_s)}, val acc {shown}", "status": verdict(ok)}
    else:
        out["fit"] = {"value": "-", "status": "SKIP"}
    venv = _get(results, "project", "cpu", "venv_bytes")
    out["venv"] = {
        "value": "-" if venv is None else f"{venv / GB:.2f} GB",
        "status": verdict(None if venv is None else venv <= VENV_MAX_BYTES),
    }
    return out


def table(results: Mapping[str, Any]) -> str:
    """The results as a Markdown table: measurements, then targets with PASS/MISS."""
    rows: list[tuple[str, str]] = []
    process = _get(results, "bake", "process")
    if process:
        n = process["runs"]
        rows += [
            (
                f"bake with defaults, whole process (median of {n})",
                seconds(process["bake_median_s"]),
            ),
            (
                f'`python -c "import cookiecutter.main"` (floor, median of {n})',
                seconds(process["floor_median_s"]),
            ),
            ("bake / floor", f"{process['ratio']:.2f}x"),
        ]
        if "empty_cache_ratio" in process:
            rows.append(
                (
                    "first bake of a fresh clone (empty compile cache) / floor",
                    f"{seconds(process['medians_s']['bake_empty_cache'])},"
                    f" {process['empty_cache_ratio']:.2f}x",
                )
            )
        medians = process.get("medians_s", {})
        if "cli_import" in medians and "bake_no_hooks" in medians:
            floor = medians["floor"]
            rows.append(
                (
                    "gap to the floor: cookiecutter's CLI imports / rendering / hooks",
                    f"{seconds(medians['cli_import'] - floor)}"
                    f" / {seconds(medians['bake_no_hooks'] - medians['cli_import'])}"
                    f" / {seconds(medians['bake'] - medians['bake_no_hooks'])}",
                )
            )
    inproc = _get(results, "bake", "in_process")
    if inproc:
        slow = ",".join(f"{k}={v}" for k, v in sorted(inproc["max_options"].items())) or "defaults"
        rows.append(
            (
                f"in-process bake, {inproc['combinations']} option combinations",
                f"median {seconds(inproc['median_s'])}, max {seconds(inproc['max_s'])} ({slow})",
            )
        )
    fast = _get(results, "fast_tier")
    if fast:
        rows.append(
            (
                'fast tier (`pytest -m "not e2e"`)',
                f"{describe_tests(fast)} in {seconds(fast['wall_s'])} (pytest:"
                f" {seconds(fast.get('pytest_s'))})",
            )
        )
        for entry in fast.get("slowest", [])[:3]:
            rows.append(("fast tier: a slowest test", f"{seconds(entry['s'])} `{entry['test']}`"))
    for variant, label in (("cpu", "CPU torch (local index)"), ("cuda", "registry torch (CUDA)")):
        data = _get(results, "project", variant)
        if not data:
            continue
        lock = seconds(data["lock_cold_s"])
        install = seconds(data["install_cold_s"])
        if "lock_warm_s" in data:
            lock += f" / warm {seconds(data['lock_warm_s'])}"
            install += f" / warm {seconds(data['install_warm_s'])}"
        rows += [
            (f"`poetry lock`, {label}, cold cache", lock),
            (f"`poetry install`, {label}, cold cache", install),
            (
                f"`.venv`, {label}",
                f"{data['venv_bytes'] / GB:.2f} GB (torch {data['torch']},"
                f" {len(data['gpu_distributions'])} GPU packages)",
            ),
        ]
    imports = _get(results, "project", "imports")
    if imports:
        rows.append(
            (
                "`import <package>.cli` in the new venv: first (writes bytecode) / then",
                f"{seconds(imports['first_s'])} / {seconds(imports['warm_s'])}",
            )
        )
    suite = _get(results, "project", "baked_suite")
    if suite:
        for key, label in (
            ("not_slow", '`poetry run pytest -m "not slow"`'),
            ("all", "`poetry run pytest` (with slow)"),
        ):
            data = suite[key]
            rows.append(
                (
                    f"baked suite: {label}",
                    f"{describe_tests(data)} in {seconds(data['wall_s'])}"
                    f" (pytest: {seconds(data.get('pytest_s'))})",
                )
            )
    training = _get(results, "project", "training")
    if training:
        acc = training.get("val_acc")
        rss = training.get("cli_maxrss_bytes")
        rows += [
            (
                f"`fit()` with configs/default.yaml (median of {training['runs']})",
                f"{seconds(training['fit_median_s'])}, val acc"
                f" {'-' if acc is None else f'{acc:.4f}'}"
                + (f" after {training['epochs']} epochs" if training.get("epochs") else ""),
            ),
            ("training CLI, whole process (console script)", seconds(training["cli_process_s"])),
            ("training CLI through `poetry run`", seconds(training["poetry_run_fit_s"])),
            ("training CLI, peak memory (max RSS)", "-" if rss is None else f"{rss / MB:.0f} MB"),
        ]
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    verdicts = results.get("targets") or evaluate(results)
    lines += ["", "| target (2 cores) | measured | status |", "| --- | --- | --- |"]
    for key, description in TARGETS.items():
        data = verdicts[key]
        lines.append(f"| {description} | {data['value']} | {data['status']} |")
    return "\n".join(lines)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and toolchain the figures were measured on."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    os_release = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.MULTILINE)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": cpu.group(1).strip() if cpu else platform.processor() or None,
        "ram_gib": round(int(memory.group(1)) / 2**20, 1) if memory else None,
        "os": os_release.group(1) if os_release else platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("cookiecutter", "poetry", "poetry-core", "pytest", "torch", "lightning")
        },
    }


def load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def write_json(results: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


# --- main -------------------------------------------------------------------------


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
        default=3,
        help="timed training runs to take the median of (default 3)",
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
        "--keep",
        action="store_true",
        help="keep the work folder (bakes, the installed project) for profiling",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["bake", "in-process", "fast-tier", "project"],
        help="leave out one part (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.fit_runs < 1:
        parser.error("--runs and --fit-runs must be at least 1")
    if args.quick:
        args.skip.append("project")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    shown = " ".join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    results: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "command": shown,
        "machine": machine(),
        "load_before": load(),
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
            results["bake"]["process"] = bench_bake_process(args.runs, work)
        if "in-process" not in args.skip:
            combos = option_combinations()
            log(f"in-process bakes: {len(combos)} option combinations")
            results["bake"]["in_process"] = bench_bake_inprocess(combos, work)
        if "fast-tier" not in args.skip:
            log('the fast tier: pytest -m "not e2e"')
            results["fast_tier"] = bench_fast_tier()
        if "project" not in args.skip:
            results["project"] = {}
            try:
                bench_project(work, args, results["project"])
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                log(f"the project part failed: {error}")
                results.setdefault("errors", []).append(f"project: {error}")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = load()
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = evaluate(results)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    path = write_json(results, args.json or RESULTS_DIR / f"bench-{stamp}.json")
    print(table(results))
    print(f"\nwall time {results['wall_s']:.0f} s; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
