"""The run-folder helpers: names, placeholders, provenance and plots."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonargparse import ArgumentParser

from {{ cookiecutter.package_name }}.errors import UsageError
from {{ cookiecutter.package_name }}.plots import plot_learning_curves
from {{ cookiecutter.package_name }}.run import (
    file_sha256,
    fill_placeholders,
    git_state,
    new_run_dir,
    open_run,
    read_metrics,
)


def test_new_run_dir_names_and_never_reuses(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path, "fit", "my model/v2")
    assert first.parent == tmp_path
    assert first.name.endswith("_fit_my-model-v2")
    # The stamp is UTC, and says so: 20261201-211500Z.
    assert re.fullmatch(r"\d{8}-\d{6}Z_fit_my-model-v2", first.name)
    assert not first.exists()
    first.mkdir()
    second = new_run_dir(tmp_path, "fit", "my model/v2")
    assert not second.exists()
    # Within the same second the name gets a counter; a second later, a new stamp.
    assert second.name.endswith(("_fit_my-model-v2-2", "_fit_my-model-v2"))
    assert second != first


def test_fill_placeholders_everywhere(tmp_path: Path) -> None:
    parser = ArgumentParser()
    parser.add_argument("--trainer.default_root_dir", default="{run_dir}")
    parser.add_argument("--callbacks", type=list[dict[str, str]])
    parser.add_argument("--name", default="{run_name}")
    parser.add_argument("--lr", type=float, default=0.1)
    config = parser.parse_args(
        ['--callbacks=[{"dirpath": "{run_dir}/ckpt", "filename": "{epoch}"}]']
    )
    run = tmp_path / "runs" / "20250101-000000_fit"

    fill_placeholders(config, run)

    assert config.trainer.default_root_dir == run.as_posix()
    assert config.callbacks == [
        {"dirpath": f"{run.as_posix()}/ckpt", "filename": "{epoch}"}  # Lightning's own
    ]
    assert config.name == run.name
    assert config.lr == 0.1


def test_file_sha256(tmp_path: Path) -> None:
    lock = tmp_path / "poetry.lock"
    lock.write_bytes(b"locked\n")
    assert file_sha256(lock) == hashlib.sha256(b"locked\n").hexdigest()
    assert file_sha256(tmp_path / "missing.lock") is None


def test_git_state_outside_a_repository_is_none(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_reports_commit_and_changes(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "--quiet")
    (tmp_path / "train.py").write_text("print('hi')\n", encoding="utf-8")
    git("add", "train.py")
    git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "1")
    state = git_state(tmp_path)
    assert state is not None
    assert len(state["commit"]) == 40
    assert state["dirty"] is False
    (tmp_path / "train.py").write_text("print('changed')\n", encoding="utf-8")
    assert git_state(tmp_path) == {"commit": state["commit"], "dirty": True}


def test_plot_learning_curves(tmp_path: Path) -> None:
    rows = [
        {"epoch": 0, "train_loss": 1.0, "val_loss": 1.2, "val_acc": 0.5},
        {"epoch": 1, "train_loss": 0.5, "val_acc": 0.8},  # no val_loss this epoch
    ]
    plot_learning_curves(rows, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_open_run_reads_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("seed_everything: 1\n", encoding="utf-8")
    manifest = {"subcommand": "fit", "status": "complete"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,val_loss\n0,5,0.5\n1,10,\n", encoding="utf-8"
    )
    run = open_run(tmp_path)
    assert run.status == "complete"
    assert run.config_path == tmp_path / "config.yaml"
    assert run.metrics() == [
        {"epoch": 0, "step": 5, "val_loss": 0.5},
        {"epoch": 1, "step": 10},
    ]
    with pytest.raises(UsageError, match="checkpoint not found"):
        run.checkpoint("best")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert run.checkpoint("last") == tmp_path / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "not a run folder \\(no config.yaml\\)"),
        ({"config.yaml": ""}, "not a run folder \\(no manifest.json\\)"),
        ({"config.yaml": "", "manifest.json": "{half"}, "unreadable"),
        ({"config.yaml": "", "manifest.json": "[1]"}, "not a JSON object"),
    ],
)
def test_open_run_refuses_what_is_not_a_run(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        open_run(tmp_path)
    with pytest.raises(UsageError, match="no such run folder"):
        open_run(tmp_path / "missing")


def test_read_metrics_without_a_file_is_empty(tmp_path: Path) -> None:
    assert read_metrics(tmp_path / "metrics.csv") == []
