"""Post-generation hook: drop what the chosen options do not use, then finish up.

cookiecutter renders this file with Jinja and runs it inside the new project.
The answers arrive as data (one JSON document in a raw string, parsed in
:func:`main`); unrendered, the file imports cleanly, so the tests read
:data:`OPTION_PATHS` and call every step directly.

What goes is declared once, in :data:`OPTION_PATHS`; no other code decides
about files. Only what this bake generated is removed: files that were in the
folder before (``--overwrite-if-exists``, recorded by the pre-generation hook)
stay, and the user's own version of a file at a removed path comes back.

Optional steps: ``init_git`` (a repository with a first commit on ``main``) and
``poetry_lock``. A missing ``git`` or ``poetry``, or a failing command (e.g.
offline), is a warning, never a failed bake. The default path starts no
subprocess. cruft's own temporary re-bakes (``cruft update``) skip the
optional steps and the closing message.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the hook imports as little as it can
    from collections.abc import Iterable, Mapping
    from typing import Any

CONTEXT_JSON = r"""{{ cookiecutter | tojson }}"""

# option -> value -> paths (relative to the project root, files or folders)
# that exist only when the option has that value. A path is removed unless it
# is listed under the answer given; a path in no list always stays. Paths may
# name answers in braces, e.g. ``{package_name}``.
OPTION_PATHS: dict[str, dict[str, list[str]]] = {
    "license": {
        "MIT": ["LICENSE"],
        "BSD-3-Clause": ["LICENSE"],
        "Apache-2.0": ["LICENSE"],
        "GPL-3.0-only": ["LICENSE"],
        "none": [],
    },
    "dataset": {
        "digits": ["src/{package_name}/data.py", "tests/test_data.py"],
        "mnist": ["src/{package_name}/mnist.py", "tests/test_mnist.py"],
    },
    "code_style": {
        "ruff": [],
        "black-flake8": [".flake8"],
    },
    "ci": {
        "github": [".github"],
        "gitlab": [".gitlab-ci.yml"],
        "none": [],
    },
    "docs": {
        "mkdocs": ["mkdocs.yml", "docs/index.md", "docs/api.md"],
        "none": [],
    },
    "pre_commit": {
        "yes": [".pre-commit-config.yaml"],
        "no": [],
    },
    "docker": {
        "yes": ["Dockerfile", ".dockerignore", "docs/container.md"],
        "no": [],
    },
    "hpo": {
        "optuna": [
            "src/{package_name}/tune.py",
            "configs/search.yaml",
            "tests/test_tune.py",
            "slurm/tune.sbatch",
        ],
        "none": [],
    },
}

# Shared with pre_gen_project.py (keep the two names in step).
SNAPSHOT_FILE = ".cookiecutter-bake.json"
BACKUP_DIR = ".cookiecutter-bake-backup"


def removal_targets(
    table: Mapping[str, Mapping[str, list[str]]], answers: Mapping[str, Any]
) -> list[str]:
    """The paths the answers do not use, in table order, each once.

    An option missing from the answers removes nothing (an older record).
    """
    targets: list[str] = []
    for option, by_value in table.items():
        if option not in answers:
            continue
        answer = str(answers[option])
        kept = set(by_value.get(answer, []))
        for value, paths in by_value.items():
            if value == answer:
                continue
            for path in paths:
                target = path.format_map(answers)
                if path not in kept and target not in targets:
                    targets.append(target)
    return targets


def read_snapshot(root: str) -> dict[str, list[str]] | None:
    """What was in the folder before the bake (and remove the record), or None.

    The record (written by the pre-generation hook) lists ``files`` and
    ``dirs`` that existed, ``pruned``: the folders among them it did not look
    into, and ``backups``: the user's files it saved from being overwritten.
    """
    path = os.path.join(root, SNAPSHOT_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            record: dict[str, list[str]] = json.load(file)
    except (OSError, ValueError):
        return None
    os.remove(path)
    return record


def _native(root: str, rel: str) -> str:
    return os.path.join(root, *rel.split("/"))


def under(rel: str, folders: Iterable[str]) -> bool:
    """Whether ``rel`` is one of ``folders`` or inside one of them."""
    return any(rel == folder or rel.startswith(folder + "/") for folder in folders)


def remove_generated(root: str, rel: str, before: Mapping[str, list[str]]) -> list[str]:
    """Remove what this bake generated at ``rel`` (a file, or a folder tree).

    What ``before`` lists stays: its files, its folders (removed only if this
    bake made them and they end up empty), and anything inside its pruned
    folders. Returns the removed paths (folders with a trailing ``/``).
    """
    files, dirs, pruned = set(before["files"]), set(before["dirs"]), before.get("pruned", [])
    path = _native(root, rel)
    if under(rel, pruned):
        return []
    if os.path.islink(path) or os.path.isfile(path):
        if rel in files:
            return []
        os.remove(path)
        return [rel]
    if not os.path.isdir(path):
        return []
    removed: list[str] = []
    folders: list[tuple[str, str]] = []
    for current, subdirs, names in os.walk(path):
        current_rel = os.path.relpath(current, root).replace(os.sep, "/")
        subdirs[:] = [name for name in subdirs if f"{current_rel}/{name}" not in pruned]
        folders.append((current, current_rel))
        for name in names:
            if f"{current_rel}/{name}" not in files:
                os.remove(os.path.join(current, name))
                removed.append(f"{current_rel}/{name}")
    for current, current_rel in reversed(folders):
        if current_rel not in dirs and not os.listdir(current):
            os.rmdir(current)
            removed.append(current_rel + "/")
    return removed


def remove_empty_parents(root: str, rel: str, dirs: set[str]) -> None:
    """Remove folders above ``rel`` that this bake made and that are now empty."""
    parts = rel.rstrip("/").split("/")[:-1]
    while parts:
        folder = "/".join(parts)
        path = _native(root, folder)
        if folder in dirs or not os.path.isdir(path) or os.listdir(path):
            return
        os.rmdir(path)
        parts.pop()


def restore_backups(root: str, backups: Iterable[str]) -> None:
    """Put back the user's files that the template overwrote at removed paths."""
    backup_root = os.path.join(root, BACKUP_DIR)
    for rel in backups:
        source = _native(backup_root, rel)
        if os.path.lexists(source):
            destination = _native(root, rel)
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            os.replace(source, destination)
    if os.path.isdir(backup_root):
        import shutil

        shutil.rmtree(backup_root, ignore_errors=True)


def prune(root: str, answers: Mapping[str, Any]) -> list[str]:
    """Remove every path of :data:`OPTION_PATHS` that the answers do not use."""
    before = read_snapshot(root)
    if before is None:
        warn("no record of the folder's earlier contents, so no unused file was removed")
        return []
    removed: list[str] = []
    for rel in removal_targets(OPTION_PATHS, answers):
        removed.extend(remove_generated(root, rel, before))
        remove_empty_parents(root, rel, set(before["dirs"]))
    restore_backups(root, before.get("backups", []))
    return removed


# ---------------------------------------------------------------- optional steps


def warn(message: str) -> None:
    """Print a warning; the bake goes on."""
    print(f"warning: {message}", file=sys.stderr)


def run(command: list[str], cwd: str) -> tuple[int, str]:
    """Run a command (arguments as data, no shell); return its status and output."""
    import subprocess

    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except OSError as error:
        return 127, str(error)
    return done.returncode, (done.stdout + done.stderr).strip()


def git_identity(git: str, root: str, name: str, email: str) -> list[str]:
    """``-c user.name=... -c user.email=...`` for what git has not configured."""
    # One git process for both keys: each line is "user.name VALUE".
    _, output = run([git, "config", "--get-regexp", r"^user\.(name|email)$"], root)
    lines = (line.partition(" ") for line in output.splitlines())
    configured = {key for key, _, value in lines if value.strip()}
    return [
        option
        for key, value in (("user.name", name), ("user.email", email))
        if key not in configured
        for option in ("-c", f"{key}={value}")
    ]


def init_git(root: str, answers: Mapping[str, Any]) -> bool:
    """``git init`` and a first commit on ``main``; False (with a warning) if not done."""
    import shutil

    git = shutil.which("git")
    if git is None:
        warn("git is not installed; no repository was created")
        return False
    status, output = run([git, "rev-parse", "--show-toplevel"], root)
    if status == 0 and output:
        print(f"Skipped `git init`: the project is inside the work tree of {output}.")
        return False
    identity = git_identity(git, root, str(answers["author_name"]), str(answers["author_email"]))
    version = answers.get("_template_version", "")
    message = f"Initial commit from cookiecutter-poetry-ml {version}".rstrip()
    status, output = run([git, "init", "--quiet", "--initial-branch=main"], root)
    if status != 0:  # git before 2.28 has no --initial-branch
        status, output = run([git, "init", "--quiet"], root)
        if status == 0:
            status, output = run([git, "symbolic-ref", "HEAD", "refs/heads/main"], root)
    if status != 0:
        warn(f"`git init` failed; no repository was created:\n{output}")
        return False
    for command in (
        [git, "add", "--all"],
        [git, *identity, "commit", "--quiet", "--no-verify", "--message", message],
    ):
        status, output = run(command, root)
        if status != 0:
            warn(f"`{' '.join(command[1:3])}` failed; the repository is incomplete:\n{output}")
            return False
    print("Created a git repository with a first commit on `main`.")
    return True


def poetry_lock(root: str) -> bool:
    """``poetry lock``; False (with a warning) if Poetry is missing or it fails."""
    import shutil

    poetry = shutil.which("poetry")
    if poetry is None:
        warn("poetry is not installed; run `poetry lock` once it is")
        return False
    print("Running `poetry lock` (resolves every dependency; needs the network)...")
    status, output = run([poetry, "lock", "--no-interaction"], root)
    if status != 0:
        warn(f"`poetry lock` failed; run it again later (e.g. once online):\n{output}")
        return False
    print("Wrote poetry.lock.")
    return True


def next_steps(root: str, answers: Mapping[str, Any]) -> str:
    """The commands to run next, as printed at the end of the bake."""
    start = os.environ.get("PWD") or ""
    where = root
    if start and os.path.isdir(start):
        relative = os.path.relpath(root, start)
        if not relative.startswith(".."):
            where = relative
    if any(char.isspace() or char in "'\"$`\\;&|<>()*?[]#~!{}" for char in where):
        import shlex

        where = shlex.quote(where)
    train = f"poetry run {answers['project_slug']} fit"
    if os.path.isfile(os.path.join(root, "configs", "default.yaml")):
        train += " --config configs/default.yaml"
    lines = [
        "",
        f"Baked {answers['project_name']}. Next steps:",
        f"  cd {where}",
        "  poetry install",
        "  poetry run pytest",
        f"  {train}",
        "",
    ]
    return "\n".join(lines)


def is_cruft_rebake(answers: Mapping[str, Any], root: str) -> bool:
    """Whether this bake is one of cruft's own re-bakes (``cruft update/diff/check``).

    cruft re-bakes the template into a fresh ``tempfile`` folder to compute the
    update; a repository or a lock made there would end up in its diff. The
    signature: cruft's ``_commit`` answer, and a project folder directly inside
    a ``tmp*`` folder of the system's temporary directory. (``cruft create``
    bakes where the user asks, and gets the optional steps.)
    """
    if "_commit" not in answers:
        return False
    import tempfile

    parent = os.path.dirname(os.path.realpath(root))
    temp = os.path.realpath(tempfile.gettempdir())
    return os.path.dirname(parent) == temp and os.path.basename(parent).startswith("tmp")


def main() -> int:
    """Prune unused files, run the optional steps, print what to do next."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
        sys.stderr.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    answers: dict[str, Any] = json.loads(CONTEXT_JSON)
    root = os.getcwd()
    prune(root, answers)
    if is_cruft_rebake(answers, root):
        return 0
    if answers.get("poetry_lock") == "yes":
        poetry_lock(root)
    if answers.get("init_git") == "yes":
        init_git(root, answers)
    print(next_steps(root, answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
