"""``runs``: the table of run folders, its CSV and plot, unreadable folders."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import runs
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.summary import parse_summary


def fake_run(
    root: Path, name: str, status: str, lr: float, losses: list[float]
) -> Path:
    """A run folder as fit leaves it: config, manifest, metrics."""
    run = root / name
    run.mkdir(parents=True)
    config = (
        f"model:\n  lr: {lr}\n  net:\n    class_path: {{ cookiecutter.package_name }}.model.MLP\n"
        "    init_args:\n      hidden_size: 64\n"
        "checkpoint:\n  monitor: val_loss\n  mode: min\n"
        f"run:\n  root: runs\n  name: {name}\n"
    )
    (run / "config.yaml").write_text(config, encoding="utf-8")
    manifest = {"subcommand": "fit", "status": status, "duration_s": 1.5}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    rows = "".join(f"{epoch},{loss}\n" for epoch, loss in enumerate(losses))
    (run / "metrics.csv").write_text("epoch,val_loss\n" + rows, encoding="utf-8")
    return run


@pytest.fixture
def runs_root(tmp_path: Path, smoke_run: Path) -> Path:
    """Complete, failed and pruned runs, a real one, and two that are not runs."""
    root = tmp_path / "runs"
    fake_run(root, "20250101-000001Z_fit_a", "complete", 0.01, [0.9, 0.5, 0.4])
    fake_run(root, "20250101-000002Z_fit_b", "failed", 0.02, [0.8])
    fake_run(root, "20250101-000003Z_fit_c", "pruned", 0.03, [1.2, 1.1])
    shutil.copytree(smoke_run, root / "20250101-000004Z_fit_smoke")
    (root / "20250101-000005Z_fit_half").mkdir()  # cut off before its manifest
    (root / "20250101-000005Z_fit_half" / "config.yaml").write_text("model: {}\n")
    foreign = root / "mlruns"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("x: 1\n")
    (foreign / "manifest.json").write_text("{not json")
    return root


def table(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    main(["runs", *args])
    return capsys.readouterr().out.splitlines()


def test_the_table_lists_every_folder_with_its_status(
    runs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = table(capsys, str(runs_root))
    header = lines[0].split()
    assert header[:4] == ["name", "command", "status", "epochs"]
    assert "val_loss" in lines[0]
    status = {line.split()[0]: line for line in lines[1:7]}
    assert "complete" in status["20250101-000001Z_fit_a"]
    assert "failed" in status["20250101-000002Z_fit_b"]
    assert "pruned" in status["20250101-000003Z_fit_c"]
    assert "unreadable" in status["20250101-000005Z_fit_half"]
    assert "unreadable" in status["mlruns"]
    a = status["20250101-000001Z_fit_a"].split()
    assert a[3:6] == ["3", "0.4", "0.4"]  # epochs, best and last val_loss
    # Only the hyperparameters that differ: lr does, hidden_size does not.
    # A hyperparameter is headed by the shortest unique end of its key.
    assert "lr" in header
    assert not {"hidden_size", "model.hidden_size"} & set(header)
    assert any("mlruns" in line and "manifest.json" in line for line in lines)


def test_the_table_fits_the_terminal_and_shows_hyperparameters_only(
    runs_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    long_name = "20250101-000006Z_fit_" + "a_rather_long_experiment_name_" * 3
    run = fake_run(runs_root, long_name, "complete", 0.04, [0.7, 0.6])
    with (run / "config.yaml").open("a", encoding="utf-8") as file:
        file.write("trainer:\n  enable_progress_bar: false\n  log_every_n_steps: 3\n")
    monkeypatch.setenv("COLUMNS", "100")
    lines = table(capsys, str(runs_root))
    lines = lines[: next(i for i, line in enumerate(lines) if line.startswith("runs:"))]
    assert max(map(len, lines)) <= 100, "\n".join(lines)
    text = "\n".join(lines)
    # Display and logging switches are not hyperparameters.
    assert "enable_progress_bar" not in text
    assert "log_every_n_steps" not in text
    # The long name wraps within its column: every piece of it is shown.
    assert long_name not in text
    assert long_name in "".join(line.split()[0] for line in lines if line.strip())
    # Piped without COLUMNS, each run is one line.
    monkeypatch.delenv("COLUMNS")
    lines = table(capsys, str(runs_root))
    assert any(line.startswith(long_name) for line in lines)


def test_sort_last_and_csv(
    runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = table(capsys, str(runs_root), "--sort", "best")
    names = [line.split()[0] for line in lines[1:5]]
    assert names[0] == "20250101-000001Z_fit_a"  # 0.4, the lowest val_loss
    lines = table(capsys, str(runs_root), "--last", "2")
    assert [line.split()[0] for line in lines[1:3]] == [
        "20250101-000005Z_fit_half",
        "mlruns",
    ]
    target = tmp_path / "runs.csv"
    main(["runs", str(runs_root), "--csv", str(target)])
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6
    assert {row["status"] for row in rows} >= {"complete", "failed", "pruned"}
    assert "model.lr" in rows[0]


def test_plot_overlays_the_learning_curves(
    runs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "curves.png"
    main(["runs", str(runs_root), "--plot", str(target)])
    assert target.read_bytes().startswith(b"\x89PNG")
    facts = parse_summary(capsys.readouterr().out)
    assert facts["plot"] == [target.as_posix()]
    assert facts["best run"][0].endswith("20250101-000001Z_fit_a")


def test_the_plot_keeps_names_off_the_curves_and_marks_unfinished_runs(
    tmp_path: Path,
) -> None:
    for number in range(12):
        status = "pruned" if number % 4 == 3 else "complete"
        name = f"20250101-0000{number:02d}Z_fit_a-rather-long-run-name-{number}"
        fake_run(tmp_path, name, status, 0.01, [1.0, 0.5 + number / 100])
    rows = [runs.read_row(path.name, path) for path in sorted(tmp_path.iterdir())]
    figure = runs.plot_curves(rows, tmp_path / "curves.png")
    axes = figure.axes[0]
    legend = figure.legends[0]
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    box = legend.get_window_extent(renderer)
    assert box.x0 >= axes.get_window_extent(renderer).x1  # beside the axes, not on them
    lines = axes.get_lines()
    assert len({str(line.get_color()) for line in lines}) == 12
    labels = [text.get_text() for text in legend.get_texts()]
    dashed = [line.get_linestyle() == "--" for line in lines]
    assert dashed == [label.endswith("(pruned)") for label in labels]
    assert sum(dashed) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "nowhere: no such folder of runs"),
        (["--sort", "colour"], "--sort colour: not a column"),
        (["--last", "0"], "--last 0: must be 1 or more"),
    ],
)
def test_bad_options_exit_2(
    runs_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(runs_root.parent)
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_runs_does_not_import_torch() -> None:
    code = (
        "import sys, {{ cookiecutter.package_name }}.runs;"
        " assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
