"""bench/search.py cannot rot silently: its pure parts (the study itself is timed by hand)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from harness import TEMPLATE_DIR


def _load() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_search", TEMPLATE_DIR / "bench" / "search.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_best_is_the_lowest_value_of_the_trials_that_have_one() -> None:
    search = _load()
    rows = [{"value": "0.5"}, {"value": ""}, {"value": "0.25"}]
    assert search.best(rows) == 0.25
    assert search.best([{"value": ""}]) is None


def test_command_runs_the_console_script_or_the_source_tree(tmp_path: Path) -> None:
    search = _load()
    (tmp_path / "src" / "my_pkg").mkdir(parents=True)
    (tmp_path / "src" / "my_pkg" / "cli.py").write_text("")
    env: dict[str, str] = {}
    assert search.command(tmp_path, env) == [sys.executable, "-m", "my_pkg"]
    assert env["PYTHONPATH"].startswith(str(tmp_path / "src"))
    script = tmp_path / ".venv" / "bin" / "my-pkg"
    script.parent.mkdir(parents=True)
    script.write_text("")
    assert search.command(tmp_path, {}) == [str(script)]
