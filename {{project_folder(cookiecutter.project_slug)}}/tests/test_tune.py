"""``tune``: the search space, a tiny study, reproduction, resume, workers."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from conftest import PROJECT_ROOT, QUIET, SMOKE, run_main
from {{ cookiecutter.package_name }} import runs, train, tune
from {{ cookiecutter.package_name }}.errors import UsageError
from {{ cookiecutter.package_name }}.summary import parse_summary

TINY = [
    "--search",
    str(PROJECT_ROOT / "configs" / "search.yaml"),
    "--config",
    SMOKE,
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
]
"""Trials of two epochs of three batches: a study of a few trials in seconds."""


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it gets arguments and sys.argv holds some too."""
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])


def read_trials(study: Path) -> list[dict[str, str]]:
    with (study / "trials.csv").open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def read_metrics(run: Path) -> list[dict[str, Any]]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return [
            {
                k: int(v) if k in ("epoch", "step") else float(v)
                for k, v in r.items()
                if v
            }
            for r in csv.DictReader(file)
        ]


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def study(root: Path, *args: str) -> Path:
    """Run ``tune`` in ``root`` with the tiny trials; return the study folder."""
    folder = run_main(root, "tune", *TINY, *args)
    assert folder is not None, "tune created no study folder"
    return folder


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory, datamodule: Any) -> Path:
    """A study of three trials (read-only); skips where the data cannot be had."""
    return study(tmp_path_factory.mktemp("tune"), "--trials", "3")


needs_data = pytest.mark.usefixtures("datamodule")
"""For a test that runs ``tune``: it skips, with the reason, where the data does."""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_search_space_parses() -> None:
    space = tune.load_search_space(PROJECT_ROOT / "configs" / "search.yaml")
    assert isinstance(space["model.lr"], FloatDistribution)
    assert space["model.lr"].log
    assert isinstance(space["model.net.init_args.hidden_size"], IntDistribution)
    assert isinstance(space["data.init_args.batch_size"], CategoricalDistribution)


def test_every_distribution_and_its_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "search.yaml",
        "a: {type: float, low: 0.1, high: 1.0, step: 0.1}\n"
        "b: {type: int, low: 1, high: 64, log: true}\n"
        "c: {type: categorical, choices: [x, 2, null]}\n",
    )
    space = tune.load_search_space(path)
    assert space["a"] == FloatDistribution(0.1, 1.0, step=0.1)
    assert space["b"] == IntDistribution(1, 64, log=True)
    assert space["c"] == CategoricalDistribution(["x", 2, None])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "model.lr: {type: normal, low: 0, high: 1}",
            "expected a mapping with a 'type'",
        ),
        ("model.lr: {type: float, low: 0.1, high: 0.01}", "`low <= high` must hold"),
        (
            "model.lr: {type: float, low: 0.0, high: 1, log: true}",
            "`low > 0` must hold",
        ),
        ("model.lr: {type: int, low: -4, high: 8, log: true}", "`low >= 1` must hold"),
        ("model.lr: {type: float, low: x, high: 1}", "'low' must be a number"),
        ("model.lr: {type: float, high: 1}", "missing 1 required positional argument"),
        ("model.lr: {type: float, low: 0, high: 1, scale: 2}", "argument 'scale'"),
        ("model.lr: {type: categorical, choices: []}", "one or more elements"),
        ("model.lr: {type: categorical, choices: [{a: 1}]}", "should be a tuple"),
        ("model.lr: 0.1", "expected a mapping with a 'type'"),
        ("[not, a, mapping]", "expected a mapping of config keys"),
        ("model.lr: {type: float, low: 0, high: [", "not valid YAML"),
    ],
)
def test_bad_search_spaces_name_the_key_and_rule(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = write(tmp_path / "search.yaml", entry + "\n")
    with pytest.raises(UsageError, match=re.escape(message)) as error:
        tune.load_search_space(path)
    assert str(error.value).startswith(f"{path}: ")


def tune_fails(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run a ``tune`` that must fail with status 2; return its error line."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(root, "tune", *TINY, *args)
    assert exit_info.value.code == 2
    assert not list((root / "runs").glob("*")), "tune left a study folder behind"
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in error
    return error


@needs_data
def test_an_unknown_key_is_a_usage_error_naming_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    search = write(
        tmp_path / "s.yaml",
        "model.net.init_args.hiden_size: {type: int, low: 8, high: 16}\n",
    )
    error = tune_fails(tmp_path, capsys, "--search", str(search))
    assert f"{search}: --model.net.hiden_size: unknown option" in error
    assert "did you mean --model.net.hidden_size?" in error


@needs_data
def test_every_choice_is_checked_against_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    search = write(
        tmp_path / "s.yaml",
        "model.net: {type: categorical, choices: [MLP, NoSuchNet]}\n",
    )
    error = tune_fails(tmp_path, capsys, "--search", str(search))
    assert "NoSuchNet" in error


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("model.lr: {type: uniform, low: 0.1, high: 1}", "expected a mapping"),
        ("model.lr: {type: float, low: 1, high: 0.1}", "`low <= high` must hold"),
        ("model.lr: {type: float, low: -1, high: 1, log: true}", "`low > 0` must"),
    ],
)
@needs_data
def test_bad_search_spaces_exit_2_and_leave_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, message: str
) -> None:
    search = write(tmp_path / "s.yaml", entry + "\n")
    error = tune_fails(tmp_path, capsys, "--search", str(search))
    assert "model.lr" in error
    assert message in error


@needs_data
def test_a_storage_that_cannot_be_opened_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "nosuchdb://user:secret@127.0.0.1/db"
    error = tune_fails(tmp_path, capsys, "--storage", url, "--study", "x")
    assert "--storage nosuchdb://user:***@127.0.0.1/db: cannot open it" in error
    assert "secret" not in error


@needs_data
def test_a_missing_search_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error = tune_fails(tmp_path, capsys, "--search", str(tmp_path / "none.yaml"))
    assert "none.yaml: cannot read the search space" in error


def test_a_study_writes_its_folder(tiny_study: Path) -> None:
    assert tiny_study.parent.name == "runs"
    assert tiny_study.name.endswith("_tune")
    for name in ("trials.csv", "best.yaml", "study.png", "study.json", "journal.log"):
        assert (tiny_study / name).is_file(), name
    assert (tiny_study / "study.png").read_bytes().startswith(b"\x89PNG")
    trials = read_trials(tiny_study)
    assert [row["number"] for row in trials] == ["0", "1", "2"]
    assert {row["state"] for row in trials} == {"COMPLETE"}
    assert list(trials[0])[:2] == ["number", "state"]
    assert list(trials[0])[-3:] == ["value", "duration_s", "run_dir"]
    root = tiny_study.parent.parent
    for row in trials:  # every trial is an ordinary run folder in the study folder
        run = root / row["run_dir"]
        assert run.parent.name == tiny_study.name
        assert run.name.endswith(f"_fit_trial-{int(row['number']):04d}")
        manifest = read_json(run / "manifest.json")
        assert manifest["status"] == "complete"
        assert manifest["trial"]["number"] == int(row["number"])
        assert manifest["trial"]["params"]["model.lr"] == float(row["model.lr"])
        assert (run / "checkpoints" / "best.ckpt").is_file()
        # The trial's values went to fit as a config file of their own ...
        values = yaml.safe_load(
            (tiny_study / f"trial-{int(row['number']):04d}.yaml").read_text()
        )
        assert values["model"]["lr"] == float(row["model.lr"])
        # ... and its resolved config holds them.
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        assert config["model"]["lr"] == float(row["model.lr"])
        hidden = config["model"]["net"]["init_args"]["hidden_size"]
        assert hidden == int(row["model.net.init_args.hidden_size"])
        # The value is the best of the trial's own epochs.
        losses = [r["val_loss"] for r in read_metrics(run)]
        assert float(row["value"]) == min(losses)


def test_the_study_keeps_its_metric_and_space_in_its_own_attributes(
    tiny_study: Path,
) -> None:
    record = read_json(tiny_study / "study.json")
    assert record == {"study": tiny_study.name, "storage": "journal"}
    storage = tune.open_storage(None, tiny_study)
    loaded = optuna.load_study(study_name=tiny_study.name, storage=storage)
    assert loaded.user_attrs["metric"] == "val_loss"
    assert set(loaded.user_attrs["search"]) == set(
        tune.load_search_space(PROJECT_ROOT / "configs" / "search.yaml")
    )


def test_the_plot_shows_importances_only_from_enough_trials(
    tiny_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    storage = tune.open_storage(None, tiny_study)
    loaded = optuna.load_study(study_name=tiny_study.name, storage=storage)
    without = tmp_path / "without.png"
    tune.plot_study(loaded, without, "val_loss")  # 3 complete trials: too few
    monkeypatch.setattr(tune, "IMPORTANCE_TRIALS", 3)
    with_importances = tmp_path / "with.png"
    tune.plot_study(loaded, with_importances, "val_loss")
    first, second = Image.open(without), Image.open(with_importances)
    assert first.size[0] > first.size[1]  # history and importances side by side
    half = (first.size[0] // 2, 0, first.size[0], first.size[1])
    assert first.crop(half).tobytes() != second.crop(half).tobytes()


def test_best_yaml_reproduces_the_best_trial_exactly(
    tiny_study: Path, run_cli: Callable[..., Path]
) -> None:
    trials = read_trials(tiny_study)
    best = min(trials, key=lambda row: float(row["value"]))
    rerun = run_cli("fit", "--config", str(tiny_study / "best.yaml"))
    assert rerun.parent.name == "runs"  # run.root is back to runs
    trial_dir = tiny_study.parent.parent / best["run_dir"]
    trial_metrics = (trial_dir / "metrics.csv").read_text(encoding="utf-8")
    assert (rerun / "metrics.csv").read_text(encoding="utf-8") == trial_metrics


def test_the_same_study_twice_gives_the_same_trials(
    tiny_study: Path, tmp_path: Path
) -> None:
    again = study(tmp_path, "--trials", "3")

    def values(folder: Path) -> list[list[str]]:
        drop = ("duration_s", "run_dir")
        return [
            [v for k, v in row.items() if k not in drop] for row in read_trials(folder)
        ]

    assert values(again) == values(tiny_study)


@needs_data
def test_a_study_ends_with_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = study(tmp_path, "--trials", "1", "--study", "quick")
    facts = parse_summary(capsys.readouterr().out.split("tune complete")[-1])
    assert folder.name.endswith("_tune_quick")
    assert facts["study"] == [str(folder.relative_to(tmp_path).as_posix())]
    assert facts["best config"][0].endswith("best.yaml")
    assert any("fit --config" in line for line in facts["next"])
    assert (folder / "study.png").is_file()


@needs_data
def test_a_pruned_trial_keeps_the_epoch_it_stopped_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    # Every trial is pruned at its second epoch (the pruner waits one step).
    monkeypatch.setitem(
        tune.PRUNERS,
        "median",
        lambda: optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=1),
    )
    pruned = study(tmp_path, "--trials", "2", "--study", "pruned")
    trials = read_trials(pruned)
    assert [row["state"] for row in trials] == ["PRUNED", "PRUNED"]
    assert not (pruned / "best.yaml").exists()  # no complete trial
    for row in trials:
        run = tmp_path / row["run_dir"]
        assert read_json(run / "manifest.json")["status"] == "pruned"
        metrics = read_metrics(run)
        assert [r["epoch"] for r in metrics] == [0, 1]  # the pruned epoch is there
        # The trial's value is that epoch's, and `runs` shows the same.
        assert float(row["value"]) == metrics[-1]["val_loss"]
        listed = runs.read_row(row["run_dir"], run)
        assert listed.status == "pruned"
        assert listed.last == float(row["value"])
        with Image.open(run / "learning_curves.png") as image:  # its plot says so
            assert image.info["Title"].endswith("(pruned after epoch 1)")


@needs_data
def test_failed_trials_never_stop_the_study(tmp_path: Path) -> None:
    search = write(  # a dropout of 2 fails every trial
        tmp_path / "s.yaml",
        "model.net.init_args.dropout: {type: categorical, choices: [2.0]}\n",
    )
    failed = study(
        tmp_path, "--trials", "2", "--study", "failed", "--search", str(search)
    )
    assert [row["state"] for row in read_trials(failed)] == ["FAIL", "FAIL"]


@needs_data
def test_a_search_over_networks(tmp_path: Path) -> None:
    search = write(
        tmp_path / "s.yaml",
        "model.net: {type: categorical, choices: [MLP, CNN]}\n"
        "model.net.init_args.dropout: {type: float, low: 0.0, high: 0.5}\n",
    )
    folder = study(
        tmp_path, "--trials", "4", "--search", str(search), "--pruner", "none"
    )
    trials = read_trials(folder)
    assert {row["state"] for row in trials} == {"COMPLETE"}
    assert {row["model.net"] for row in trials} == {"MLP", "CNN"}
    for row in trials:
        config = yaml.safe_load((tmp_path / row["run_dir"] / "config.yaml").read_text())
        net = config["model"]["net"]
        assert net["class_path"].endswith(f".model.{row['model.net']}")
        assert net["init_args"]["dropout"] == float(row["model.net.init_args.dropout"])


{%- if cookiecutter.dataset == "digits" %}


def test_a_study_of_a_table(tmp_path: Path) -> None:
    """The shipped search space works on another DataModule's config."""
    rows = ["size,colour,kind"] + [
        f"{i % 7 + (10 if i % 2 else 0)},{'red' if i % 2 else 'blue'},{'ab'[i % 2]}"
        for i in range(80)
    ]
    write(tmp_path / "table.csv", "\n".join(rows) + "\n")
    table = {"path": str(tmp_path / "table.csv"), "target": "kind"}
    data = {"data": {"class_path": "TableDataModule", "init_args": table}}
    config = write(tmp_path / "table.yaml", yaml.safe_dump(data))
    folder = study(tmp_path, "--config", str(config), "--trials", "2")
    trials = read_trials(folder)
    assert {row["state"] for row in trials} == {"COMPLETE"}
    run = tmp_path / trials[0]["run_dir"]
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["class_path"].endswith("TableDataModule")
    batch = saved["data"]["init_args"]["batch_size"]
    assert batch == int(trials[0]["data.init_args.batch_size"])


{%- endif %}


@needs_data
def test_resume_continues_after_ctrl_c_and_a_dead_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = train.main

    def interrupt_trial_1(words: list[str], **kwargs: Any) -> None:
        if words[-1].endswith("trial-0001.yaml"):
            raise KeyboardInterrupt
        fit(words, **kwargs)

    monkeypatch.setattr(train, "main", interrupt_trial_1)
    with pytest.raises(SystemExit) as exit_info:
        study(tmp_path, "--trials", "3", "--study", "cut")
    assert exit_info.value.code == 130
    monkeypatch.setattr(train, "main", fit)
    folder = next((tmp_path / "runs").glob("*_tune_cut"))
    assert [row["state"] for row in read_trials(folder)] == ["COMPLETE", "FAIL"]

    # A worker that died mid-trial left trial 2 running, with no heartbeat since.
    monkeypatch.setattr(tune, "HEARTBEAT", (1, 1))
    cut = optuna.load_study(study_name="cut", storage=tune.open_storage(None, folder))
    stale = cut.ask()
    stale_lr = stale.suggest_float("model.lr", 0.001, 0.1, log=True)
    time.sleep(1.2)
    capsys.readouterr()

    again = run_main(tmp_path, "tune", *TINY, "--trials", "5", "--study", "cut")
    assert again is None  # no new study folder: the same one, continued
    facts = parse_summary(capsys.readouterr().out.split("tune complete")[-1])
    assert facts["marked failed"] == ["2 (their worker stopped)"]
    rows = read_trials(folder)
    assert [row["state"] for row in rows] == [
        "COMPLETE",
        "FAIL",
        "FAIL",
        "COMPLETE",
        "COMPLETE",
    ]
    # Trial 3 retried the dead worker's trial 2, with its values.
    assert float(rows[3]["model.lr"]) == stale_lr
    cut = optuna.load_study(study_name="cut", storage=tune.open_storage(None, folder))
    assert cut.trials[3].system_attrs["failed_trial"] == 2
    # The resumed worker sampled anew rather than repeating trial 0.
    assert rows[4]["model.lr"] != rows[0]["model.lr"]


@pytest.mark.slow
def test_two_workers_share_the_embedded_storage(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "{{ cookiecutter.package_name }}",
        "tune",
        *QUIET,
        *TINY,
        "--study",
        "shared",
        "--trials",
        "6",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    workers = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        errors = [worker.communicate(timeout=600)[1] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], errors
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    (folder,) = (tmp_path / "runs").glob("*_tune_shared")
    trials = read_trials(folder)
    numbers = [int(row["number"]) for row in trials]
    assert numbers == list(range(len(trials)))  # none lost, none twice
    assert len(trials) >= 6  # each worker may finish the trial it had started
    assert {row["state"] for row in trials} <= {"COMPLETE", "PRUNED"}
    run_dirs = sorted(path.name for path in folder.glob("*_fit_trial-*"))
    assert len(run_dirs) == len(trials)
    assert {name[-4:] for name in run_dirs} == {f"{n:04d}" for n in numbers}
    workers_seen = {
        read_json(path / "manifest.json")["trial"]["number"]
        for path in folder.glob("*_fit_trial-*")
    }
    assert workers_seen == set(numbers)
