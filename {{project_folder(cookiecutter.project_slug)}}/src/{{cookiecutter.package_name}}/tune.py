"""Hyperparameter search with Optuna: ``tune``.

A study samples the keys of a search space (``configs/search.yaml``) and runs
one ordinary ``fit`` per trial, in this process: the trial's values go into a
YAML file of their own (``STUDY/trial-NNNN.yaml``), given to ``fit`` after the
base config, so the trial's run folder (``STUDY/<stamp>_fit_trial-NNNN/``)
records exactly what ran. Optuna does the rest: ``study.optimize`` with a
timeout and ``MaxTrialsCallback``, the Lightning pruning callback
(``optuna-integration``), heartbeats that fail and retry the trial of a worker
that died, the study's user attributes (metric, search space) and its
plots. The study folder gets ``trials.csv``, ``best.yaml`` (a complete
config: ``fit --config STUDY/best.yaml`` repeats the best trial exactly) and
``study.png``.

A trial's value is the best ``--metric`` of its epochs; a pruned trial's is
the value of the epoch at which it stopped (Optuna's rule), which is the last
row of its ``metrics.csv``.

Storage: by default Optuna's journal file ``STUDY/journal.log``, which several
``tune`` processes share (start each with the same ``--study NAME``; on a
shared filesystem, on several machines too); ``--storage
postgresql+psycopg://...`` (or ``mysql+pymysql://...``) shares a study between
machines. Running ``tune`` again with the same study (and storage) continues
it. See ``docs/training.md`` for a walk-through.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
    fail_stale_trials,
)
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.study import MaxTrialsCallback, StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState
from optuna_integration import PyTorchLightningPruningCallback
from typing_extensions import override

from . import train
from .errors import UsageError
from .names import CONFIG, MANIFEST, PROGRAM
from .run import new_run_dir, open_run
from .summary import Summary

SEARCH = Path("configs/search.yaml")
"""The default search space."""
JOURNAL = "journal.log"
"""The study's journal file (the default storage), in the study folder."""
STUDY = "study.json"
"""Which study a study folder holds (name, storage); marks the folder for ``runs``."""
TRIALS = "trials.csv"
"""One row per trial: number, state, params, value, duration, run folder."""
BEST = "best.yaml"
"""The best trial's complete config, for ``fit --config``."""
STUDY_PLOT = "study.png"
"""Optimisation history (pruned trials marked) and parameter importances."""
HEARTBEAT: tuple[int, int] = (30, 120)
"""Seconds between a running trial's heartbeats, and without one before it fails."""
IMPORTANCE_TRIALS = 10
"""Complete trials needed before ``study.png`` shows parameter importances."""

PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    # Stop a trial whose value is worse than the median of earlier trials at
    # the same epoch, once 5 trials have finished, from the third epoch on.
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(),
    "none": lambda: optuna.pruners.NopPruner(),
}
"""``--pruner`` choices."""

DISTRIBUTIONS: dict[str, type[BaseDistribution]] = {
    "float": FloatDistribution,  # low, high, log or step
    "int": IntDistribution,  # low, high, log or step
    "categorical": CategoricalDistribution,  # choices
}
"""``type`` in ``search.yaml``; the other fields are the distribution's own."""

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_QUIET = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
# Heartbeats, their callbacks and Optuna's matplotlib plots are "experimental".
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def load_search_space(path: Path) -> dict[str, BaseDistribution]:
    """The search space in ``path``: config key -> Optuna distribution.

    Raises:
        UsageError: The file is missing or malformed, or an entry is not a
            distribution (Optuna's own message names the field and the rule).
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
    space = {}
    for key, spec in data.items():
        fields = dict(spec) if isinstance(spec, dict) else {}
        kind = fields.pop("type", None)
        if kind not in DISTRIBUTIONS:
            raise UsageError(
                f"{path}: {key}: expected a mapping with a 'type'"
                f" ({', '.join(DISTRIBUTIONS)}), got {spec!r}"
            )
        numbers = [f for f in ("low", "high", "step") if fields.get(f) is not None]
        for field in numbers:
            if isinstance(fields[field], bool) or not isinstance(
                fields[field], int | float
            ):
                raise UsageError(f"{path}: {key}: '{field}' must be a number")
        try:
            with warnings.catch_warnings():  # Optuna warns of odd choices
                warnings.simplefilter("error")
                space[str(key)] = DISTRIBUTIONS[kind](**fields)
        except (TypeError, ValueError, Warning) as error:
            message = " ".join(str(error).replace("__init__() ", "").split())
            raise UsageError(f"{path}: {key}: {kind}: {message}") from None
    return space


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted config keys as nested mappings, as a ``--config`` file holds them.

    A class name under which other keys are set becomes its ``class_path``:
    ``{"model.net": "CNN", "model.net.init_args.dropout": 0.1}`` gives
    ``{"model": {"net": {"class_path": "CNN", "init_args": {"dropout": 0.1}}}}``.
    """
    tree: dict[str, Any] = {}
    for key in sorted(values, key=lambda key: key.count(".")):
        *parents, last = key.split(".")
        node = tree
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {} if child is None else {"class_path": child}
            node = child
        node[last] = values[key]
    return tree


def write_config(path: Path, values: Mapping[str, Any]) -> Path:
    """Write ``values`` (dotted keys) as a YAML config file; values stay data."""
    path.write_text(yaml.safe_dump(nest(values), sort_keys=False), encoding="utf-8")
    return path


def check_space(
    search: Path, space: Mapping[str, BaseDistribution], words: list[str]
) -> None:
    """Parse ``fit`` with the search space's values: every key must be an option.

    Each categorical choice and both bounds of each range are tried (as many
    parses as the longest list of choices, at least two); nothing is built.

    Raises:
        UsageError: A key is no option of ``fit`` (naming the closest one), or
            a value has the wrong type for its option.
    """
    sizes = [
        len(d.choices) for d in space.values() if isinstance(d, CategoricalDistribution)
    ]
    with tempfile.TemporaryDirectory(prefix="tune-check-") as scratch:
        for index in range(max(2, *sizes) if sizes else 2):
            values = {
                key: (
                    d.choices[index % len(d.choices)]
                    if isinstance(d, CategoricalDistribution)
                    else (d.low, d.high)[index % 2]
                )
                for key, d in space.items()
                if isinstance(
                    d, CategoricalDistribution | FloatDistribution | IntDistribution
                )
            }
            probe = write_config(Path(scratch) / "probe.yaml", values)
            try:
                train.parse_config(["fit", *words, "--config", str(probe)])
            except UsageError as error:
                raise UsageError(f"{search}: {error}") from None


def suggest(trial: Trial, key: str, distribution: BaseDistribution) -> Any:
    """Ask ``trial`` for ``key``'s value from ``distribution``."""
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            key,
            distribution.low,
            distribution.high,
            log=distribution.log,
            step=distribution.step,
        )
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            key,
            distribution.low,
            distribution.high,
            log=distribution.log,
            step=distribution.step,
        )
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(key, distribution.choices)


def mask(url: str) -> str:
    """``url`` as SQLAlchemy renders it with the password hidden (``***``)."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return sqlalchemy.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


class JournalHeartbeat(JournalStorage, BaseHeartbeat):
    """Optuna's journal file storage with the heartbeats its RDB storage has.

    A running trial records a heartbeat every ``HEARTBEAT[0]`` seconds (in the
    journal); one without a heartbeat for ``HEARTBEAT[1]`` seconds is failed
    by the next worker to start a trial, and retried (Optuna's
    ``fail_stale_trials`` and ``RetryHeartbeatStaleTrialCallback``), so a
    killed worker on any machine that shares the journal loses no trial.
    """

    def __init__(
        self, path: Path, stale: Callable[[optuna.Study, FrozenTrial], None]
    ) -> None:
        """Open the journal at ``path``; ``stale`` is called for each failed trial."""
        lock = JournalFileOpenLock(str(path))
        super().__init__(JournalFileBackend(str(path), lock_obj=lock))
        self.interval, self.grace = HEARTBEAT
        self.stale = stale

    @override
    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, "heartbeat", time.time())

    @override
    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = []
        for trial in self.get_all_trials(
            study_id, deepcopy=False, states=(TrialState.RUNNING,)
        ):
            started = trial.datetime_start.timestamp() if trial.datetime_start else 0
            beat = float(trial.system_attrs.get("heartbeat", started))
            if time.time() - beat > self.grace:  # dead before or after its first beat
                number = trial.number
                stale.append(
                    self.get_trial_id_from_study_id_trial_number(study_id, number)
                )
        return stale

    @override
    def get_heartbeat_interval(self) -> int:
        return self.interval

    @override
    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None]:
        return self.stale


def open_storage(url: str | None, folder: Path) -> BaseStorage:
    """The study's storage: ``url`` (an RDB URL), else the journal in ``folder``.

    Either way, a trial whose worker stops beating is failed and retried, and
    its run folder (when it is in ``folder``) is marked failed.

    Raises:
        UsageError: ``url`` cannot be opened (bad URL, missing driver, no server).
    """

    def stale(study: optuna.Study, trial: FrozenTrial) -> None:
        for run_dir in folder.glob(f"*_fit_{trial_name(trial.number)}"):
            path = run_dir / MANIFEST
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("status") == "running":
                manifest |= {"status": "failed", "error": "its worker stopped"}
                path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)

    if url is None:
        return JournalHeartbeat(folder / JOURNAL, stale)
    interval, grace = HEARTBEAT
    try:
        return RDBStorage(
            url,
            heartbeat_interval=interval,
            grace_period=grace,
            heartbeat_stale_trial_callback=stale,
        )
    except Exception as error:  # SQLAlchemy's many errors, a missing driver
        problem = " ".join(str(error).split())[:200]
        raise UsageError(
            f"--storage {mask(url)}: cannot open it ({type(error).__name__}: {problem})"
        ) from None


def find_study_folder(root: Path, study: str) -> Path | None:
    """The existing study folder that ``--study`` names: its path, or a name.

    A name finds ``ROOT/*_tune_NAME`` (the oldest, when there are several).
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
        oldest = find_study_folder(root, name) if name else None
        if oldest is not None and oldest != folder:
            folder.rmdir()
            return oldest, False
        return folder, True


def trial_name(number: int) -> str:
    """The run name of trial ``number`` (its run folder ends in it)."""
    return f"trial-{number:04d}"


class Objective:
    """A trial: its values into a YAML file, then ``fit`` with it after the base."""

    def __init__(
        self,
        folder: Path,
        space: Mapping[str, BaseDistribution],
        words: list[str],
        metric: str,
        fixed: Mapping[str, Any],
    ) -> None:
        """Run trials into ``folder``, each a ``fit`` of ``words`` and ``fixed``."""
        self.folder, self.space, self.words = folder, space, words
        self.metric, self.fixed = metric, fixed
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: Trial) -> float:
        """The best ``metric`` of the trial's epochs."""
        trial.set_user_attr("worker", self.worker)
        params = {key: suggest(trial, key, dist) for key, dist in self.space.items()}
        name = trial_name(trial.number)
        values = {
            **params,
            **self.fixed,
            "run.root": self.folder.as_posix(),
            "run.name": name,
        }
        path = write_config(self.folder / f"{name}.yaml", values)
        record = {
            "study": trial.study.study_name,
            "number": trial.number,
            "params": params,
        }
        try:
            pruning = PyTorchLightningPruningCallback(trial, monitor=self.metric)
            train.main(
                ["fit", *self.words, "--config", path.as_posix()],
                callbacks=[pruning],
                manifest={"trial": record},
            )
        finally:
            run_dir = next(self.folder.glob(f"*_fit_{name}"), None)
            if run_dir is not None:
                trial.set_user_attr("run_dir", run_dir.as_posix())
        if run_dir is None:
            raise RuntimeError("fit wrote no run folder")
        scores = [
            row[self.metric]
            for row in open_run(run_dir).metrics()
            if self.metric in row
        ]
        if not scores:
            raise RuntimeError(f"{self.metric} was never logged")
        maximize = trial.study.direction == StudyDirection.MAXIMIZE
        return float(max(scores) if maximize else min(scores))


def mlflow_parent(study: optuna.Study, base: Mapping[str, Any]) -> dict[str, Any]:
    """Group the trials' MLflow runs under one parent run, named after the study.

    Returns the trials' logger setting that tags each run with the parent's
    id (``mlflow.parentRunId``); nothing when the logger is not MLflow's. A
    worker that finds no parent creates one, and then every worker keeps the
    oldest (deleting its own if it lost), so workers started together agree.
    """
    logger = base.get("trainer", {}).get("logger")
    if not isinstance(logger, dict) or not str(logger.get("class_path")).endswith(
        "MLFlowLogger"
    ):
        return {}
    # Imported by name: only a project that logs to MLflow installs it.
    tracking = importlib.import_module("mlflow.tracking")
    mlflow_error = importlib.import_module("mlflow.exceptions").MlflowException

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # as train.main does
    args = logger.get("init_args") or {}
    uri = args.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    client = tracking.MlflowClient(
        tracking_uri=uri or f"file:{args.get('save_dir', './mlruns')}"
    )
    name = str(args.get("experiment_name") or "lightning_logs")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        with contextlib.suppress(mlflow_error):  # another worker just created it
            client.create_experiment(name)
        experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    tags = {"optuna.role": "study", "optuna.study": study.study_name}

    def parents() -> list[Any]:
        runs = client.search_runs(
            [experiment.experiment_id],
            "tags.`optuna.role` = 'study'",
            max_results=10000,
        )
        mine = [
            run for run in runs if run.data.tags.get("optuna.study") == study.study_name
        ]
        return sorted(mine, key=lambda run: (run.info.start_time, run.info.run_id))

    found = parents()
    if not found:
        created = client.create_run(
            experiment.experiment_id, tags=tags, run_name=study.study_name
        )
        found = parents()
        if found[0].info.run_id != created.info.run_id:
            client.delete_run(created.info.run_id)
    init_args = {
        "tags": {**(args.get("tags") or {}), "mlflow.parentRunId": found[0].info.run_id}
    }
    return {
        "trainer.logger": {"class_path": logger["class_path"], "init_args": init_args}
    }


def write_trials(study: optuna.Study, folder: Path) -> None:
    """Write ``trials.csv`` from ``trials_dataframe()`` (atomically: shared file)."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "params", "value", "duration", "user_attrs")
    )
    params = [c for c in frame.columns if c.startswith("params_")]
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds().round(3)
    frame = frame.rename(
        columns={"duration": "duration_s", "user_attrs_run_dir": "run_dir"}
    )
    frame = frame.reindex(
        columns=["number", "state", *params, "value", "duration_s", "run_dir"]
    )
    partial = folder / f".{TRIALS}.{os.getpid()}"
    frame.rename(columns=lambda c: c.removeprefix("params_")).to_csv(
        partial, index=False
    )
    partial.replace(folder / TRIALS)


def best_config(best: FrozenTrial, study_name: str) -> dict[str, Any] | None:
    """The best trial's own ``config.yaml``, writing into ``runs/`` again.

    ``None`` when its run folder is not on this machine (``--storage``: the
    worker that ran it has it).
    """
    path = Path(str(best.user_attrs.get("run_dir", ""))) / CONFIG
    if not path.is_file():
        return None
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["run"] = {
        **config.get("run", {}),
        "root": "runs",
        "name": f"{study_name}-best",
    }
    return config


def plot_study(study: optuna.Study, path: Path, metric: str) -> None:
    """Save Optuna's optimisation history (pruned trials marked) and importances."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as plots
    from PIL import Image

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.value is not None]
    images = []
    with plt.rc_context():  # Optuna's plots switch to the ggplot style
        history = plots.plot_optimization_history(study, target_name=metric)
        if pruned:
            history.scatter(
                [t.number for t in pruned],
                [float(t.value or 0.0) for t in pruned],
                marker="x",
                color="tab:purple",
                label="pruned (value when stopped)",
                zorder=3,
            )
            history.legend(loc="best")
        history.xaxis.set_major_locator(MaxNLocator(integer=True))
        history.set_xlabel("trial")
        history.set_title(f"{study.study_name}: {len(trials)} trials")
        importance = None
        if len(complete) >= IMPORTANCE_TRIALS:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            try:
                importance = plots.plot_param_importances(study, evaluator=evaluator)
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. one value each
                importance = None
        if importance is None:
            importance = plt.subplots()[1]
            importance.set_axis_off()
            importance.text(
                0.5,
                0.5,
                f"No parameter importances: they need {IMPORTANCE_TRIALS} complete"
                f" trials\nwith varied values ({len(complete)} complete so far).",
                ha="center",
                va="center",
            )
        for figure in (history.get_figure(root=True), importance.get_figure(root=True)):
            assert figure is not None
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=90)
            plt.close(figure)
            images.append(Image.open(buffer))
    sheet = Image.new(
        "RGB", (sum(i.width for i in images), max(i.height for i in images)), "white"
    )
    sheet.paste(images[0], (0, 0))
    sheet.paste(images[1], (images[0].width, 0))
    sheet.save(path)


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
    add = parser.add_argument
    add(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="Base config of every trial, as for fit (repeatable; later files win).",
    )
    add(
        "--search",
        type=Path,
        default=SEARCH,
        metavar="FILE",
        help=f"The search space (default: {SEARCH.as_posix()}).",
    )
    add(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="Run until the study holds N trials, counting earlier ones (default: 20).",
    )
    add(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Start no new trial after this long.",
    )
    add(
        "--study",
        default="",
        metavar="NAME",
        help="Study name: runs/*_tune_NAME is continued if it exists, created if not;"
        " workers given the same name share the study. A study folder's path"
        " works too.",
    )
    add(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna RDB storage shared by workers on several machines, e.g."
        " postgresql+psycopg://user:password@host/db (default: the study folder's"
        " journal.log, shared by workers that see the same folder).",
    )
    add(
        "--metric",
        default=None,
        help="Metric to optimise (default: the checkpoint's monitor, val_loss).",
    )
    add(
        "--direction",
        choices=("minimize", "maximize"),
        default=None,
        help="Default: from the checkpoint's mode (min: minimize).",
    )
    add(
        "--pruner",
        choices=tuple(PRUNERS),
        default="median",
        help="Stops unpromising trials early (default: median).",
    )
    add(
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
    options, extra = parser(f"{PROGRAM} {args[0]}").parse_known_args(args[1:])
    for word in extra:
        if word.startswith("-") and not word.startswith("--"):
            raise UsageError(
                f"{word}: unknown option (`{PROGRAM} tune --help` lists them)"
            )
    if options.trials < 1:
        raise UsageError(f"--trials {options.trials}: must be 1 or more")
    words = [word for path in options.config for word in ("--config", path)] + extra
    space = load_search_space(options.search)
    base = train.parse_config(["fit", *words])
    check_space(options.search, space, words)
    checkpoint = base.get("checkpoint") or {}
    metric = options.metric or str(checkpoint.get("monitor") or "val_loss")
    direction: Literal["minimize", "maximize"] = options.direction or (
        "maximize" if checkpoint.get("mode") == "max" else "minimize"
    )
    root = Path(str(base.get("run", {}).get("root") or "runs"))
    study_arg = str(options.study)
    folder = find_study_folder(root, study_arg) if study_arg else None
    if study_arg and folder is None and not _NAME.fullmatch(study_arg):
        raise UsageError(
            f"--study {study_arg}: neither a study folder nor a name of letters,"
            " digits, '.', '_' and '-'"
        )
    marker = folder / STUDY if folder else None
    record = (
        json.loads(marker.read_text(encoding="utf-8"))
        if marker and marker.is_file()
        else {}
    )
    if record.get("storage", "journal") != "journal" and options.storage is None:
        raise UsageError(
            f"--study {study_arg}: that study lives in {record['storage']};"
            " pass --storage"
        )
    if options.storage:
        open_storage(options.storage, root)  # fail before a folder is made
    created = False
    if folder is None:
        folder, created = create_study_folder(root, study_arg)
    try:
        storage = open_storage(options.storage, folder)
        name = str(record.get("study") or study_arg or folder.name)
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            load_if_exists=True,
            pruner=PRUNERS[options.pruner](),
        )
        if study.direction.name.lower() != direction:
            raise UsageError(
                f"--direction {direction}: study {name} was started to"
                f" {study.direction.name.lower()}"
            )
        if study.user_attrs.get("metric", metric) != metric:
            raise UsageError(
                f"--metric {metric}: study {name} optimises"
                f" {study.user_attrs['metric']}"
            )
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if not (folder / STUDY).is_file():
        label = mask(options.storage) if options.storage else "journal"
        (folder / STUDY).write_text(
            json.dumps({"study": name, "storage": label}) + "\n", encoding="utf-8"
        )
    if "metric" not in study.user_attrs:
        study.set_user_attr("metric", metric)
        study.set_user_attr(
            "search",
            {k: optuna.distributions.distribution_to_json(d) for k, d in space.items()},
        )
    # Each worker (and each session) samples from a seed of its own, so that
    # none repeats another's random start-up trials; the constant liar keeps
    # parallel workers from sampling next to each other's running trials.
    workers = int(study.user_attrs.get("workers", 0))
    study.set_user_attr("workers", workers + 1)
    configured = base.get("seed_everything")
    seed = (
        options.seed
        if options.seed is not None
        else (configured if isinstance(configured, int) else 0)
    )
    study.sampler = optuna.samplers.TPESampler(seed=seed + workers, constant_liar=True)
    running = {
        t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    fail_stale_trials(study)
    failed = sorted(
        running
        - {
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
    )
    fixed: dict[str, Any] = dict(_QUIET)
    fixed |= mlflow_parent(study, base)
    objective = Objective(folder, space, words, metric, fixed)
    started, interrupted = time.monotonic(), False
    try:
        if len(study.get_trials(deepcopy=False)) < options.trials:
            study.optimize(
                objective,
                timeout=options.timeout,
                catch=(Exception,),
                callbacks=[
                    MaxTrialsCallback(options.trials, states=None),
                    lambda study, _: write_trials(study, folder),
                ],
            )
    except KeyboardInterrupt:
        interrupted = True
    summarize(
        study,
        folder,
        metric,
        time.monotonic() - started,
        interrupted,
        failed,
        options,
        words,
    )
    if interrupted:
        raise SystemExit(130)


def summarize(
    study: optuna.Study,
    folder: Path,
    metric: str,
    seconds: float,
    interrupted: bool,
    marked: list[int],
    options: argparse.Namespace,
    words: list[str],
) -> None:
    """Write ``trials.csv``, ``best.yaml`` and the plot; print the summary."""
    write_trials(study, folder)
    plot_study(study, folder / STUDY_PLOT, metric)
    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    summary = Summary(
        f"tune {'interrupted' if interrupted else 'complete'}: {len(trials)} trials"
        f" ({count[TrialState.COMPLETE]} complete, {count[TrialState.PRUNED]} pruned,"
        f" {count[TrialState.FAIL]} failed) in {seconds:.1f} s"
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
    if count[TrialState.COMPLETE]:
        best = study.best_trial
        config = best_config(best, study.study_name)
        summary.add(f"best {metric}", f"{best.value:.6g} (trial {best.number})")
        summary.add(
            "best params",
            ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in best.params.items()
            ),
        )
        summary.add("best run", best.user_attrs["run_dir"])
        if config is None:
            summary.add(
                "best config", f"in that run folder, on {best.user_attrs['worker']}"
            )
        else:
            (folder / BEST).write_text(
                yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
            )
            summary.add("best config", folder / BEST)
            summary.suggest(PROGRAM, "fit", "--config", folder / BEST)
    summary.add("plot", folder / STUDY_PLOT)
    summary.suggest(PROGRAM, "runs", folder)
    more = [*words, "--study", folder.as_posix(), "--trials", str(len(trials) + 10)]
    if options.search != SEARCH:
        more[:0] = ["--search", options.search.as_posix()]
    if options.storage:
        more += ["--storage", "URL"]
    summary.suggest(PROGRAM, "tune", *more)
    summary.print()
