"""The end-of-command summary: readable lines that tests can parse back."""

from __future__ import annotations

import io
from pathlib import Path

from {{ cookiecutter.package_name }}.summary import Summary, parse_summary


def test_summary_renders_facts_and_next_commands() -> None:
    summary = Summary("fit complete: 2 epochs")
    summary.add("run", Path("runs") / "x").add("val_acc", 0.5)
    summary.suggest("my-cmd", "test", "--run", Path("runs/a b"))
    out = io.StringIO()
    summary.print(out)
    text = out.getvalue()
    assert text.splitlines()[0] == "fit complete: 2 epochs"
    assert "  run:     runs/x" in text
    assert "'runs/a b'" in text  # quoted for the shell
    assert parse_summary("noise\n" + text) == {
        "run": ["runs/x"],
        "val_acc": ["0.5"],
        "next": ["my-cmd test --run 'runs/a b'"],
    }
