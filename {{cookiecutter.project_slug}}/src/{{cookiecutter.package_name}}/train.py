"""Training and evaluation: ``fit``, ``validate``, ``test``, ``predict`` (LightningCLI).

Every option of the model, the data, the Trainer and the checkpointing can be
set in YAML (``--config configs/default.yaml``) or on the command line
(``--model.lr 0.01``); ``--print_config`` shows the result. On top of
LightningCLI this adds:

- a run folder per command (``--run.root``, ``--run.name``), holding the
  resolved config, a manifest, metrics, plots and checkpoints. Any string in
  the config may say ``{run_dir}`` (or ``{run_name}``) to point into it;
- ``fit --resume RUN``, which continues RUN from its last checkpoint;
- ``validate``/``test``/``predict --run RUN``, which score RUN's best
  checkpoint with its config (``--ckpt last`` for its last one); these
  commands refuse to run without trained weights;
- a summary at the end of every command (see ``callbacks.RunSummary``), and
  one-line errors for the common mistakes (``errors.UsageError``);
- reproducible defaults: a fixed seed and deterministic algorithms.

See ``docs/training.md`` for a walk-through.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.callbacks import ProgressBar as LightningProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from typing_extensions import override

from .callbacks import PredictionWriter, ProgressBar, RunFolder, RunSummary
{%- if cookiecutter.dataset == "digits" %}
from .data import DigitsDataModule as DataModule
from .errors import UsageError
{%- else %}
from .errors import UsageError
from .mnist import MNISTDataModule as DataModule
{%- endif %}
from .names import PROGRAM, SUMMARIES
from .run import (
    RUN_DIR,
{%- if cookiecutter.logger in ["mlflow", "wandb"] %}
    RUN_NAME,
{%- endif %}
    build_manifest,
    command_line,
    fill_placeholders,
    new_run_dir,
    open_run,
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
        words = sys.argv[1:] if args is None else args
        self.chosen = words[0] if words else ""
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
            parser_kwargs=parser_descriptions(self.subcommands()),
        )

    @override
    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        """The subcommand this command line was started with, or all four.

        ``cli.py`` has chosen the subcommand already, so only its parser is
        built: each of the others would cost as long again, since a parser
        reads every option of the model, the data and the Trainer. (Lightning
        declares this method static but calls it on the instance.)
        """
        every = LightningCLI.subcommands()
        return {self.chosen: every[self.chosen]} if self.chosen in every else every

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
        # The model standardises raw inputs with the training data's statistics.
        parser.link_arguments(
            "data.input_mean", "model.input_mean", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.input_std", "model.input_std", apply_on="instantiate"
        )

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, first spelling ``--resume RUN`` out into the options it stands for."""
        words = sys.argv[1:] if args is None else list(args)
        self.config = parser.parse_args(expand_run_options(words))
        subcommand = self.config.get("subcommand")
        if subcommand:  # before LightningCLI reads the checkpoint's hyperparameters
            check_checkpoint(subcommand, self.config[subcommand])

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Build the Trainer; a setting this machine cannot honour is a usage error.

        Lightning raises for an accelerator that is not there (naming those
        that are), or devices it cannot use; that is one line, not a traceback.
        The progress bar is :class:`~.callbacks.ProgressBar` unless it is
        turned off or ``trainer.callbacks`` names one.
        """
        trainer = self.config_init[str(self.subcommand)]["trainer"]
        given = trainer.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        if trainer.get("enable_progress_bar") is not False and not any(
            isinstance(callback, LightningProgressBar) for callback in given
        ):
            defaults = self.trainer_defaults.get("callbacks", [])
            self.trainer_defaults = {
                **self.trainer_defaults,
                "callbacks": [*defaults, ProgressBar()],
            }
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError) as error:
            message = " ".join(str(error).replace("`", "").split())
            raise UsageError(f"trainer: {message}") from error

    @override
    def before_instantiate_classes(self) -> None:
        """Choose the run folder, save its config and attach the run callbacks."""
        subcommand = str(self.subcommand)
        config = self.config[subcommand]
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        if config.resume and subcommand != "fit":
            raise UsageError(
                f"--resume continues training: use it with fit, not {subcommand};"
                f" to evaluate a run: {PROGRAM} {subcommand} --run RUN"
            )
        if config.resume:  # the run's checkpoints are meant to be there
            warnings.filterwarnings(
                "ignore", ".*Checkpoint directory .* exists and is not empty"
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
        record = RunFolder(run_dir, config_yaml, manifest)
        callbacks: list[Any] = [record, *self.extra_callbacks]
        if subcommand == "predict":
            callbacks.append(PredictionWriter(run_dir))
        callbacks.append(RunSummary(record))  # last: it reports what the others did
        # LightningCLI adds the callbacks of trainer_defaults to every Trainer.
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": callbacks}


def parser_descriptions(subcommands: Iterable[str]) -> dict[str, Any]:
    """``parser_kwargs`` for LightningCLI: ``--help`` texts that name the project.

    Args:
        subcommands: The subcommands whose parsers are built.
    """
    from . import __doc__ as package_doc

    # The package docstring: a first line, then the project's name and description.
    about = [" ".join(part.split()) for part in (package_doc or "").split("\n\n")[1:]]
    project = ": ".join(part for part in about if part)
    kwargs: dict[str, Any] = {"prog": PROGRAM, "description": project}
    for name in subcommands:
        if name in EVALUATING or name == "fit":
            text = f"{project.rstrip('.')}. {name}: {SUMMARIES[name]}"
            if name != "fit":
                text += EVALUATE_HELP
            kwargs[name] = {"description": text}
    return kwargs


EVALUATE_HELP = (
    " Give the trained weights with --run RUN (a run folder written by fit: its"
    " config and best checkpoint; add --ckpt last for its last checkpoint, or"
    " --ckpt FILE), or with --config FILE --ckpt_path FILE."
)
"""How ``validate``, ``test`` and ``predict`` get their checkpoint, for ``--help``."""

EVALUATING = ("validate", "test", "predict")
"""The subcommands that need trained weights."""


def expand_run_options(words: list[str]) -> list[str]:
    """Spell out ``--resume RUN``, ``--run RUN`` and ``--ckpt``; check given files.

    - ``fit --resume RUN``: RUN's config, its last checkpoint, and RUN as the
      folder to continue in.
    - ``--run RUN`` (validate, test, predict): RUN's config and its best
      checkpoint, or with ``--ckpt last`` its last one (``--ckpt FILE``: any
      checkpoint file).

    Options after these still override the run's config, for instance
    ``fit --resume runs/X --trainer.max_epochs 40`` trains X for longer.

    Raises:
        UsageError: A run folder that is not one, a checkpoint it lacks, or a
            ``--config`` file that does not exist or cannot be read.
    """
    subcommand = words[0] if words else ""
    expanded: list[str] = []
    run, ckpt = None, None
    remaining = iter(words)
    for word in remaining:
        option, equals, value = word.partition("=")
        if option not in ("--resume", "--run", "--ckpt", "--config"):
            expanded.append(word)
            continue
        value = value if equals else next(remaining, "")
        if not value or value.startswith("--"):
            raise UsageError(f"{option} needs a value")
        if option == "--resume":
            resumed = open_run(value)
            expanded += ["--config", str(resumed.config_path)]
            last = resumed.checkpoint("last")
            expanded += ["--ckpt_path", str(last), "--resume", value]
        elif option == "--config":
            check_readable("--config", Path(value), "config file")
            expanded += ["--config", value]
        elif option == "--run":
            run = open_run(value)
            expanded += ["--config", str(run.config_path)]
        else:
            ckpt = value
    if ckpt is not None and run is None:
        if ckpt in ("best", "last"):
            raise UsageError(
                f"--ckpt {ckpt} picks a checkpoint of --run RUN; add --run"
            )
        expanded += ["--ckpt_path", ckpt]
    elif run is not None:
        if subcommand not in EVALUATING:
            raise UsageError(
                f"--run RUN is for {', '.join(EVALUATING)}; to continue a run's"
                f" training: {PROGRAM} fit --resume RUN"
            )
        expanded += ["--ckpt_path", str(run.checkpoint(ckpt or "best"))]
    return expanded


def check_readable(option: str, path: Path, what: str) -> None:
    """Raise a :class:`UsageError` unless ``path`` is a file that can be read."""
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such {what}")
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as error:
        raise UsageError(
            f"{option} {path}: cannot read it ({error.strerror})"
        ) from None


def check_checkpoint(subcommand: str, config: Any) -> None:
    """Refuse to evaluate untrained weights, or a checkpoint that is not one.

    Raises:
        UsageError: ``validate``/``test``/``predict`` without a checkpoint
            (unless it is a ``fast_dev_run`` smoke test), or a ``ckpt_path``
            that is missing, unreadable or not a PyTorch checkpoint.
    """
    path = config.get("ckpt_path")
    if not path:
        if subcommand in EVALUATING and not config.trainer.fast_dev_run:
            raise UsageError(
                f"{subcommand} needs trained weights, or it would score a random"
                f" model: {PROGRAM} {subcommand} --run RUN (a folder in runs/;"
                " --ckpt last for its last checkpoint) or --ckpt_path FILE"
            )
        return
    if path in ("best", "last", "hpc", "registry") or "://" in path:
        return  # Lightning's own names and remote files: Lightning checks them
    check_readable("--ckpt_path", Path(path), "checkpoint")
    if not zipfile.is_zipfile(path):  # what torch.save writes
        raise UsageError(f"--ckpt_path {path}: not a PyTorch checkpoint file")


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
    # Python's garbage collector now and then walks every object the process
    # holds, and torch, Lightning and their kin hold hundreds of thousands that
    # live as long as it does: one such pass costs about as much as training
    # this model for a fifth of its epochs. Frozen, they are left out of every
    # pass until the command ends; whatever the command drops is still freed.
    # (A caller that froze objects itself keeps them frozen, as it chose.)
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        CLI(args, callbacks=callbacks, manifest=manifest)
    finally:
        if freeze:
            gc.unfreeze()
{%- if cookiecutter.logger == "wandb" %}
        # End the W&B run, so that the next run in this Python process (a
        # notebook, the tests) starts one of its own instead of reusing it.
        # WandbLogger imported wandb if a run was started at all.
        wandb = sys.modules.get("wandb")
        if wandb is not None:
            wandb.finish()
{%- endif %}
