"""Training and evaluation: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI).

Every option of the model, the data, the Trainer and the checkpointing can be
set in YAML (``--config configs/default.yaml``) or on the command line
(``--model.lr 0.01``); ``--print_config`` shows the result. On top of
LightningCLI this adds:

- a run folder per command (``--run.root``, ``--run.name``), holding the
  resolved config, a manifest, metrics, plots and checkpoints. Any string in
  the config may say ``{run_dir}`` (or ``{run_name}``) to point into it;
- ``fit --resume RUN``, which continues RUN from its last checkpoint;
- reproducible defaults: a fixed seed and deterministic algorithms.

See ``docs/training.md`` for a walk-through.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from typing_extensions import override

from .callbacks import PredictionWriter, RunFolder
{%- if cookiecutter.dataset == "digits" %}
from .data import DigitsDataModule as DataModule
{%- else %}
from .mnist import MNISTDataModule as DataModule
{%- endif %}
from .run import (
    CONFIG,
    LAST_CHECKPOINT,
    RUN_DIR,
{%- if cookiecutter.logger in ["mlflow", "wandb"] %}
    RUN_NAME,
{%- endif %}
    build_manifest,
    command_line,
    fill_placeholders,
    new_run_dir,
)
from .system import Classifier

SEED = 42
"""The default seed: every run is reproducible unless told otherwise."""

LOGGER: dict[str, Any] = {
{%- if cookiecutter.logger == "csv" %}
    # CSV files in <run>/logs/version_<N>, one version per (resumed) session.
    "class_path": "lightning.pytorch.loggers.CSVLogger",
    "init_args": {"save_dir": RUN_DIR, "name": "logs"},
{%- elif cookiecutter.logger == "tensorboard" %}
    # Event files in <run>/tensorboard; `tensorboard --logdir runs` shows all runs.
    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
    "init_args": {
        "save_dir": RUN_DIR,
        "name": "tensorboard",
        "version": "",
        "default_hp_metric": False,
    },
{%- elif cookiecutter.logger == "mlflow" %}
    # One local store for all runs, ./mlruns ($MLFLOW_TRACKING_URI wins when
    # set); each run is named after its run folder. `mlflow ui` shows them.
    "class_path": "lightning.pytorch.loggers.MLFlowLogger",
    "init_args": {
        "experiment_name": "{{ cookiecutter.project_slug }}",
        "run_name": RUN_NAME,
        "save_dir": "./mlruns",
    },
{%- elif cookiecutter.logger == "wandb" %}
    # Weights & Biases files in <run>/wandb; offline unless WANDB_API_KEY is
    # set (see main()); `wandb sync` uploads an offline run later.
    "class_path": "lightning.pytorch.loggers.WandbLogger",
    "init_args": {
        "project": "{{ cookiecutter.project_slug }}",
        "name": RUN_NAME,
        "save_dir": RUN_DIR,
    },
{%- endif %}
}
"""The experiment logger (``trainer.logger``), writing into the run folder."""

TRAINER_DEFAULTS: dict[str, Any] = {
    "deterministic": True,
    "log_every_n_steps": 10,
    "default_root_dir": RUN_DIR,
    "logger": LOGGER,
}
"""Trainer options that differ from Lightning's own defaults."""

TUNED_DEFAULTS: dict[str, Any] = {
{%- if cookiecutter.dataset == "digits" %}
    "trainer.max_epochs": 20,  # about 0.97 validation accuracy, in a second or two
{%- else %}
    "trainer.max_epochs": 5,
    "model.hidden_size": 128,
    "model.lr": 0.001,
{%- endif %}
}
"""Settings tuned for the dataset (configs/default.yaml shows the same)."""

CHECKPOINT_DEFAULTS: dict[str, Any] = {
    "dirpath": f"{RUN_DIR}/checkpoints",
    "filename": "best",
    "monitor": "val_loss",
    "mode": "min",
    "save_last": True,
    "enable_version_counter": False,  # resuming overwrites, never adds last-v1.ckpt
}
"""``checkpoint.*``: keep ``best.ckpt`` (lowest ``val_loss``) and ``last.ckpt``."""


class CLI(LightningCLI):
    """LightningCLI for ``Classifier`` on the project's DataModule."""

    def __init__(
        self,
        args: list[str] | None = None,
        *,
        callbacks: Sequence[Callback] = (),
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        """Parse ``args``, build the model, data and Trainer, and run.

        Args:
            args: Command-line words (``["fit", "--trainer.max_epochs", "5"]``);
                ``None`` reads ``sys.argv``.
            callbacks: More Trainer callbacks, for a caller running the CLI
                in-process (``tune`` adds its pruning callback).
            manifest: More manifest entries (``tune`` records the trial).
        """
        self.command = command_line(args)
        self.extra_callbacks = list(callbacks)
        self.extra_manifest = dict(manifest or {})
        super().__init__(
            Classifier,
            DataModule,
            args=args,
            seed_everything_default=SEED,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_callback=None,  # RunFolder saves it, in the run folder
            auto_configure_optimizers=False,  # the model configures its optimiser
        )

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the run folder, resume and checkpoint options; link data to model."""
        parser.add_argument(
            "--run.root", type=str, default="runs", help="Folder of all run folders."
        )
        parser.add_argument(
            "--run.name", type=str, default="", help="Label for the run folder's name."
        )
        parser.add_argument(
            "--resume",
            type=str | None,
            default=None,
            help=(
                "fit only: continue the run in this run folder from its last"
                " checkpoint, with its config (later options override it)."
            ),
        )
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=1,
            help=(
                "CPU threads for PyTorch's operations (null: one per core). One is"
                " fastest for small networks; results are bit-identical only for"
                " the same number."
            ),
        )
        parser.set_defaults(TUNED_DEFAULTS)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {f"checkpoint.{key}": value for key, value in CHECKPOINT_DEFAULTS.items()}
        )
        # The data decides the model's input and output sizes.
        parser.link_arguments(
            "data.num_features", "model.in_features", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.num_classes", "model.num_classes", apply_on="instantiate"
        )

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, first spelling ``--resume RUN`` out into the options it stands for."""
        words = sys.argv[1:] if args is None else list(args)
        self.config = parser.parse_args(_expand_resume(words, parser))

    @override
    def before_instantiate_classes(self) -> None:
        """Choose the run folder, save its config and attach the run callbacks."""
        subcommand = str(self.subcommand)
        config = self.config[subcommand]
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        if config.resume and subcommand != "fit":
            self.parser.error(
                f"--resume continues training: use it with fit, not {subcommand}."
                f" To evaluate a run: {subcommand} --config RUN/{CONFIG}"
                f" --ckpt_path RUN/{LAST_CHECKPOINT}"
            )
        run_dir = (
            Path(config.resume)
            if config.resume
            else new_run_dir(Path(config.run.root), subcommand, config.run.name)
        )
        # The saved config keeps its placeholders (and no resume pointers), so
        # `--config RUN/config.yaml` starts a fresh run and `--resume RUN` continues.
        saved = config.clone()
        if config.resume:
            saved.resume = saved.ckpt_path = None
        config_yaml = self._parser(subcommand).dump(saved, skip_unset=False)
        fill_placeholders(config, run_dir)
        if subcommand != "fit":  # evaluating needs no checkpoint state restored
            warnings.filterwarnings("ignore", ".*The dirpath has changed from")
        if config.trainer.fast_dev_run:  # a smoke test leaves no run folder behind
            config.checkpoint.save_last = False  # Lightning would still write it
            return
        seed = config.seed_everything  # an int by now, or False for no seeding
        manifest = build_manifest(
            subcommand=subcommand,
            command=self.command,
            seed=None if seed is False else seed,
            run_dir=run_dir,
        )
        manifest["ckpt_path"] = config.get("ckpt_path")
        manifest.update(self.extra_manifest)
        callbacks: list[Any] = [RunFolder(run_dir, config_yaml, manifest)]
        callbacks += self.extra_callbacks
        if subcommand == "predict":
            callbacks.append(PredictionWriter(run_dir))
        # LightningCLI adds the callbacks of trainer_defaults to every Trainer.
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": callbacks}


def _expand_resume(words: list[str], parser: LightningArgumentParser) -> list[str]:
    """Replace ``--resume RUN`` by RUN's config, its last checkpoint and RUN.

    Options after ``--resume`` still override the run's config, for instance
    ``fit --resume runs/X --trainer.max_epochs 40`` trains X for longer.
    """
    expanded: list[str] = []
    remaining = iter(words)
    for word in remaining:
        if word != "--resume" and not word.startswith("--resume="):
            expanded.append(word)
            continue
        run = Path(word.partition("=")[2] or next(remaining, ""))
        for needed in (run / CONFIG, run / LAST_CHECKPOINT):
            if not needed.is_file():
                parser.error(f"--resume {run}: {needed} not found; is it a run folder?")
        expanded += ["--config", str(run / CONFIG)]
        expanded += ["--ckpt_path", str(run / LAST_CHECKPOINT), "--resume", str(run)]
    return expanded


def _hide_lightning_tips(record: logging.LogRecord) -> bool:
    """Logging filter that drops Lightning's advertising tips."""
    return not record.getMessage().startswith("💡")


def main(
    args: list[str] | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    manifest: Mapping[str, Any] | None = None,
) -> None:
    """Run LightningCLI; ``args`` replaces ``sys.argv[1:]`` when given.

    Args:
        args: Command-line words, the subcommand first, e.g.
            ``["fit", "--config", "configs/default.yaml"]``.
        callbacks: More Trainer callbacks (see :class:`CLI`).
        manifest: More manifest entries (see :class:`CLI`).
    """
    # cuBLAS needs this for deterministic GPU results (harmless elsewhere).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
{%- if cookiecutter.logger == "mlflow" %}
    # MLflow 3 refuses its file store (./mlruns) unless allowed; it still works
    # fine for one user. Set MLFLOW_TRACKING_URI to use a server or database.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
{%- endif %}
{%- if cookiecutter.logger == "wandb" %}
    # Without an API key, log offline (sync later with `wandb sync`).
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")
{%- endif %}
    # The data fits in memory: loading in the main process is the fastest.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Raised inside Lightning by newer torch; nothing to act on here.
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        _hide_lightning_tips
    )
{%- if cookiecutter.logger == "wandb" %}
    try:
        CLI(args, callbacks=callbacks, manifest=manifest)
    finally:
        # End the W&B run, so that the next run in this Python process (a
        # notebook, the tests) starts one of its own instead of reusing it.
        # WandbLogger imported wandb if a run was started at all.
        wandb = sys.modules.get("wandb")
        if wandb is not None:
            wandb.finish()
{%- else %}
    CLI(args, callbacks=callbacks, manifest=manifest)
{%- endif %}
