"""Run folders and their manifest: where a run lives and what produced it.

Every command of the CLI writes into a folder of its own, by default
``runs/<YYYYmmdd-HHMMSS>_<subcommand>[_<name>]``. Every probe of the
environment (git, the lock file) is failure tolerant: what cannot be found
is recorded as ``null`` rather than raising.
"""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
import sys
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace

RUN_DIR = "{run_dir}"
"""Placeholder for the run folder, allowed in any string value of a config."""
RUN_NAME = "{run_name}"
"""Placeholder for the run folder's name (handy as a logger's run name)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# Distributions whose versions make a result reproducible, in manifest order.
_VERSIONED = ("torch", "lightning", "torchmetrics", "numpy", "jsonargparse")


def new_run_dir(root: Path, subcommand: str, name: str = "") -> Path:
    """A fresh, not yet existing folder under ``root`` for one run.

    Args:
        root: Folder that collects all runs (e.g. ``runs``).
        subcommand: The CLI subcommand (``fit``, ``test``, ...).
        name: Optional label; characters unsafe in file names become ``-``.

    Returns:
        ``root/<timestamp>_<subcommand>[_<name>]``, with ``-2``, ``-3``, ...
        appended when two runs start within the same second.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = _UNSAFE.sub("-", name).strip("-")
    base = f"{stamp}_{subcommand}" + (f"_{label}" if label else "")
    candidate, count = root / base, 1
    while candidate.exists():
        count += 1
        candidate = root / f"{base}-{count}"
    return candidate


def fill_placeholders(value: Any, run_dir: Path) -> Any:
    """Replace ``RUN_DIR`` and ``RUN_NAME`` in every string of ``value``.

    Walks nested jsonargparse namespaces (changed in place), dicts and lists.

    Args:
        value: A parsed config or any part of it.
        run_dir: The run folder the placeholders stand for.

    Returns:
        ``value`` with the placeholders filled in.
    """
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
    cuda = torch.cuda.is_available()
    return {
        "run_dir": run_dir.as_posix(),
        "subcommand": subcommand,
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
