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

import difflib
import gc
import importlib
import inspect
import json
import logging
import os
import re
import sys
import warnings
import zipfile
from argparse import ArgumentError
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.callbacks import ProgressBar as LightningProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from typing_extensions import override

# The DataModules and networks are imported so that the command line knows
# them by their short names (`--data TableDataModule`, `--model.net CNN`).
from . import images, model, tables  # noqa: F401
from .callbacks import RunFolder, RunSummary
{%- if cookiecutter.dataset == "digits" %}
from .data import DigitsDataModule as DataModule
from .errors import UsageError
{%- else %}
from .errors import UsageError
from .mnist import MNISTDataModule as DataModule
{%- endif %}
from .names import PROGRAM, SUMMARIES
from .predictions import PredictionWriter
from .progress import ProgressBar
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
from .summary import command_summary
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

NET = "{{ cookiecutter.package_name }}.model.MLP"
"""The default network's class path (``--model.net`` picks another)."""

TUNED_DEFAULTS: dict[str, Any] = {
    "data": {"class_path": f"{DataModule.__module__}.{DataModule.__name__}"},
{%- if cookiecutter.dataset == "digits" %}
    "model.net": {"class_path": NET, "init_args": {"hidden_size": 64}},
    "trainer.max_epochs": 20,  # about 0.97 validation accuracy, in a second or two
{%- else %}
    "model.net": {"class_path": NET, "init_args": {"hidden_size": 128}},
    "trainer.max_epochs": 5,
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
    """LightningCLI for ``Classifier`` on any DataModule, one command at a time.

    ``cli.py`` has chosen the command already, so LightningCLI parses that
    command's options alone (``run=False``: one parser, not one per
    subcommand) and :func:`run_command` calls the Trainer.
    """

    def __init__(
        self,
        command: str,
        args: list[str],
        *,
        callbacks: Sequence[Callback] = (),
        manifest: Mapping[str, Any] | None = None,
        invocation: list[str] | None = None,
        instantiate: bool = True,
    ) -> None:
        """Parse ``args``, then (unless ``instantiate`` is false) build everything.

        Args:
            command: ``fit``, ``validate``, ``test`` or ``predict``.
            args: The command's options (``["--trainer.max_epochs", "5"]``).
            callbacks: More Trainer callbacks, for a caller running the CLI
                in-process (``tune`` adds its pruning callback).
            manifest: More manifest entries (``tune`` records the trial).
            invocation: The command line, as the manifest records it.
            instantiate: ``False`` parses and checks the options only.
        """
        self.command = command
        self.words = invocation or command_line([command, *args])
        self.extra_callbacks = list(callbacks)
        self.extra_manifest = dict(manifest or {})
        self.instantiate = instantiate
        super().__init__(
            Classifier,
            pl.LightningDataModule,
            subclass_mode_data=True,
            args=args,
            run=False,
            seed_everything_default=SEED,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_callback=None,  # RunFolder saves it, in the run folder
            auto_configure_optimizers=False,  # the model configures its optimiser
            parser_kwargs={
                "prog": f"{PROGRAM} {command}",
                "description": description(command),
                "exit_on_error": False,  # parse_arguments makes errors one line
                "allow_abbrev": False,  # --trainer.max_epoch is a typo, not a prefix
            },
        )

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the run folder, checkpoint and resume options; link data to model."""
        parser.add_argument(
            "--run.root", type=str, default="runs", help="Folder of all run folders."
        )
        parser.add_argument(
            "--run.name", type=str, default="", help="Label for the run folder's name."
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="The checkpoint to evaluate, or (fit) to continue from.",
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
        # The data decides the network's input and output sizes, and the
        # statistics the model preprocesses raw inputs with.
        for source, target in (
            ("data.net_input_shape", "model.net.init_args.input_shape"),
            ("data.num_classes", "model.net.init_args.num_classes"),
            ("data.num_classes", "model.num_classes"),
            ("data.class_names", "model.class_names"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")
        # As JSON text: a string is kept as it is, where values of a dict would
        # be read as YAML (a column named "yes" would become True).
        parser.link_arguments(
            "data.input_spec", "model.preprocessing", json.dumps, apply_on="instantiate"
        )

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse; a mistake is one line naming the option (and the closest one)."""
        try:
            self.config = parser.parse_args(args)
        except ArgumentError as error:
            raise UsageError(parse_error(parser, str(error))) from None
        check_checkpoint(self.command, self.config)

    @override
    def instantiate_classes(self) -> None:
        """Build the data, model and Trainer, unless only parsing."""
        if self.instantiate:
            super().instantiate_classes()

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Build the Trainer; a setting this machine cannot honour is a usage error.

        Lightning raises for an accelerator that is not there (naming those
        that are), or devices it cannot use; that is one line, not a traceback.
        The progress bar is :class:`~.callbacks.ProgressBar` unless it is
        turned off or ``trainer.callbacks`` names one.
        """
        trainer = self.config_init["trainer"]
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
        if not self.instantiate:
            return
        command, config = self.command, self.config
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        if config.resume and command != "fit":
            raise UsageError(
                f"--resume continues training: use it with fit, not {command};"
                f" to evaluate a run: {PROGRAM} {command} --run RUN"
            )
        if config.resume:  # the run's checkpoints are meant to be there
            warnings.filterwarnings(
                "ignore", ".*Checkpoint directory .* exists and is not empty"
            )
        run_dir = (
            Path(config.resume)
            if config.resume
            else new_run_dir(Path(config.run.root), command, config.run.name)
        )
        # The saved config keeps its placeholders (and no resume pointers), so
        # `--config RUN/config.yaml` starts a fresh run and `--resume RUN` continues.
        saved = config.clone()
        if config.resume:
            saved.resume = saved.ckpt_path = None
        config_yaml = self.parser.dump(saved, skip_unset=False)
        fill_placeholders(config, run_dir)
        if command != "fit":  # evaluating needs no checkpoint state restored
            warnings.filterwarnings("ignore", ".*The dirpath has changed from")
        if config.trainer.fast_dev_run:  # a smoke test leaves no run folder behind
            config.checkpoint.save_last = False  # Lightning would still write it
            return
        seed = config.seed_everything  # an int by now, or False for no seeding
        manifest = build_manifest(
            subcommand=command,
            command=self.words,
            seed=None if seed is False else seed,
            run_dir=run_dir,
        )
        manifest["ckpt_path"] = config.get("ckpt_path")
        manifest.update(self.extra_manifest)
        record = RunFolder(run_dir, config_yaml, manifest)
        callbacks: list[Any] = [record, *self.extra_callbacks]
        if command == "predict":
            callbacks.append(PredictionWriter(run_dir))
        callbacks.append(RunSummary(record))  # last: it reports what the others did
        # LightningCLI adds the callbacks of trainer_defaults to every Trainer.
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": callbacks}


def description(command: str) -> str:
    """The ``--help`` text of a command: the project, then what the command does."""
    from . import __doc__ as package_doc

    # The package docstring: a first line, then the project's name and description.
    about = [" ".join(part.split()) for part in (package_doc or "").split("\n\n")[1:]]
    project = ": ".join(part for part in about if part)
    text = f"{project.rstrip('.')}. {command}: {SUMMARIES[command]}"
    return text + (EVALUATE_HELP if command in EVALUATING else "")


def parse_error(parser: LightningArgumentParser, message: str) -> str:
    """One line for a parser's error: the option, the rule, the closest valid option.

    Args:
        parser: The command's parser (its options are the candidates).
        message: jsonargparse's message.
    """
    unknown = re.search(r"unrecognized arguments: --([^\s=]+)", message)
    group = re.search(
        r"Group '([^']+)' does not accept (?:option|key) '([^']+)'", message
    )
    nested = re.search(
        r'Parser key "([^"]+)":.*?Problem with given class_path \'([^\']+)\':'
        r"\s+(?:Option|Key) '([^']+)' is not accepted",
        message,
        re.DOTALL,
    )
    if nested:  # an option of a chosen class: its own parameters are the candidates
        prefix, class_path, name = nested.groups()
        key = f"{prefix}.{name}"
        candidates = [f"{prefix}.{option}" for option in init_parameters(class_path)]
    elif unknown is not None or group is not None:
        key = unknown.group(1) if unknown else ".".join(group.groups() if group else ())
        defaults = parser.get_defaults().keys()  # a Namespace: not iterable
        candidates = [name.replace(".init_args.", ".") for name in defaults]
    else:
        lines = [
            " ".join(line.split()) for line in message.splitlines() if line.strip()
        ]
        first = (
            re.sub(r'^Parser key "([^"]+)":', r"--\1:", lines[0]) if lines else message
        )
        return " ".join([first, *lines[1:]])[:300]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    hint = (
        f"did you mean --{close[0]}?"
        if close
        else f"`{parser.prog} --help` lists the options"
    )
    return f"--{key}: unknown option; {hint}"


def init_parameters(class_path: str) -> list[str]:
    """The parameters of a class's ``__init__`` (none if it cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("self",)]
    except (ImportError, AttributeError, ValueError, TypeError):
        return []


def parse_config(args: list[str]) -> dict[str, Any]:
    """The resolved config of a ``fit`` command, as a plain dict; nothing is built.

    Args:
        args: The command's words, ``fit`` first, e.g.
            ``["fit", "--config", "base.yaml", "--config", "trial.yaml"]``.

    Raises:
        UsageError: An unknown option (naming the closest valid one), a
            value of the wrong type, or a file that cannot be read.
    """
    command, options = args[0], expand_run_options(args[0], list(args[1:]))
    config: dict[str, Any] = CLI(command, options, instantiate=False).config.as_dict()
    return config


def run_command(cli: CLI) -> None:
    """Call the Trainer's method for the CLI's command, with its checkpoint."""
    method = getattr(cli.trainer, cli.command)
    method(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))


EVALUATE_HELP = (
    " Give the trained weights with --run RUN (a run folder written by fit: its"
    " config and best checkpoint; add --ckpt last for its last checkpoint, or"
    " --ckpt FILE), or with --config FILE --ckpt_path FILE."
)
"""How ``validate``, ``test`` and ``predict`` get their checkpoint, for ``--help``."""

EVALUATING = ("validate", "test", "predict")
"""The subcommands that need trained weights."""


def expand_run_options(subcommand: str, words: list[str]) -> list[str]:
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
    words = sys.argv[1:] if args is None else list(args)
    command, options = words[0], expand_run_options(words[0], words[1:])
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
        cli = CLI(
            command,
            options,
            callbacks=callbacks,
            manifest=manifest,
            invocation=command_line(args),
        )
        try:
            run_command(cli)
        finally:  # also after a failure: what the run folder kept
            outcome = RunSummary.collected(cli.trainer)
            if outcome is not None:
                command_summary(outcome).print()
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
