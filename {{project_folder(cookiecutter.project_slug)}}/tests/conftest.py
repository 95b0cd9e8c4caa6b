"""Fixtures shared by the tests: data, a model, tiny Trainers and the CLI.

Everything runs in-process and on the CPU: importing Lightning takes seconds,
so no test starts Python again unless it has to (see test_distributed.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor

from {{ cookiecutter.package_name }}.cli import main
{%- if cookiecutter.dataset == "digits" %}
from {{ cookiecutter.package_name }}.data import DigitsDataModule as DataModule
{%- else %}
from {{ cookiecutter.package_name }}.mnist import MNISTDataModule as DataModule
{%- endif %}
from {{ cookiecutter.package_name }}.model import MLP
from {{ cookiecutter.package_name }}.system import Classifier

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT_ROOT / "configs"
SMOKE = str(CONFIGS / "smoke.yaml")
{%- if cookiecutter.dataset == "mnist" %}
DATA_DIR = PROJECT_ROOT / "data"
"""Where the CLI downloads MNIST by default; the tests share that download."""
{%- endif %}
QUIET = [
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
{%- if cookiecutter.dataset == "mnist" %}
    f"--data.data_dir={DATA_DIR}",
{%- endif %}
]
"""Options every CLI call in the tests starts with (later ones override them)."""

MakeModel = Callable[..., Classifier]
MakeTrainer = Callable[..., pl.Trainer]


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """Match the CLI's default: one thread is fastest for these tiny networks."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def datamodule() -> DataModule:
    """The project's DataModule, set up once (tests may only read it)."""
{%- if cookiecutter.dataset == "digits" %}
    data = DataModule(batch_size=32)
{%- else %}
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # a broken install raises more than ImportError
        pytest.skip(f"torchvision cannot be imported: {error}")
    data = DataModule(data_dir=str(DATA_DIR), batch_size=128)
    try:
        data.prepare_data()
    except Exception as error:  # URLError, OSError, RuntimeError: no network
        pytest.skip(f"MNIST could not be downloaded (offline?): {error}")
{%- endif %}
    data.setup()
    return data


@pytest.fixture
def batch(datamodule: DataModule) -> tuple[Tensor, Tensor]:
    """The first 32 training samples and their labels (a fixed batch of real data)."""
    samples = [datamodule.datasets["train"][i] for i in range(32)]
    return torch.stack([x for x, _ in samples]), torch.stack([y for _, y in samples])


def build_model(
    data: Any, net: torch.nn.Module | None = None, **hparams: Any
) -> Classifier:
    """A ``Classifier`` for ``data`` (a DataModule of the contract), as the CLI links.

    ``hidden_size`` and ``dropout`` go to the default ``MLP``; the rest to the system.
    """
    options = {
        key: hparams.pop(key) for key in ("hidden_size", "dropout") if key in hparams
    }
    if net is None:
        net = MLP(data.net_input_shape, data.num_classes, **options)
    return Classifier(
        net=net,
        num_classes=data.num_classes,
        preprocessing=json.dumps(data.input_spec),
        class_names=data.class_names,
        **hparams,
    )


@pytest.fixture
def make_model(datamodule: DataModule) -> MakeModel:
    """Build a model sized for the project's data, with any hyperparameters."""

    def make(**hparams: Any) -> Classifier:
        return build_model(datamodule, **hparams)

    return make


@pytest.fixture
def model(make_model: MakeModel) -> Classifier:
    """A freshly initialised model with the default hyperparameters."""
    pl.seed_everything(0, verbose=False)
    return make_model()


@pytest.fixture
def make_trainer(tmp_path: Path) -> MakeTrainer:
    """Build a quiet CPU Trainer: no logger, checkpoints or progress bar."""

    def make(**overrides: Any) -> pl.Trainer:
        options: dict[str, Any] = {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "deterministic": True,
            "default_root_dir": tmp_path,
        }
        return pl.Trainer(**(options | overrides))

    return make


def run_main(root: Path, subcommand: str, *args: str) -> Path | None:
    """Run ``main([subcommand, ...])`` in ``root``; return the new run folder.

    The Trainer runs on the CPU without a progress bar unless ``args`` say
    otherwise. Returns ``None`` when no new folder appears (say, a resume).
    """
    runs = root / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
{%- if cookiecutter.logger == "mlflow" %}
    # MLflow caches its store by URI, and ./mlruns means a new place per test.
    args = (f"--trainer.logger.save_dir={root / 'mlruns'}", *args)
{%- endif %}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # runs/ (and any logger's files) land here
        # LightningCLI warns when it is given arguments and sys.argv has some too.
        patch.setattr(sys, "argv", [sys.argv[0]])
        main([subcommand, *QUIET, *args])
    new = (set(runs.iterdir()) if runs.exists() else set()) - before
    assert len(new) <= 1, f"expected at most one new run folder, got {sorted(new)}"
    return new.pop() if new else None


@pytest.fixture
def call_cli(tmp_path: Path, datamodule: DataModule) -> Callable[..., Path | None]:
    """Run the CLI in ``tmp_path``; return the new run folder, if any."""

    def call(subcommand: str, *args: str) -> Path | None:
        return run_main(tmp_path, subcommand, *args)

    return call


@pytest.fixture
def run_cli(call_cli: Callable[..., Path | None]) -> Callable[..., Path]:
    """Run the CLI in ``tmp_path``; return the run folder it must create."""

    def run(subcommand: str, *args: str) -> Path:
        run_dir = call_cli(subcommand, *args)
        assert run_dir is not None, "the command created no run folder"
        return run_dir

    return run


@pytest.fixture(scope="session")
def configs() -> Path:
    """The project's configs/ folder."""
    return CONFIGS


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, datamodule: DataModule) -> Path:
    """The run folder of one ``fit --config configs/smoke.yaml`` (read-only)."""
    run_dir = run_main(tmp_path_factory.mktemp("smoke"), "fit", "--config", SMOKE)
    assert run_dir is not None
    return run_dir


@pytest.fixture(scope="session")
def export_run_dir(
    tmp_path_factory: pytest.TempPathFactory, smoke_run: Path
) -> tuple[Path, str]:
    """``export`` run once on a copy of the smoke run: the copy, and what it printed."""
    import contextlib
    import io
    import shutil

    copy = tmp_path_factory.mktemp("exported") / smoke_run.name
    shutil.copytree(smoke_run, copy)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["export", str(copy)])
    return copy, printed.getvalue()


@pytest.fixture(scope="session")
def exported(export_run_dir: tuple[Path, str]) -> Path:
    """The export folder of the smoke run's best checkpoint (read-only)."""
    return export_run_dir[0] / "export"
