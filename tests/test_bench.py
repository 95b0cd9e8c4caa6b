"""bench/run.py cannot rot silently: its pure parts, and one timed in-process bake.

The benchmark's figures are never asserted here (a test suite holds no timing
targets); only that the script still computes, renders and writes them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from harness import TEMPLATE_DIR


def _load_bench() -> Any:
    """The bench package's modules as one namespace (the repository root on sys.path)."""
    if str(TEMPLATE_DIR) not in sys.path:
        sys.path.insert(0, str(TEMPLATE_DIR))
    names = (
        "common",
        "bakes",
        "fast_tier",
        "project",
        "report",
        "parts",
        "training",
        "baked_suite",
    )
    modules = [importlib.import_module(f"bench.{name}") for name in names]
    spec = importlib.util.spec_from_file_location("bench_run", TEMPLATE_DIR / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    namespace: dict[str, Any] = {}
    for module in [*modules, entry]:
        namespace.update(vars(module))
    namespace["bench_bake_inprocess"] = namespace["measure_in_process"]
    return SimpleNamespace(**namespace)


bench = _load_bench()


def test_median_and_ratio() -> None:
    assert bench.median([3.0, 1.0, 2.0]) == 2.0
    assert bench.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert bench.ratio(0.35, 0.25) == pytest.approx(1.4)
    with pytest.raises(ValueError, match="median"):
        bench.median([])
    with pytest.raises(ValueError, match="ratio"):
        bench.ratio(1.0, 0.0)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "...\n152 passed, 3 skipped in 25.31s\n",
            {"passed": 152, "skipped": 3, "pytest_s": 25.31},
        ),
        (
            "== 1 failed, 20 passed, 2 deselected, 1 error in 65.12s (0:01:05) ==",
            {"failed": 1, "passed": 20, "deselected": 2, "errors": 1, "pytest_s": 65.12},
        ),
        ("collected 0 items\n\nno tests ran in 0.01s\n", {"pytest_s": 0.01}),
        ("Traceback (most recent call last):\n  ...\n", {}),
    ],
)
def test_pytest_summary(output: str, expected: dict[str, Any]) -> None:
    assert bench.pytest_summary(output) == expected


def test_slowest_reads_the_durations_lines() -> None:
    output = (
        "== slowest 2 durations ==\n"
        "33.01s call     tests/test_a.py::test_mypy[x y]\n"
        "0.50s setup    tests/test_b.py::test_b\n"
        "1 passed in 40.00s\n"
    )
    assert bench.slowest(output) == [
        {"s": 33.01, "when": "call", "test": "tests/test_a.py::test_mypy[x y]"},
        {"s": 0.5, "when": "setup", "test": "tests/test_b.py::test_b"},
    ]


def test_tree_size_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 50)
    (tmp_path / "sub" / "link").hardlink_to(tmp_path / "a")
    (tmp_path / "sym").symlink_to(tmp_path / "a")
    assert bench.tree_size(tmp_path) == 150


def test_plain_torch_drops_only_the_source_rules(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\ndependencies = ["torch>=2.4"]\n\n'
        '[tool.poetry.dependencies]\ntorch = [\n  { markers = "x", source = "pytorch-cpu" },\n]\n\n'
        '# sources\n[[tool.poetry.source]]\nname = "pytorch-cpu"\n',
        encoding="utf-8",
    )
    bench.plain_torch(tmp_path)
    text = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
    assert "[tool.poetry.dependencies]" not in text
    assert "markers" not in text
    assert 'dependencies = ["torch>=2.4"]' in text
    assert "[[tool.poetry.source]]" in text


def test_interleaved_alternates_and_skips_warmup() -> None:
    calls: list[str] = []

    def command(name: str) -> Any:
        def make() -> list[str]:
            calls.append(name)
            return [sys.executable, "-S", "-c", "pass"]

        return make

    times = bench.interleaved({"a": command("a"), "b": command("b")}, runs=2, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [len(times["a"]), len(times["b"])] == [2, 2]
    assert all(t > 0 for t in times["a"] + times["b"])


def test_run_reports_status_output_and_memory() -> None:
    ran = bench.run([sys.executable, "-S", "-c", "print('hi'); raise SystemExit(3)"])
    assert ran.returncode == 3
    assert "hi" in ran.output
    assert ran.wall_s > 0
    if sys.platform != "win32":
        assert ran.maxrss_bytes > 1_000_000


def test_run_kills_a_command_past_its_timeout() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        bench.run([sys.executable, "-S", "-c", "import time; time.sleep(30)"], timeout=0.05)


def test_option_combinations_start_with_the_defaults() -> None:
    combinations = bench.option_combinations()
    assert combinations[0] == {}
    assert len(combinations) > 10
    assert {} not in combinations[1:]


def test_one_timed_in_process_bake(tmp_path: Path) -> None:
    result = bench.bench_bake_inprocess([{"license": "none"}], tmp_path, warmup=False)
    assert result["combinations"] == 1
    assert result["max_options"] == {"license": "none"}
    assert result["median_s"] == result["max_s"] > 0


def sample_results() -> dict[str, Any]:
    return {
        "bake": {
            "process": {
                "runs": 7,
                "bake_median_s": 0.30,
                "floor_median_s": 0.25,
                "ratio": 1.2,
                "no_git_median_s": 0.28,
                "no_git_ratio": 1.12,
                "peers": [
                    {"name": "other", "commit": "abc", "median_s": 0.29, "ratio": 1.16},
                ],
            },
            "in_process": {
                "combinations": 2,
                "median_s": 0.05,
                "max_s": 0.08,
                "max_options": {"ci": "gitlab"},
            },
        },
        "fast_tier": {"returncode": 0, "wall_s": 31.0, "passed": 160, "pytest_s": 29.0},
        "project": {
            "cpu": {
                "lock_cold_s": 9.0,
                "install_cold_s": 20.0,
                "venv_bytes": 1.1e9,
                "torch": "2.13.0+cpu",
                "gpu_distributions": [],
            },
            "baked_suite": {
                "not_slow": {"returncode": 0, "wall_s": 8.0, "passed": 20},
                "all": {"returncode": 0, "wall_s": 30.0, "passed": 30},
                "floor": {
                    "suite_s": 10.0,
                    "import_lightning_s": 4.0,
                    "ratio": 2.5,
                    "collect_s": 6.0,
                    "files_s": {"tests/test_tune.py": 3.0, "tests/test_cli.py": 2.04},
                },
            },
            "training": {
                "runs": 3,
                "fit_median_s": 2.0,
                "plain_median_s": 0.8,
                "plain_record_median_s": 1.25,
                "floor_median_s": 1.5,
                "reference_val_accs": {"plain": 0.94, "plain_record": 0.94, "floor": 0.94},
                "fit_over_plain": 2.5,
                "fit_over_plain_record": 1.6,
                "floor_over_plain": 1.875,
                "fit_over_floor": 1.33,
                "val_acc": 0.94,
                "poetry_run_fit_s": 8.0,
                "cli_process_s": 7.0,
                "cli_maxrss_bytes": 4e8,
            },
        },
    }


def test_evaluate_gives_pass_miss_and_skip() -> None:
    verdicts = bench.evaluate(sample_results())
    assert {key: v["status"] for key, v in verdicts.items()} == {
        "bake_ratio": "PASS",
        "bake_vs_peers": "PASS",  # 0.28 s without a repository, the peer 0.29 s
        "fast_tier": "MISS",  # 31 s
        "baked_suite": "PASS",
        "suite_floor": "MISS",  # 2.5x
        "fit": "MISS",  # 0.94
        "fit_vs_plain_record": "PASS",  # 1.6x
        "fit_vs_plain": "MISS",  # 2.5x
        "venv": "PASS",
    }
    assert set(verdicts) == set(bench.TARGETS)
    with_git_only = sample_results()
    del with_git_only["bake"]["process"]["no_git_median_s"]
    assert bench.evaluate(with_git_only)["bake_vs_peers"]["status"] == "MISS"  # 0.30 s
    empty = bench.evaluate({"bake": {}})
    assert {v["status"] for v in empty.values()} == {"SKIP"}


def test_table_and_json(tmp_path: Path) -> None:
    results = sample_results()
    text = bench.table(results)
    for row in (
        "| bake / floor | 1.20x |",
        "(no repository, as the peers' defaults) / floor | 0.280 s, 1.12x |",
        "| fast tier >= 150 tests in <= 30 s | 160 passed in 31.0 s | MISS |",
        "1.10 GB",
        "400 MB",
        "| peer bake: other (abc), median of 7 | 0.290 s, 1.16x the floor |",
        "| `fit()` / plain loop keeping the same record | 1.60x |",
        "| `fit()` / plain loop, arithmetic alone | 2.50x |",
        "| `fit()` / Lightning's floor (what the template's features cost) | 1.33x |",
        "(`bench/lightning_floor.py`) | 1.50 s, val acc 0.9400 |",
        "| fit() <= 2x the plain PyTorch loop's arithmetic alone | 2.00 s vs 0.800 s,",
        "| baked suite: start and collect only (`--collect-only`) | 6.00 s |",
        "largest first | tests/test_tune.py 3.0 s, tests/test_cli.py 2.0 s |",
    ):
        assert row in text
    assert all(line.startswith("|") for line in text.splitlines() if line)
    path = bench.write_json(results, tmp_path / "out" / "r.json")
    assert json.loads(path.read_text(encoding="utf-8")) == results


def test_seconds_per_file_adds_up_each_files_tests() -> None:
    durations = [
        {"s": 1.5, "when": "setup", "test": "tests/test_a.py::test_x"},
        {"s": 0.25, "when": "call", "test": "tests/test_a.py::test_x"},
        {"s": 2.0, "when": "call", "test": "tests/test_b.py::test_y[1-2]"},
    ]
    assert bench.seconds_per_file(durations) == {"tests/test_b.py": 2.0, "tests/test_a.py": 1.75}
    assert list(bench.seconds_per_file(durations)) == ["tests/test_b.py", "tests/test_a.py"]


def test_machine_describes_this_machine() -> None:
    info = bench.machine()
    assert info["cpus"] >= 1
    assert info["python"].count(".") == 2
    assert info["versions"]["cookiecutter"]


def test_arguments() -> None:
    args = bench.parse_args(["--quick", "--runs", "3"])
    assert args.runs == 3
    assert "project" in args.skip
    assert not args.cuda_torch
    with pytest.raises(SystemExit):
        bench.parse_args(["--runs", "0"])


def test_parts_table_skips_missing_modules_and_skipped_parts() -> None:
    args = bench.parse_args(["--skip", "baked-suite"])
    assert "baked_suite" in args.skip
    chosen = bench.selected(args)
    assert "baked_suite" not in chosen
    assert "training" in chosen
    names = [part.name for part in bench.PARTS]
    for missing in ("search", "serving"):
        assert missing in names
        module = TEMPLATE_DIR / "bench" / f"{missing}.py"
        assert (missing in chosen) == module.exists()


def test_generic_rows_show_a_parts_top_level_figures() -> None:
    rows = bench.generic_rows("search")({"trials": 16, "speedup": 1.734, "runs": [1, 2]})
    assert rows == [("search: trials", "16"), ("search: speedup", "1.73")]


def test_peer_names_are_unique() -> None:
    names = bench.peer_names([Path("/a/tpl"), Path("/b/tpl"), Path("/c/other")])
    assert list(names) == ["peer:tpl", "peer:tpl-2", "peer:other"]


def test_serving_rows_show_each_figure() -> None:
    serving = importlib.import_module("bench.serving")
    load = {"requests_per_s": 5391.0, "rows_per_s": 5391, "p50_ms": 1.28, "p99_ms": 2.96}
    result = {
        "clients": 8,
        "export": {"export_s": 2.4, "onnx_kib": 31.3},
        "install": {
            "serve_venv_mib": 164.9,
            "training_venv_mib": 1380.8,
            "serve_venv_has_torch": False,
        },
        "served": {"health": load, "predict_1": load, "predict_256": load},
        "in_process": {"1": {"p50_ms": 0.008, "p99_ms": 0.01}, "256": load},
        "target": {"predict_1_over_health": 0.64, "wanted": 0.5},
    }
    rows = dict(serving.rows(result))
    assert rows["serving: `export` (ONNX, dynamo exporter), `model.onnx`"] == "2.40 s, 31.3 KiB"
    assert "164.9 MiB (torch: no) / 1380.8 MiB" in rows.values()
    assert rows["serving: `POST /predict`, 1 row, 8 clients"].startswith("5,391 requests/s")
    assert rows["serving: `/predict` (1 row) / `/health` requests/s"] == "0.64 (target >= 0.5)"
