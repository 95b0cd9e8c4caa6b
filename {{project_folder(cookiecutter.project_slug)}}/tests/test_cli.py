"""The command line end to end, in-process: run folders, resume, configs."""

from __future__ import annotations

import csv
import gc
import json
import re
import runpy
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from conftest import QUIET
from {{ cookiecutter.package_name }} import train
from {{ cookiecutter.package_name }}.cli import main

MISSING_ACCELERATOR = "mps" if torch.cuda.is_available() else "cuda"
SMOKE_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
RunCLI = Callable[..., Path]
CallCLI = Callable[..., Path | None]


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it gets arguments and sys.argv holds some too."""
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])


def read_metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def read_manifest(run: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((run / "manifest.json").read_text("utf-8"))
    return manifest


def read_weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    weights: dict[str, torch.Tensor] = checkpoint["state_dict"]
    return weights


def printed_config(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What ``fit --print_config`` prints for ``args``."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


def test_fit_writes_the_run_folder(smoke_run: Path) -> None:
    assert smoke_run.parent.name == "runs"
    assert smoke_run.name.endswith("_fit_smoke")
    config = (smoke_run / "config.yaml").read_text(encoding="utf-8")
    assert "max_epochs: 2" in config
    assert "{run_dir}" in config  # kept, so that the config starts a fresh run

    manifest = read_manifest(smoke_run)
    assert manifest["seed"] == 42
    assert manifest["subcommand"] == "fit"
    assert "fit" in manifest["command"]
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["versions"]["lightning"]
    assert manifest["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert manifest["platform"]
    assert {"git", "poetry_lock_sha256"} <= manifest.keys()
    assert manifest["trainer"]["deterministic"] is True
    assert manifest["trainer"]["world_size"] == 1
    assert manifest["status"] == "complete"
    assert manifest["duration_s"] > 0
    assert manifest["finished"] >= manifest["started"]

    rows = read_metrics(smoke_run)
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= rows[0].keys()

    assert (smoke_run / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    assert (smoke_run / "checkpoints" / "best.ckpt").is_file()
    assert (smoke_run / "checkpoints" / "last.ckpt").is_file()


{% if cookiecutter.dataset == "mnist" -%}
@pytest.mark.slow
{% endif -%}
def test_default_fit_reaches_the_target_accuracy(
    run_cli: RunCLI, configs: Path
) -> None:
    run = run_cli("fit", "--config", str(configs / "default.yaml"))
    assert float(read_metrics(run)[-1]["val_acc"]) >= 0.95


def test_rerunning_a_saved_config_reproduces_the_run(
    run_cli: RunCLI, smoke_run: Path
) -> None:
    again = run_cli("fit", "--config", str(smoke_run / "config.yaml"))
    assert again.name != smoke_run.name
    assert read_metrics(again) == read_metrics(smoke_run)
    weights, weights_again = read_weights(smoke_run), read_weights(again)
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # a copied run folder
def test_resume_continues_the_epoch_count(
    call_cli: CallCLI, smoke_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "runs" / smoke_run.name
    shutil.copytree(smoke_run, run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = call_cli("fit", "--resume", str(run), "--trainer.max_epochs=3")
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    assert resumed is None  # no new run folder: the run continues in its own

    assert [row["epoch"] for row in read_metrics(run)] == ["0", "1", "2"]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 2
    manifest = read_manifest(run)
    assert "--resume" in manifest["command"]
    assert manifest["ckpt_path"].endswith("last.ckpt")
    assert len(manifest["previous_sessions"]) == 1
    # The saved config is the run's own (now three epochs), not the resume.
    config = (run / "config.yaml").read_text(encoding="utf-8")
    assert "max_epochs: 3" in config
    assert "resume: null" in config


def test_resume_needs_a_run_folder(call_cli: CallCLI, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_cli("fit", "--resume", str(tmp_path / "no-such-run"))
    assert exit_info.value.code != 0


def test_resume_is_only_for_fit(call_cli: CallCLI, smoke_run: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_cli("test", "--resume", str(smoke_run))
    assert exit_info.value.code != 0


def test_evaluate_and_predict_from_a_run(run_cli: RunCLI, smoke_run: Path) -> None:
    reuse = ["--config", str(smoke_run / "config.yaml")]
    best = ["--ckpt_path", str(smoke_run / "checkpoints" / "best.ckpt")]

    validated = run_cli("validate", *reuse, *best)
    assert {"val_loss", "val_acc"} <= read_metrics(validated)[0].keys()

    tested = run_cli("test", *reuse, *best)
    assert 0 < float(read_metrics(tested)[0]["test_acc"]) <= 1
    assert read_manifest(tested)["ckpt_path"].endswith("best.ckpt")

    predicted = run_cli("predict", *reuse, *best)
    with (predicted / "predictions.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert rows
    assert {row["prediction"] for row in rows} <= {str(digit) for digit in range(10)}


def test_fast_dev_run_leaves_no_run_folder(call_cli: CallCLI, tmp_path: Path) -> None:
    assert call_cli("fit", "--trainer.fast_dev_run=true") is None
    assert not (tmp_path / "runs").exists()


def test_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    printed = printed_config(capsys)
    assert "seed_everything: 42" in printed
    assert "deterministic: true" in printed
    assert "{run_dir}" in printed
{%- set logger_class = {
    "csv": "CSVLogger",
    "tensorboard": "TensorBoardLogger",
    "mlflow": "MLFlowLogger",
    "wandb": "WandbLogger",
}[cookiecutter.logger] %}
    assert "class_path: lightning.pytorch.loggers.{{ logger_class }}" in printed


def test_default_config_matches_the_builtin_defaults(
    capsys: pytest.CaptureFixture[str], configs: Path
) -> None:
    builtin = printed_config(capsys)
    from_file = printed_config(capsys, "--config", str(configs / "default.yaml"))
    assert from_file == builtin


def test_python_dash_m_runs_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["{{ cookiecutter.package_name }}", "--help"])
    runpy.run_module("{{ cookiecutter.package_name }}", run_name="__main__")
    assert "fit" in capsys.readouterr().out


def test_an_unknown_command_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fitt"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown command 'fitt'" in err
    assert "fit" in err


def test_no_command_prints_the_commands_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "commands:" in capsys.readouterr().err


def test_a_usage_error_shows_its_traceback_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from {{ cookiecutter.package_name }}.errors import UsageError
    from {{ cookiecutter.package_name }}.names import TRACEBACK_VARIABLE

    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    with pytest.raises(UsageError, match="unknown command"):
        main(["fitt"])


def test_fit_ends_with_a_summary_of_the_run(
    run_cli: RunCLI, capsys: pytest.CaptureFixture[str]
) -> None:
    from {{ cookiecutter.package_name }}.names import PROGRAM
    from {{ cookiecutter.package_name }}.summary import parse_summary

    capsys.readouterr()
    run = run_cli("fit", "--config", SMOKE_CONFIG)
    out = capsys.readouterr().out
    assert "fit complete: 2 epochs" in out
    facts = parse_summary(out)
    assert facts["run"] == [run.relative_to(run.parents[1]).as_posix()]
    best = facts["best checkpoint"][0]
    assert re.search(r"best\.ckpt \(epoch [01], lowest val_loss\)$", best)
    assert {"val_acc", "val_loss", "plot"} <= facts.keys()
    # Every metric says whether it is the best epoch's, the last one's, or both.
    for key in ("val_acc", "val_loss"):
        (line,) = facts[key]
        assert re.fullmatch(
            r"[0-9.]+ \(epoch 1: best and last\)"
            r"|best [0-9.]+ \(epoch 0\), last [0-9.]+ \(epoch 1\)",
            line,
        ), line
    assert f"{PROGRAM} test --run {facts['run'][0]}" in facts["next"]
    assert f"{PROGRAM} predict --run {facts['run'][0]}" in facts["next"]


def test_evaluating_needs_a_checkpoint(
    call_cli: CallCLI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for subcommand in ("validate", "test", "predict"):
        with pytest.raises(SystemExit) as exit_info:
            call_cli(subcommand)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "--run RUN" in err
    assert not (tmp_path / "runs").exists()


def test_run_option_scores_the_best_or_last_checkpoint(
    run_cli: RunCLI, smoke_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from {{ cookiecutter.package_name }}.summary import parse_summary

    capsys.readouterr()
    tested = run_cli("test", "--run", str(smoke_run))
    facts = parse_summary(capsys.readouterr().out)
    assert read_manifest(tested)["ckpt_path"].endswith("best.ckpt")
    assert 0 < float(facts["test_acc"][0]) <= 1
    here = tested.parents[1]  # the folder the command ran in
    assert facts["metrics"] == [(tested.relative_to(here) / "metrics.csv").as_posix()]

    predicted = run_cli("predict", "--run", str(smoke_run), "--ckpt", "last")
    facts = parse_summary(capsys.readouterr().out)
    assert read_manifest(predicted)["ckpt_path"].endswith("last.ckpt")
    written = predicted.relative_to(here) / "predictions.csv"
    assert facts["predictions"][0].startswith(written.as_posix())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["test", "--run", "."], "not a run folder"),
        (["test", "--config", "no-such.yaml"], "no such config file"),
        (["test", "--ckpt_path", "no-such.ckpt"], "no such checkpoint"),
        (["test", "--ckpt_path", __file__], "not a PyTorch checkpoint"),
        (["fit", f"--trainer.accelerator={MISSING_ACCELERATOR}"], "available"),
    ],
)
def test_common_mistakes_are_one_line_and_status_2(
    call_cli: CallCLI, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_cli(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["fit", "--model.lrr", "0.1"],
            "--model.lrr: unknown option; did you mean --model.lr?",
        ),
        (
            ["fit", "--model.net.hiden_size", "3"],
            "--model.net.hiden_size: unknown option;"
            " did you mean --model.net.hidden_size?",
        ),
        (
            ["test", "--trainer.max_epoch", "3"],
            "--trainer.max_epoch: unknown option; did you mean --trainer.max_epochs?",
        ),
        (["fit", "--model.lr", "fast"], "--model.lr: Expected a <class 'float'>"),
    ],
)
def test_an_option_typo_is_one_line_with_the_closest_option(
    call_cli: CallCLI, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_cli(*args)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model:\n  lrr: 0.1\n",
            "--model.lrr: unknown option; did you mean --model.lr?",
        ),
        (
            "data:\n  init_args:\n    batch_sise: 8\n",
            "--data.batch_sise: unknown option; did you mean --data.batch_size?",
        ),
    ],
)
def test_a_typo_in_a_config_file_names_the_key(
    call_cli: CallCLI,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        call_cli("fit", "--config", str(config))
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line


def test_help_names_the_project_and_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from {{ cookiecutter.package_name }}.cli import COMMANDS

    main(["--help"])
    out = capsys.readouterr().out
    assert "{{ cookiecutter.project_name | replace('\\', '\\\\') | replace('"', '\\"') }}" in out
    assert "docs/training.md" in out
    for name, command in COMMANDS.items():
        assert command.summary.endswith(".")
        assert f"  {name}" in out
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "Lightning Trainer command line tool" not in out


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_each_training_command_has_its_own_help(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from {{ cookiecutter.package_name }}.cli import COMMANDS

    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])
    assert exit_info.value.code in (0, None)
    out = " ".join(capsys.readouterr().out.split())
    assert f" {subcommand} [-c CONFIG]" in out
    assert COMMANDS[subcommand].summary in out
    assert "--trainer.max_epochs" in out


class _SeesTheProgressBar(Callback):
    """Records which progress bar the Trainer was given."""

    def __init__(self) -> None:
        self.bar: object = "not seen"

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar = trainer.progress_bar_callback


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--trainer.enable_progress_bar=true"], "ProgressBar"),
        ([], "NoneType"),
        (
            [
                "--trainer.enable_progress_bar=true",
                "--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar",
            ],
            "TQDMProgressBar",
        ),
    ],
    ids=["on", "off", "configured"],
)
@pytest.mark.usefixtures("datamodule")  # skips where the data cannot be had
def test_fit_draws_the_throttled_progress_bar_unless_told_otherwise(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    expected: str,
) -> None:
    seen = _SeesTheProgressBar()
    monkeypatch.chdir(tmp_path)
    args = ["fit", *QUIET, "--config", SMOKE_CONFIG, "--trainer.max_epochs=1"]
    train.main([*args, *options], callbacks=[seen])
    assert type(seen.bar).__name__ == expected


class _SeesTheFrozenObjects(Callback):
    """Records how many objects the garbage collector leaves out while training."""

    frozen = -1

    @override
    def on_train_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        self.frozen = gc.get_freeze_count()


@pytest.mark.usefixtures("datamodule")  # skips where the data cannot be had
def test_training_leaves_the_long_lived_objects_to_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _SeesTheFrozenObjects()
    monkeypatch.chdir(tmp_path)
    before = gc.get_freeze_count()
    train.main(["fit", *QUIET, "--config", SMOKE_CONFIG], callbacks=[seen])
    # torch's and Lightning's objects, at least: far more than the run's own.
    assert seen.frozen > 100_000
    assert gc.get_freeze_count() == before  # all unfrozen when the command ends


def test_the_progress_bar_redraws_by_time_not_by_batch(
    make_trainer: Callable[..., pl.Trainer],
    make_model: Callable[..., Any],
    datamodule: pl.LightningDataModule,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lightning.pytorch.callbacks import TQDMProgressBar

    from {{ cookiecutter.package_name }}.progress import ProgressBar

    def drawn(bar: TQDMProgressBar, *, terminal: bool = True, epochs: int = 1) -> str:
        monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
        trainer = make_trainer(
            callbacks=[bar],
            enable_progress_bar=True,
            max_epochs=epochs,
            limit_train_batches=5,
            limit_val_batches=1,
            num_sanity_val_steps=0,
        )
        trainer.fit(make_model(), datamodule=datamodule)
        return capsys.readouterr().out  # Lightning's bars write to stdout

    every_batch = drawn(TQDMProgressBar(refresh_rate=1))
    assert all(f"{n}/5" in every_batch for n in range(1, 6))
    # Nothing waits a minute between batches: the first and last are drawn.
    by_time = drawn(ProgressBar(refresh_interval=60))
    assert "1/5" in by_time
    assert "5/5" in by_time
    assert not any(f"{n}/5" in by_time for n in range(2, 5))
    # Off a terminal (a file, a CI log): no bars, one line per epoch.
    logged = drawn(ProgressBar(), terminal=False, epochs=3).splitlines()
    assert [line.split()[:2] for line in logged] == [
        ["epoch", "0"],
        ["epoch", "1"],
        ["epoch", "2"],
    ]
    assert all("val_loss" in line for line in logged)


def test_the_plot_is_labelled_and_marks_the_best_epoch(
    smoke_run: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from {{ cookiecutter.package_name }}.plots import plot_learning_curves
    from {{ cookiecutter.package_name }}.run import read_metrics as rows_of

    with Image.open(smoke_run / "learning_curves.png") as image:
        text = dict(getattr(image, "text", {}))
    assert text["Title"] == smoke_run.name
    assert text["Description"].startswith("best epoch: ")

    rows = [
        {"epoch": 0, "val_loss": 2.0},
        {"epoch": 1, "val_loss": 1.0},
        {"epoch": 2, "val_loss": 1.5, "train_loss": 1.2},
    ]
    png = tmp_path / "p.png"
    figure = plot_learning_curves(rows, png, title="x", monitor="val_loss")
    (ax,) = figure.axes
    assert figure.get_suptitle() == "x"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "loss")
    assert "best (epoch 1)" in [line.get_label() for line in ax.get_lines()]
    assert rows_of(smoke_run / "metrics.csv")
