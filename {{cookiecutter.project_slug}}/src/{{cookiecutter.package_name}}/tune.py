"""Hyperparameter search with Optuna: ``tune``.

A study samples the keys of a search space (``configs/search.yaml``) and runs
one ordinary ``fit`` per trial, in this process, each into a run folder of
its own inside the study folder ``runs/<stamp>_tune[_<name>]/``. Optuna's
Lightning pruning callback (``optuna-integration``) stops unpromising trials;
failed and pruned trials are recorded and never stop the study. The study
folder also gets ``trials.csv``, ``best.yaml`` (a complete config: ``fit
--config STUDY/best.yaml`` repeats the best trial exactly) and ``study.png``.

Storage: by default Optuna's journal file ``STUDY/journal.log``, which several
``tune`` processes on one machine share (start each with the same ``--study
NAME``); ``--storage postgresql+psycopg://...`` (or ``mysql+pymysql://...``)
shares one study between machines. Running ``tune`` again with the same
study (and storage) continues it; a trial whose worker died is marked failed.

See ``docs/training.md`` for a walk-through.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import (
    JournalFileBackend,
    JournalFileOpenLock,
    JournalStorage,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from . import train
from .errors import UsageError
from .names import PROGRAM
from .run import CONFIG, MANIFEST, new_run_dir, open_run
from .summary import Summary

SEARCH = Path("configs/search.yaml")
"""The default search space."""
JOURNAL = "journal.log"
"""The study's journal file (the default storage), in the study folder."""
STUDY = "study.json"
"""What the study is (name, storage, metric, direction); marks a study folder."""
TRIALS = "trials.csv"
"""One row per trial: number, state, params, value, duration, run folder."""
BEST = "best.yaml"
"""The best trial's complete config, for ``fit --config``."""
STUDY_PLOT = "study.png"
"""Optimisation history and parameter importances."""

PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    # Stop a trial whose value is worse than the median of earlier trials at
    # the same epoch, once 5 trials have finished, from the third epoch on.
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(),
    "none": lambda: optuna.pruners.NopPruner(),
}
"""``--pruner`` choices."""

DISTRIBUTIONS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}
"""Each distribution's fields (besides ``type``) in ``search.yaml``."""

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class TrialFailedError(RuntimeError):
    """A trial that ran but gave no value (Optuna records it as failed)."""


def load_search_space(path: Path) -> dict[str, BaseDistribution]:
    """The search space in ``path``: config key -> Optuna distribution.

    Raises:
        UsageError: The file is missing or malformed, or a distribution breaks
            a rule (unknown type or field, ``low >= high``, ``log`` with a
            bound that is not positive, no choices).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"{path}: cannot read the search space ({error})") from None
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise UsageError(f"{path}: not valid YAML ({problem})") from None
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected a mapping of config keys to distributions")
    return {
        str(key): parse_distribution(path, str(key), spec) for key, spec in data.items()
    }


def parse_distribution(path: Path, key: str, spec: Any) -> BaseDistribution:
    """One entry of ``search.yaml`` as an Optuna distribution.

    Raises:
        UsageError: The entry breaks a rule (see :func:`load_search_space`).
    """
    where = f"{path}: {key}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise UsageError(
            f"{where}: expected a mapping with a 'type' (float, int, categorical)"
        )
    kind = spec["type"]
    if kind not in DISTRIBUTIONS:
        raise UsageError(
            f"{where}: unknown distribution type {kind!r};"
            f" use one of {', '.join(DISTRIBUTIONS)}"
        )
    unknown = sorted(set(spec) - DISTRIBUTIONS[kind] - {"type"})
    if unknown:
        raise UsageError(
            f"{where}: unknown field {unknown[0]!r} for a {kind} distribution"
            f" (fields: {', '.join(sorted(DISTRIBUTIONS[kind]))})"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UsageError(f"{where}: 'choices' must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise UsageError(
                    f"{where}: choice {choice!r} is not a number, string or null"
                )
        return CategoricalDistribution(choices)
    number = int if kind == "int" else (int, float)
    bounds = []
    for field in ("low", "high"):
        value = spec.get(field)
        if isinstance(value, bool) or not isinstance(value, number):
            raise UsageError(
                f"{where}: '{field}' must be"
                f" {'an integer' if kind == 'int' else 'a number'}"
            )
        bounds.append(value)
    low, high = bounds
    if low >= high:
        raise UsageError(f"{where}: low must be below high (got {low} >= {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"{where}: 'log' must be true or false")
    step = spec.get("step")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, number) or step <= 0
    ):
        raise UsageError(
            f"{where}: 'step' must be a positive"
            f" {'integer' if kind == 'int' else 'number'}"
        )
    if log and low <= 0:
        raise UsageError(f"{where}: log: true needs a positive low bound (got {low})")
    if log and step is not None and (kind == "float" or step != 1):
        raise UsageError(f"{where}: 'step' cannot be combined with log: true")
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=step)


def resolve_config(fit_args: Sequence[str]) -> dict[str, Any]:
    """The complete ``fit`` config that ``fit_args`` give (``fit --print_config``)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            train.main(["fit", *fit_args, "--print_config"])
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise  # the parser has said what is wrong with the options
    config = yaml.safe_load(printed.getvalue())
    if not isinstance(config, dict):
        raise UsageError("fit --print_config printed no config")
    return config


def lookup(config: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted ``key`` in a nested config."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def assign(config: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` of a nested config to ``value``."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def suggest(trial: Trial, key: str, distribution: BaseDistribution) -> Any:
    """Ask ``trial`` for ``key``'s value from ``distribution``."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            key,
            distribution.low,
            distribution.high,
            log=distribution.log,
            step=distribution.step,
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            key,
            distribution.low,
            distribution.high,
            log=distribution.log,
            step=distribution.step,
        )
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(key, distribution.choices)


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def open_storage(url: str | None, folder: Path | None) -> BaseStorage:
    """The study's storage: ``url`` (an RDB URL), else the journal in ``folder``.

    Raises:
        UsageError: ``url`` cannot be opened (bad URL, missing driver, no server).
    """
    if url is None:
        assert folder is not None
        return JournalStorage(
            JournalFileBackend(
                str(folder / JOURNAL),
                lock_obj=JournalFileOpenLock(str(folder / JOURNAL)),
            )
        )
    try:
        # A worker that stops beating for 2 minutes has its trial marked failed.
        with warnings.catch_warnings():  # heartbeats are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, heartbeat_interval=30, grace_period=120)
    except Exception as error:  # SQLAlchemy's many errors, a missing driver
        problem = " ".join(str(error).split())[:200]
        raise UsageError(
            f"--storage {mask(url)}: cannot open it ({type(error).__name__}: {problem})"
        ) from None


def find_study_folder(root: Path, study: str) -> Path | None:
    """The existing study folder that ``--study`` names, if any.

    ``study`` is a study folder's path or a name: ``runs/*_tune_NAME`` (the
    oldest, when there are several).
    """
    if (Path(study) / STUDY).is_file():
        return Path(study)
    if not _NAME.fullmatch(study):
        return None
    found = sorted(path for path in root.glob(f"*_tune_{study}") if path.is_dir())
    return found[0] if found else None


def create_study_folder(root: Path, name: str) -> tuple[Path, bool]:
    """A study folder for ``name`` (``""``: a new unnamed one), and if it is new.

    Workers started together with the same name agree on the oldest folder.
    """
    while True:
        folder = new_run_dir(root, "tune", name)
        try:
            folder.mkdir(parents=True)
        except FileExistsError:  # another worker took this name this second
            continue
        if not name:
            return folder, True
        oldest = find_study_folder(root, name)
        if oldest is not None and oldest != folder:
            folder.rmdir()
            return oldest, False
        return folder, True


def worker_alive(worker: str) -> bool:
    """Whether the ``host:pid`` worker may still run (others' hosts: assume so)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or os.name == "nt":
        return True  # Windows has no harmless probe; RDB heartbeats still apply
    if int(pid) == os.getpid():
        return False  # an earlier study in this very process, cut off
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(
    study: optuna.Study, storage: BaseStorage, folder: Path
) -> list[int]:
    """Mark the running trials of dead workers on this machine as failed.

    Returns:
        The numbers of the trials marked.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    marked = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        if not worker or worker_alive(worker):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            study_id, trial.number
        )
        storage.set_trial_user_attr(trial_id, "error", f"worker {worker} stopped")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        marked.append(trial.number)
        for run_dir in folder.glob(f"*_fit_{trial_name(trial.number)}"):
            _mark_manifest(run_dir, f"worker {worker} stopped during the trial")
    return marked


def _mark_manifest(run_dir: Path, error: str) -> None:
    """Record in a dead trial's manifest that it failed."""
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(manifest, dict) and manifest.get("status") == "running":
        manifest |= {"status": "failed", "error": error}
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def trial_name(number: int) -> str:
    """The run name of trial ``number`` (its run folder ends in it)."""
    return f"trial-{number:04d}"


class Tuner:
    """One worker of a study: runs trials until the study has enough."""

    def __init__(
        self,
        *,
        study: optuna.Study,
        folder: Path,
        space: Mapping[str, BaseDistribution],
        fit_args: Sequence[str],
        metric: str,
    ) -> None:
        """Remember the study and how to run its trials.

        Args:
            study: The Optuna study.
            folder: The study folder (trial run folders go in it).
            space: The search space.
            fit_args: Options given to every trial's ``fit``.
            metric: The metric to optimise (the best value over the epochs).
        """
        self.study = study
        self.folder = folder
        self.space = space
        self.fit_args = list(fit_args)
        self.metric = metric
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(self, trial: Trial) -> float:
        """Run one trial's ``fit``; its value is the best ``metric`` of its epochs."""
        trial.set_user_attr("worker", self.worker)
        params = {key: suggest(trial, key, dist) for key, dist in self.space.items()}
        name = trial_name(trial.number)
        words = [
            "fit",
            *_QUIET,
            *self.fit_args,
            *(f"--{key}={json.dumps(value)}" for key, value in params.items()),
            f"--run.root={self.folder}",
            f"--run.name={name}",
        ]
        from optuna_integration import PyTorchLightningPruningCallback

        pruning = PyTorchLightningPruningCallback(trial, monitor=self.metric)
        study = {
            "study": self.study.study_name,
            "number": trial.number,
            "params": params,
        }
        try:
            train.main(words, callbacks=[pruning], manifest={"trial": study})
        except SystemExit as exit_:  # the parser rejected a sampled value
            raise TrialFailedError(
                f"fit rejected the options (status {exit_.code})"
            ) from None
        finally:
            for run_dir in self.folder.glob(f"*_fit_{name}"):
                trial.set_user_attr("run_dir", run_dir.as_posix())
        run_dirs = list(self.folder.glob(f"*_fit_{name}"))
        if not run_dirs:
            raise TrialFailedError("fit wrote no run folder")
        values = [
            row[self.metric]
            for row in open_run(run_dirs[0]).metrics()
            if self.metric in row
        ]
        if not values:
            raise TrialFailedError(f"{self.metric} was never logged")
        maximize = self.study.direction == optuna.study.StudyDirection.MAXIMIZE
        return float(max(values) if maximize else min(values))

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Keep ``trials.csv`` up to date after every trial."""
        write_trials(study, self.folder)

    def run(self, trials: int, timeout: float | None) -> None:
        """Run trials until the study holds ``trials`` or ``timeout`` seconds pass."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self.study.get_trials(deepcopy=False)) < trials:
            if deadline is not None and time.monotonic() >= deadline:
                return
            self.study.optimize(
                self.objective,
                n_trials=1,
                catch=(Exception,),
                callbacks=[self.after_trial],
            )


def write_trials(study: optuna.Study, folder: Path) -> Path:
    """Write ``trials.csv`` (atomically: several workers may write it)."""
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(key for trial in trials for key in trial.params))
    rows = [
        {
            "number": trial.number,
            "state": trial.state.name,
            **{key: trial.params.get(key, "") for key in keys},
            "value": "" if trial.value is None else repr(trial.value),
            "duration_s": (
                ""
                if trial.duration is None
                else round(trial.duration.total_seconds(), 3)
            ),
            "run_dir": trial.user_attrs.get("run_dir", ""),
        }
        for trial in trials
    ]
    path = folder / TRIALS
    partial = folder / f".{TRIALS}.{os.getpid()}"
    with partial.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(
            file, ["number", "state", *keys, "value", "duration_s", "run_dir"]
        )
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
    return path


def best_config(
    best: FrozenTrial, base: Mapping[str, Any], study_name: str
) -> dict[str, Any]:
    """The best trial's complete config, writing into ``runs/`` again.

    The trial's own ``config.yaml`` when its run folder is here, else the base
    config with the trial's params (a trial run on another machine).
    """
    run_dir = Path(str(best.user_attrs.get("run_dir", "")))
    config: dict[str, Any]
    if run_dir.name and (run_dir / CONFIG).is_file():
        config = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))
    else:
        config = json.loads(json.dumps(base))  # a deep copy
        for key, value in best.params.items():
            assign(config, key, value)
    assign(config, "run.root", "runs")
    assign(config, "run.name", f"{study_name}-best")
    return config


def plot_study(study: optuna.Study, path: Path) -> None:
    """Save the optimisation history and the parameter importances as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    history, importance = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.07, right=0.97, wspace=0.45)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    numbers = [trial.number for trial in complete]
    values = [float(trial.value or 0.0) for trial in complete]
    best = [
        max(values[: i + 1]) if maximize else min(values[: i + 1])
        for i in range(len(values))
    ]
    history.plot(numbers, values, "o", label="trial")
    history.step(numbers, best, where="post", label="best so far")
    history.set_title(f"optimisation history ({study.direction.name.lower()})")
    history.set_xlabel("trial")
    history.set_ylabel(str(study.user_attrs.get("metric", "value")))
    history.grid(alpha=0.3)
    if complete:
        history.legend()
    importance.set_title("parameter importances (fANOVA)")
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError):  # too few trials
        scores = {}
    if len(complete) >= 2 and scores:
        names = list(scores)[::-1]
        importance.barh(names, [scores[name] for name in names])
        importance.set_xlabel("importance")
    else:
        importance.text(
            0.5, 0.5, "needs 2 or more complete trials", ha="center", va="center"
        )
        importance.set_axis_off()
    figure.savefig(path, dpi=100)


def parser(program: str) -> argparse.ArgumentParser:
    """The options of ``tune``."""
    parser = argparse.ArgumentParser(
        prog=program,
        description=(
            "Search hyperparameters with Optuna. Each trial is a fit into its own"
            " run folder inside the study folder runs/<stamp>_tune[_<name>]/."
            " Any other --key value option (e.g. --trainer.max_epochs 10) goes to"
            " every trial's fit."
        ),
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="Base config of every trial, as for fit (repeatable; later files win).",
    )
    parser.add_argument(
        "--search",
        type=Path,
        default=SEARCH,
        metavar="FILE",
        help=f"The search space (default: {SEARCH.as_posix()}).",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="Run until the study holds N trials, counting earlier ones (default: 20).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Start no new trial after this long.",
    )
    parser.add_argument(
        "--study",
        default="",
        metavar="NAME",
        help=(
            "Study name: runs/*_tune_NAME is continued if it exists, created if not;"
            " workers given the same name share the study. A study folder's path"
            " works too."
        ),
    )
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help=(
            "Optuna RDB storage shared by workers on several machines, e.g."
            " postgresql+psycopg://user:password@host/db (default: the study"
            " folder's journal.log, for workers on this machine)."
        ),
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="Metric to optimise (default: the checkpoint's monitor, val_loss).",
    )
    parser.add_argument(
        "--direction",
        choices=("minimize", "maximize"),
        default=None,
        help="Default: from the checkpoint's mode (min: minimize).",
    )
    parser.add_argument(
        "--pruner",
        choices=tuple(PRUNERS),
        default="median",
        help="Stops unpromising trials early (default: median).",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="The sampler's seed (default: the config's seed_everything).",
    )
    return parser


def main(args: list[str]) -> None:
    """Run ``tune``: ``args`` are the command's words, ``"tune"`` first.

    Raises:
        UsageError: A bad search space, option or storage; nothing is left behind.
    """
    options, fit_args = parser(f"{PROGRAM} {args[0]}").parse_known_args(args[1:])
    for word in fit_args:
        if word.startswith("-") and not word.startswith("--"):
            raise UsageError(
                f"{word}: unknown option (`{PROGRAM} tune --help` lists them)"
            )
    fit_args = [
        word for path in options.config for word in ("--config", path)
    ] + fit_args
    if options.trials < 1:
        raise UsageError(f"--trials {options.trials}: must be 1 or more")
    study_arg = str(options.study)
    space = load_search_space(options.search)
    base = resolve_config(fit_args)
    for key in space:
        found, value = lookup(base, key)
        if not found or isinstance(value, dict):
            raise UsageError(
                f"{options.search}: {key}: not an option of fit"
                f" (`{PROGRAM} fit --print_config` lists them)"
            )
    checkpoint = base.get("checkpoint") or {}
    metric = options.metric or str(checkpoint.get("monitor") or "val_loss")
    direction = options.direction or (
        "maximize" if checkpoint.get("mode") == "max" else "minimize"
    )
    root = Path(str(lookup(base, "run.root")[1] or "runs"))
    folder = find_study_folder(root, study_arg) if study_arg else None
    if study_arg and folder is None and not _NAME.fullmatch(study_arg):
        raise UsageError(
            f"--study {study_arg}: neither a study folder nor a name of letters,"
            " digits, '.', '_' and '-'"
        )
    if folder is not None:
        recorded = (
            json.loads((folder / STUDY).read_text(encoding="utf-8"))
            if (folder / STUDY).is_file()
            else {}
        )
        if recorded.get("storage", "journal") != "journal" and options.storage is None:
            raise UsageError(
                f"--study {study_arg}: that study lives in {recorded['storage']};"
                " pass --storage"
            )
    storage = open_storage(options.storage, None) if options.storage else None
    created = False
    if folder is None:
        folder, created = create_study_folder(
            root, study_arg if _NAME.fullmatch(study_arg) else ""
        )
    try:
        study_name = (
            json.loads((folder / STUDY).read_text(encoding="utf-8"))["study"]
            if (folder / STUDY).is_file()
            else (study_arg or folder.name)
        )
        storage = storage or open_storage(None, folder)
        configured = base.get("seed_everything")
        seed = configured if isinstance(configured, int) else 0
        if options.seed is not None:
            seed = options.seed
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction=optuna.study.StudyDirection[direction.upper()],
            load_if_exists=True,
            pruner=PRUNERS[options.pruner](),
        )
        if study.direction.name.lower() != direction:
            raise UsageError(
                f"--direction {direction}: study {study_name} was started to"
                f" {study.direction.name.lower()}"
            )
        if study.user_attrs.get("metric", metric) != metric:
            raise UsageError(
                f"--metric {metric}: study {study_name} optimises"
                f" {study.user_attrs['metric']}"
            )
        # Each worker (and each resumed session) samples from its own seed, so
        # that none repeats the random start-up trials of another.
        workers = int(study.user_attrs.get("workers", 0))
        study.set_user_attr("workers", workers + 1)
        study.set_user_attr("metric", metric)
        study.sampler = optuna.samplers.TPESampler(seed=seed + workers)
        if not (folder / STUDY).is_file():
            storage_label = mask(options.storage) if options.storage else "journal"
            record = {
                "study": study_name,
                "storage": storage_label,
                "metric": metric,
                "direction": direction,
                "search": {
                    key: optuna.distributions.distribution_to_json(d)
                    for key, d in space.items()
                },
            }
            (folder / STUDY).write_text(
                json.dumps(record, indent=2) + "\n", encoding="utf-8"
            )
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    failed = fail_dead_trials(study, storage, folder)
    started = time.monotonic()
    tuner = Tuner(
        study=study, folder=folder, space=space, fit_args=fit_args, metric=metric
    )
    interrupted = False
    try:
        tuner.run(options.trials, options.timeout)
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.monotonic() - started
    summarize(
        study, folder, base, metric, seconds, interrupted, failed, options, fit_args
    )
    if interrupted:
        raise SystemExit(130)


def summarize(
    study: optuna.Study,
    folder: Path,
    base: Mapping[str, Any],
    metric: str,
    seconds: float,
    interrupted: bool,
    marked: Sequence[int],
    options: argparse.Namespace,
    fit_args: Sequence[str],
) -> None:
    """Write ``trials.csv``, ``best.yaml`` and the plot; print the summary."""
    write_trials(study, folder)
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in _FINISHED}
    plot_study(study, folder / STUDY_PLOT)
    title = "tune interrupted" if interrupted else "tune complete"
    summary = Summary(
        f"{title}: {len(trials)} trials ({counts[TrialState.COMPLETE]} complete,"
        f" {counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed)"
        f" in {seconds:.1f} s"
    )
    summary.add("study", folder).add("study name", study.study_name)
    summary.add(
        "storage", mask(options.storage) if options.storage else folder / JOURNAL
    )
    if marked:
        summary.add(
            "marked failed", ", ".join(map(str, marked)) + " (their worker stopped)"
        )
    summary.add("trials", folder / TRIALS)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        config = best_config(best, base, study.study_name)
        (folder / BEST).write_text(
            yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
        )
        summary.add(f"best {metric}", f"{best.value:.6g} (trial {best.number})")
        summary.add(
            "best params",
            ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in best.params.items()
            ),
        )
        if best.user_attrs.get("run_dir"):
            summary.add("best run", best.user_attrs["run_dir"])
        summary.add("best config", folder / BEST)
    summary.add("plot", folder / STUDY_PLOT)
    if complete:
        summary.suggest(PROGRAM, "fit", "--config", folder / BEST)
    summary.suggest(PROGRAM, "runs", folder)
    more = [*fit_args, "--study", folder.as_posix(), "--trials", str(len(trials) + 10)]
    if options.search != SEARCH:
        more[:0] = ["--search", options.search.as_posix()]
    if options.storage:
        more += ["--storage", "URL"]
    summary.suggest(PROGRAM, "tune", *more)
    summary.print()
