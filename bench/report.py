"""Targets, the Markdown table and the machine description of a benchmark run."""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.common import GB, MB, describe_tests, seconds, tests_run

# key: what, checked by :func:`evaluate`.
TARGETS = {
    "bake_ratio": "bake <= 1.4x the floor",
    "bake_vs_peers": "bake ahead of every peer in the same run (same work: no git repository)",
    "fast_tier": "fast tier >= 150 tests in <= 30 s",
    "baked_suite": 'baked suite (-m "not slow") >= 15 tests in <= 20 s',
    "suite_floor": 'baked suite (-m "not slow") <= 2x `import lightning`',
    "fit": "fit() <= 5 s reaching val acc >= 0.95",
    "fit_vs_plain_record": "fit() <= 2x the plain PyTorch loop keeping the same record",
    "fit_vs_plain": "fit() <= 2x the plain PyTorch loop's arithmetic alone",
    "venv": "CPU .venv <= 1.5 GB",
}
BAKE_RATIO_MAX = 1.4
FAST_TIER_MIN_TESTS, FAST_TIER_MAX_S = 150, 30.0
BAKED_SUITE_MIN_TESTS, BAKED_SUITE_MAX_S = 15, 20.0
SUITE_FLOOR_MAX = 2.0
FIT_MAX_S, FIT_MIN_ACC = 5.0, 0.95
FIT_PLAIN_MAX = 2.0
VENV_MAX_BYTES = 1.5 * GB


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
    peers = _get(results, "bake", "process", "peers")
    bake_s = _get(results, "bake", "process", "bake_median_s")
    if peers:
        # The peers make no git repository: compare the bake doing the same work.
        same_s = _get(results, "bake", "process", "no_git_median_s") or bake_s
        same = _get(results, "bake", "process", "no_git_ratio")
        ours = same if same is not None else _get(results, "bake", "process", "ratio")
        shown = ", ".join(f"{p['name']} {p['ratio']:.2f}x" for p in peers)
        out["bake_vs_peers"] = {
            "value": f"ours {ours:.2f}x; {shown}",
            "status": verdict(all(same_s < p["median_s"] for p in peers)),
        }
    else:
        out["bake_vs_peers"] = {"value": "-", "status": "SKIP"}
    floor = _get(results, "project", "baked_suite", "floor")
    out["suite_floor"] = (
        {
            "value": f"{seconds(floor['suite_s'])} vs {seconds(floor['import_lightning_s'])},"
            f" {floor['ratio']:.2f}x",
            "status": verdict(floor["ratio"] <= SUITE_FLOOR_MAX),
        }
        if floor
        else {"value": "-", "status": "SKIP"}
    )
    for key, field, reference in (
        ("fit_vs_plain_record", "fit_over_plain_record", "plain_record_median_s"),
        ("fit_vs_plain", "fit_over_plain", "plain_median_s"),
    ):
        over = _get(results, "project", "training", field)
        out[key] = (
            {
                "value": f"{seconds(training['fit_median_s'])} vs"
                f" {seconds(training[reference])}, {over:.2f}x",
                "status": verdict(over <= FIT_PLAIN_MAX),
            }
            if over is not None and training and training.get(reference) is not None
            else {"value": "-", "status": "SKIP"}
        )
    venv = _get(results, "project", "cpu", "venv_bytes")
    out["venv"] = {
        "value": "-" if venv is None else f"{venv / GB:.2f} GB",
        "status": verdict(None if venv is None else venv <= VENV_MAX_BYTES),
    }
    return out


def table(
    results: Mapping[str, Any],
    part_rows: Mapping[str, Callable[[Mapping[str, Any]], list[tuple[str, str]]]] | None = None,
) -> str:
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
        if "no_git_ratio" in process:
            rows.append(
                (
                    "bake with `init_git=no` (no repository, as the peers' defaults) / floor",
                    f"{seconds(process['no_git_median_s'])}, {process['no_git_ratio']:.2f}x",
                )
            )
        if "no_cache_median_s" in process:
            rows.append(
                (
                    "bake with `init_git=no`, without / with the bytecode cache",
                    f"{seconds(process['no_cache_median_s'])} / "
                    f"{seconds(process['no_git_median_s'])},"
                    f" {process['no_cache_median_s'] / process['no_git_median_s']:.2f}x",
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
    for peer in (process or {}).get("peers", []):
        commit = (peer.get("commit") or "unknown commit")[:12]
        rows.append(
            (
                f"peer bake: {peer['name']} ({commit}), median of {process['runs']}",
                f"{seconds(peer['median_s'])}, {peer['ratio']:.2f}x the floor",
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
            *reference_rows(training),
            ("training CLI, whole process (console script)", seconds(training["cli_process_s"])),
            ("training CLI through `poetry run`", seconds(training["poetry_run_fit_s"])),
            ("training CLI, peak memory (max RSS)", "-" if rss is None else f"{rss / MB:.0f} MB"),
        ]
    floor = _get(results, "project", "baked_suite", "floor")
    if floor:
        rows.append(
            (
                'baked suite from its venv (`python -m pytest -m "not slow"`) /'
                ' `python -c "import lightning"`',
                f"{seconds(floor['suite_s'])} / {seconds(floor['import_lightning_s'])},"
                f" {floor['ratio']:.2f}x",
            )
        )
        if floor.get("collect_s") is not None:
            rows.append(
                (
                    "baked suite: start and collect only (`--collect-only`)",
                    seconds(floor["collect_s"]),
                )
            )
        files = floor.get("files_s") or {}
        if files:
            shown = ", ".join(f"{name} {s:.1f} s" for name, s in list(files.items())[:6])
            rows.append(("baked suite: seconds in each file's tests, largest first", shown))
    sizes = _get(results, "project", "downloads")
    if sizes:
        for route, label in (("cpu", "CPU (PyTorch's CPU index)"), ("cuda", "CUDA (the registry)")):
            data = sizes[route]
            rows.append(
                (
                    f"torch {sizes['torch_version']} download, {label}",
                    f"{data['total_bytes'] / GB:.2f} GB (torch wheel"
                    f" {data['torch_bytes'] / GB:.2f} GB, {len(data['dependencies'])}"
                    f" dependencies {data['dependencies_bytes'] / GB:.2f} GB)",
                )
            )
    for cache, data in (_get(results, "project", "first_model") or {}).items():
        rows.append(
            (
                f"time to first model, {cache} Poetry cache: lock + install + first import + fit",
                f"{seconds(data['total_s'])} ({seconds(data['lock_s'])} +"
                f" {seconds(data['install_s'])} + {seconds(data['first_import_s'])} +"
                f" {seconds(data['fit_s'])})",
            )
        )
    for name, render in (part_rows or {}).items():
        data = _get(results, "project", name)
        if data:
            rows += render(data)
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    verdicts = results.get("targets") or evaluate(results)
    lines += ["", "| target (2 cores) | measured | status |", "| --- | --- | --- |"]
    for key, description in TARGETS.items():
        data = verdicts.get(key, {"value": "-", "status": "SKIP"})
        lines.append(f"| {description} | {data['value']} | {data['status']} |")
    return "\n".join(lines)


def reference_rows(training: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The training references beside ``fit()``, and the ratios between them."""
    accuracies = training.get("reference_val_accs") or {}
    rows = []
    for name, label in (
        ("plain", "plain PyTorch loop, arithmetic alone (`bench/plain_loop.py`, median)"),
        (
            "plain_record",
            "plain PyTorch loop keeping the same record (`plain_loop.py --record`, median)",
        ),
        ("floor", "Lightning's floor, `Trainer(barebones=True)` (`bench/lightning_floor.py`)"),
    ):
        value = training.get(f"{name}_median_s")
        if value is not None:
            acc = accuracies.get(name)
            rows.append(
                (label, f"{seconds(value)}, val acc {'-' if acc is None else f'{acc:.4f}'}")
            )
    for field, label in (
        ("fit_over_plain_record", "`fit()` / plain loop keeping the same record"),
        ("fit_over_plain", "`fit()` / plain loop, arithmetic alone"),
        ("floor_over_plain", "Lightning's floor / plain loop, arithmetic alone"),
        ("fit_over_floor", "`fit()` / Lightning's floor (what the template's features cost)"),
    ):
        if training.get(field) is not None:
            rows.append((label, f"{training[field]:.2f}x"))
    return rows


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
