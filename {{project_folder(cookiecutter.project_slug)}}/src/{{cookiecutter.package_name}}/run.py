"""Run folders and their manifest: where a run lives and what produced it.

Every command of the CLI writes into a folder of its own, by default
``runs/<YYYYmmdd-HHMMSS>Z_<subcommand>[_<name>]`` (the time in UTC, so that
runs from several machines sort together). The folder is the one record of
a run; every command that reads runs goes through :func:`open_run`. Every
probe of the environment (git, the lock file) is failure tolerant: what
cannot be found is recorded as ``null`` rather than raising.

Nothing heavy is imported here (torch and jsonargparse only inside the
functions that need them), so reading runs is fast.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .errors import UsageError
from .names import BEST_CHECKPOINT, CONFIG, LAST_CHECKPOINT, MANIFEST, METRICS

STATUSES = ("running", "complete", "failed", "interrupted", "pruned")
"""A run's ``status`` in its manifest: ``running`` until it ends in another one."""

Row = dict[str, float | int]
"""One row of ``metrics.csv``, numbers as numbers."""

RUN_DIR = "{run_dir}"
"""Placeholder for the run folder, allowed in any string value of a config."""
RUN_NAME = "{run_name}"
"""Placeholder for the run folder's name (handy as a logger's run name)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# Distributions whose versions make a result reproducible, in manifest order.
_VERSIONED = ("torch", "lightning", "torchmetrics", "numpy", "jsonargparse")


def new_run_dir(root: Path, subcommand: str, name: str = "") -> Path:
    """The folder under ``root`` for one run: a fresh one, or a requeued job's own.

    A Slurm job that was preempted or ran out of time and was requeued keeps
    its ``SLURM_JOB_ID`` (Slurm counts the restarts in
    ``SLURM_RESTART_COUNT``): its ``fit`` continues in the folder that the
    job's earlier session left unfinished, where Lightning finds the
    ``hpc_ckpt_*.ckpt`` it saved on the requeue signal (the folder is the
    Trainer's ``default_root_dir``). Any other run gets a new folder.

    Args:
        root: Folder that collects all runs (e.g. ``runs``).
        subcommand: The CLI subcommand (``fit``, ``test``, ...).
        name: Optional label; characters unsafe in file names become ``-``.

    Returns:
        ``root/<timestamp>_<subcommand>[_<name>]`` (the timestamp in UTC,
        ending in ``Z``), with ``-2``, ``-3``, ... appended when two runs
        start within the same second; for a requeued Slurm job's ``fit``,
        the unfinished folder of the same job, subcommand and name, if any.
    """
    label = _UNSAFE.sub("-", name).strip("-")
    suffix = f"_{subcommand}" + (f"_{label}" if label else "")
    if subcommand == "fit" and (earlier := requeued_run_dir(root, suffix)):
        return earlier
    stamp = time.strftime("%Y%m%d-%H%M%SZ", time.gmtime())
    base = stamp + suffix
    candidate, count = root / base, 1
    while candidate.exists():
        count += 1
        candidate = root / f"{base}-{count}"
    return candidate


def slurm_job() -> dict[str, Any] | None:
    """This process's Slurm job (id, restarts, array task), or ``None`` outside one.

    Interactive allocations (a job named ``bash`` or ``interactive``, as
    Lightning treats them) count as outside: commands typed there are runs
    of their own.
    """
    job_id = os.environ.get("SLURM_JOB_ID", "")
    if not job_id or os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    return {
        "job_id": job_id,
        "restart_count": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
        "array": f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else None,
        "nodes": os.environ.get("SLURM_JOB_NODELIST"),
    }


def requeued_run_dir(root: Path, suffix: str) -> Path | None:
    """The unfinished run folder ``root/*<suffix>`` of this requeued Slurm job.

    Only a job that Slurm has restarted looks (``SLURM_RESTART_COUNT`` of 1
    or more), so a job that runs ``fit`` twice still gets two runs; only a
    folder whose manifest names the same job and is not ``complete`` is
    taken (the newest, when there are several).
    """
    job = slurm_job()
    if job is None or job["restart_count"] < 1 or not root.is_dir():
        return None
    for folder in sorted(root.glob(f"*{suffix}"), reverse=True):
        if folder.name.partition("_")[2] != suffix[1:]:  # <stamp><suffix> only
            continue
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        recorded = manifest.get("slurm") if isinstance(manifest, dict) else None
        if (
            isinstance(recorded, dict)
            and recorded.get("job_id") == job["job_id"]
            and manifest.get("status") != "complete"
        ):
            return folder
    return None


def fill_placeholders(value: Any, run_dir: Path) -> Any:
    """Replace ``RUN_DIR`` and ``RUN_NAME`` in every string of ``value``.

    Walks nested jsonargparse namespaces (changed in place), dicts and lists.

    Args:
        value: A parsed config or any part of it.
        run_dir: The run folder the placeholders stand for.

    Returns:
        ``value`` with the placeholders filled in.
    """
    from jsonargparse import Namespace

    if isinstance(value, str):
        value = value.replace(RUN_DIR, run_dir.as_posix())
        return value.replace(RUN_NAME, run_dir.name)
    if isinstance(value, list):
        return [fill_placeholders(item, run_dir) for item in value]
    if isinstance(value, dict):
        return {key: fill_placeholders(item, run_dir) for key, item in value.items()}
    if isinstance(value, Namespace):
        for key, item in vars(value).items():
            setattr(value, key, fill_placeholders(item, run_dir))
    return value


def build_manifest(
    *, subcommand: str, command: list[str], seed: int | None, run_dir: Path
) -> dict[str, Any]:
    """Everything needed to say what produced a run, as JSON-ready values.

    Args:
        subcommand: The CLI subcommand that ran.
        command: The command line, program first.
        seed: The seed given to ``seed_everything`` (``None`` when unseeded).
        run_dir: The run folder.

    Returns:
        A dict with the run folder, start time, command line, seed, versions,
        platform, CUDA device, git commit and lock file hash.
    """
    import torch

    cuda = torch.cuda.is_available()
    return {
        "run_dir": run_dir.as_posix(),
        "subcommand": subcommand,
        "status": "running",
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "seed": seed,
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _VERSIONED},
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name() if cuda else None,
        "git": git_state(),
        "poetry_lock_sha256": file_sha256(Path("poetry.lock")),
    }


def git_state(cwd: Path | None = None) -> dict[str, Any] | None:
    """The commit checked out in ``cwd`` and whether files differ from it.

    Returns:
        ``{"commit": sha, "dirty": bool}``, or ``None`` outside a git
        repository, without git, or on any git error.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, or ``None`` if it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def command_line(args: list[str] | None) -> list[str]:
    """The command that started this run, as a list of words.

    Args:
        args: Arguments given to ``main`` in-process, or ``None`` when they
            come from the command line.

    Returns:
        The interpreter's own command line, or for an in-process call the
        equivalent ``python -m <package> ...`` command.
    """
    if args is None:
        return list(sys.orig_argv)
    return ["python", "-m", str(__package__), *args]


@dataclass(frozen=True)
class Run:
    """A run folder, as the commands that read runs see it (see :func:`open_run`)."""

    path: Path
    """The folder."""
    manifest: dict[str, Any]
    """``manifest.json``, parsed."""

    @property
    def config_path(self) -> Path:
        """The run's ``config.yaml``."""
        return self.path / CONFIG

    @property
    def status(self) -> str:
        """How the run ended (one of :data:`STATUSES`; ``running`` if it never said)."""
        return str(self.manifest.get("status") or "running")

    def metrics(self) -> list[Row]:
        """The rows of ``metrics.csv`` (none if the run wrote no metrics)."""
        return read_metrics(self.path / METRICS)

    def checkpoint(self, which: str = "best") -> Path:
        """The run's ``best`` or ``last`` checkpoint, or ``which`` as a path.

        Raises:
            UsageError: The checkpoint does not exist; for a run that is not
                a fit run, the message says so and names the fit run whose
                checkpoint it used.
        """
        named = {"best": BEST_CHECKPOINT, "last": LAST_CHECKPOINT}
        path = self.path / named[which] if which in named else Path(which)
        if path.is_file():
            return path
        kind = str(self.manifest.get("subcommand") or "")
        if which not in named or kind in ("", "fit"):
            raise UsageError(f"{path}: checkpoint not found (in run {self.path})")
        # A test or predict folder: say so, and which fit run it came from.
        message = f"{self.path}: a {kind} run, not a fit run: it has no checkpoints"
        used = self.manifest.get("ckpt_path")
        source = source_run(used)
        if source is not None:
            message += f"; it came from the fit run {source.as_posix()}"
        elif isinstance(used, str) and used:
            message += f"; it used the checkpoint {used}"
        raise UsageError(message)


def open_run(path: Path | str) -> Run:
    """The run folder at ``path``, checked to be one.

    Raises:
        UsageError: ``path`` is not a folder, lacks ``config.yaml`` or
            ``manifest.json``, or its manifest is not a JSON object.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such run folder")
    for needed in (CONFIG, MANIFEST):
        if not (folder / needed).is_file():
            raise UsageError(f"{folder}: not a run folder (no {needed})")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{folder / MANIFEST}: unreadable ({error})") from None
    if not isinstance(manifest, dict):
        raise UsageError(f"{folder / MANIFEST}: not a JSON object")
    return Run(folder, manifest)


def source_run(checkpoint: object) -> Path | None:
    """The run folder a checkpoint file is in (``RUN/checkpoints/*.ckpt``), if any."""
    if not isinstance(checkpoint, str) or not checkpoint:
        return None
    folder = Path(checkpoint).parent
    if folder.name == "checkpoints" and (folder.parent / CONFIG).is_file():
        return folder.parent
    return None


def read_metrics(path: Path) -> list[Row]:
    """The rows of a ``metrics.csv``, empty cells left out; none if there is no file."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return [
            {
                key: _number(value)
                for key, value in row.items()
                if value not in ("", None)
            }
            for row in csv.DictReader(file)
        ]


def _number(text: str) -> float | int:
    """A CSV cell back as a number: ``"3"`` as 3, ``"0.5"`` as 0.5."""
    number = float(text)
    return int(number) if number.is_integer() and "." not in text else number
