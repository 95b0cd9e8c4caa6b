"""The first hour as a new user meets it: the README's commands, the bake, a bad answer.

Each test runs cookiecutter as the user would (its console script, as a
process) and checks what lands on disk.
"""

from __future__ import annotations

import filecmp
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from harness import TEMPLATE_DIR, BakedProject, tool

README = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")


def two_commands() -> list[str]:
    """The shell commands of the README's "The two commands" section, in order."""
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def cookiecutter(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("cookiecutter"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_the_readme_bake_command_works_word_for_word(tmp_path: Path) -> None:
    bake, test = two_commands()
    words = shlex.split(bake)
    assert words[:2] == ["pipx", "run"], bake  # pipx fetches cookiecutter: we have it
    assert words[-1] == "TEMPLATE"  # an address to replace, explained below the block
    done = cookiecutter(*words[3:-1], str(TEMPLATE_DIR), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = tmp_path / "projects" / "my-ml-project"
    assert (project / "pyproject.toml").is_file()
    # "a git repository with a first commit on `main`", as the README says.
    log = subprocess.run(
        ["git", "log", "--format=%s", "main"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(log) == 1
    assert log[0].startswith("Initial commit from cookiecutter-poetry-ml")
    clean = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True
    )
    assert clean.stdout == ""
    # The second command: too heavy to run inside the suite; it answers --help.
    assert shlex.split(test) == ["python", "run_tests.py"]
    helped = subprocess.run(
        [sys.executable, str(TEMPLATE_DIR / "run_tests.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert helped.returncode == 0
    assert "--fast" in helped.stdout


def retry_line(stderr: str) -> list[str]:
    """The command a failed bake prints for baking again, as words."""
    lines = stderr.splitlines()
    marker = next(i for i, line in enumerate(lines) if "in this command and run it" in line)
    return shlex.split(lines[marker + 1])


@pytest.mark.parametrize(
    ("bad", "fixed"),
    [
        ({"author_email": "not an address"}, {"author_email": "ada@example.org"}),
        ({"project_name": "  "}, {"project_name": "Retry Lab"}),
    ],
    ids=["email", "project_name"],
)
def test_a_bad_answer_prints_the_command_that_bakes_the_same_project(
    tmp_path: Path, bad: dict[str, str], fixed: dict[str, str]
) -> None:
    given = {"project_name": "Retry Lab", "license": "BSD-3-Clause", "logger": "tensorboard"}
    first = cookiecutter(
        "--no-input",
        "-o",
        str(tmp_path / "retry"),
        str(TEMPLATE_DIR),
        *(f"{key}={value}" for key, value in (given | bad).items()),
        cwd=tmp_path,
    )
    assert first.returncode != 0
    assert not (tmp_path / "retry").exists() or not any((tmp_path / "retry").iterdir())
    field = next(iter(bad))
    assert f"fix {field}" in first.stderr
    words = retry_line(first.stderr)
    # The venv's bin is not on the suite's PATH: the command names the script.
    assert Path(words[0]).resolve() == Path(tool("cookiecutter")).resolve()
    # Fix the one field, as the message says, and run the command as printed.
    words = [f"{field}={fixed[field]}" if word.startswith(f"{field}=") else word for word in words]
    again = subprocess.run(
        words, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0, again.stderr
    direct = cookiecutter(
        "--no-input",
        "-o",
        str(tmp_path / "direct"),
        str(TEMPLATE_DIR),
        *(f"{key}={value}" for key, value in (given | fixed).items()),
        cwd=tmp_path,
    )
    assert direct.returncode == 0, direct.stderr
    retried = BakedProject(tmp_path / "retry" / "retry-lab", {})
    answered = BakedProject(tmp_path / "direct" / "retry-lab", {})
    assert_same_tree(retried.path, answered.path)


@pytest.mark.parametrize("on_path", [True, False], ids=["on-path", "off-path"])
def test_the_retry_line_runs_cookiecutter_as_the_user_did(tmp_path: Path, on_path: bool) -> None:
    script = Path(tool("cookiecutter"))
    bin_dirs = [str(script.parent)] if on_path else []
    env = {**os.environ, "PATH": os.pathsep.join([*bin_dirs, "/usr/bin", "/bin"])}
    done = cookiecutter(
        "--no-input", "-o", str(tmp_path), str(TEMPLATE_DIR), "version=v1", cwd=tmp_path, env=env
    )
    assert done.returncode != 0
    words = retry_line(done.stderr)
    assert (words[0] if on_path else Path(words[0]).resolve()) == (
        "cookiecutter" if on_path else script.resolve()
    )


def test_the_retry_line_under_pipx_says_pipx_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_hooks import PRE

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "prefix", "/home/ada/.local/pipx/.cache/0123abcd")
    assert PRE.cookiecutter_command() == ["pipx", "run", "cookiecutter"]


def assert_same_tree(left: Path, right: Path) -> None:
    """The two projects hold the same files with the same bytes (git folders aside)."""

    def files(root: Path) -> set[str]:
        return {
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(root).parts
        }

    assert files(left) == files(right)
    names = sorted(files(left))
    _, mismatch, errors = filecmp.cmpfiles(left, right, names, shallow=False)
    assert mismatch == []
    assert errors == []


def test_a_bake_as_a_process_writes_nothing_in_the_home_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    done = cookiecutter(
        "--no-input", "-o", str(tmp_path / "out"), str(TEMPLATE_DIR), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    # The suite's session fixture points cookiecutter's replay and clone folders
    # (and pre-commit's cache) into the test's temporary folders.
    assert os.environ.get("COOKIECUTTER_CONFIG")
    assert os.environ.get("PRE_COMMIT_HOME", "").startswith(tempfile_root())
    assert sorted(p.name for p in home.iterdir()) == []


def tempfile_root() -> str:
    import tempfile

    return str(Path(tempfile.gettempdir()).resolve())
