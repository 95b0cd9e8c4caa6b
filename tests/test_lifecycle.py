"""The template's life-cycle: updates with cruft, replays, and its version.

The cruft and replay tests run the real command-line tools as a user would,
against local paths only (no network), with a private git and cookiecutter
configuration so nothing of the machine's own setup is read or written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import Bake
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, BakedProject, tool

TEMPLATE_VERSION: str = COOKIECUTTER_JSON["_template_version"]
PROJECT_DIR = "{{project_folder(cookiecutter.project_slug)}}"
# Not part of the template: skipped when copying it (at the top / at any depth).
SKIP_AT_TOP = {".git", ".venv", ".cache", "node_modules"}
SKIP_ANYWHERE = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
# A released heading of Keep a Changelog: "## [1.2.3] - 2026-01-31".
RELEASE = re.compile(r"^## \[(?P<version>\d+\.\d+\.\d+)\] - (?P<date>\d{4}-\d{2}-\d{2})\s*$", re.M)


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    """Environment for git, cruft and cookiecutter: no global config, a test identity.

    ``COOKIECUTTER_CONFIG`` keeps cookiecutter's clone and replay folders in
    ``tmp_path`` (a replay writes a record of every bake there).
    """
    config = tmp_path / "config"
    config.mkdir()
    (config / "gitconfig").write_text("", encoding="utf-8")
    rc = config / "cookiecutterrc.yaml"
    rc.write_text(
        f"cookiecutters_dir: {json.dumps(str(config / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(config / 'replay'))}\n",
        encoding="utf-8",
    )
    identity = {"NAME": "Template Tests", "EMAIL": "tests@example.invalid"}
    return {
        **os.environ,
        "COOKIECUTTER_CONFIG": str(rc),
        "GIT_CONFIG_GLOBAL": str(config / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        **{
            f"GIT_{who}_{key}": value
            for who in ("AUTHOR", "COMMITTER")
            for key, value in identity.items()
        },
    }


def run(
    *command: str | Path, cwd: Path, env: Mapping[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected failure show its whole output."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} failed ({result.returncode})\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def commit_all(repo: Path, message: str, env: Mapping[str, str]) -> None:
    if not (repo / ".git").exists():
        run("git", "init", "-q", cwd=repo, env=env)
    run("git", "add", "-A", cwd=repo, env=env)
    run("git", "commit", "-q", "-m", message, cwd=repo, env=env)


def copy_template(destination: Path) -> Path:
    """The template as a fork would hold it, without this checkout's caches."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == TEMPLATE_DIR
        return {n for n in names if n in SKIP_ANYWHERE or (top and n in SKIP_AT_TOP)}

    shutil.copytree(TEMPLATE_DIR, destination, ignore=ignore)
    return destination


def write(path: Path, text: str) -> None:
    """Write text with LF line endings, as git checks the template out everywhere."""
    path.write_text(text, encoding="utf-8", newline="\n")


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def bump(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def test_cruft_update_brings_a_baked_project_up_to_date(
    tmp_path: Path, tool_env: dict[str, str]
) -> None:
    cruft = tool("cruft")
    template = copy_template(tmp_path / "template")
    commit_all(template, "template 1", tool_env)
    # init_git: the post-generation hook makes the repository cruft updates need,
    # and must not in cruft's own temporary re-bakes (their diff would hold it).
    answers = {"project_name": "Café Vision Lab", "license": "BSD-3-Clause", "init_git": "yes"}

    out = tmp_path / "out"
    run(
        cruft, "create", "--no-input", "--output-dir", out,
        "--extra-context", json.dumps(answers), template,
        cwd=tmp_path, env=tool_env,
    )  # fmt: skip
    (project,) = out.iterdir()
    assert project.name == "cafe-vision-lab"

    # .cruft.json: the template URL as given (made absolute), the commit, and the
    # answers with the template's own private values; no other path of this machine.
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert state["template"] == str(template)
    context = state["context"]["cookiecutter"]
    assert {k: context[k] for k in answers} == answers
    private = {k for k in COOKIECUTTER_JSON if k.startswith("_") and k != "__prompts__"}
    assert {k for k in context if k.startswith("_")} == private | {"_template", "_commit"}
    assert context["_template"] == state["template"]
    leaks = [s for s in strings(state) if str(tmp_path) in s and s != state["template"]]
    assert not leaks, f".cruft.json records machine paths: {leaks}"
    record = BakedProject(project).answers
    assert record == {k: v for k, v in context.items() if not k.startswith("_")} | {
        "_template_version": TEMPLATE_VERSION
    }

    # The person's own edit, committed, must survive the update (3-way merge).
    assert (project / ".git").is_dir()
    readme = project / "README.md"
    write(readme, "Local note.\n\n" + readme.read_text(encoding="utf-8"))
    commit_all(project, "link to the template and edit", tool_env)

    # A new template release: a new version and a line added to a baked file.
    new_version = bump(TEMPLATE_VERSION)
    config = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    config["_template_version"] = new_version
    write(template / "cookiecutter.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    added = f"# added by template {new_version}"
    gitignore = template / PROJECT_DIR / ".gitignore"
    write(gitignore, gitignore.read_text(encoding="utf-8") + added + "\n")
    commit_all(template, "template 2", tool_env)
    head = run("git", "rev-parse", "HEAD", cwd=template, env=tool_env).stdout.strip()

    outdated = run(cruft, "check", cwd=project, env=tool_env, check=False)
    assert outdated.returncode == 1, outdated.stdout + outdated.stderr

    run(
        cruft, "update", "--skip-apply-ask", "--allow-untracked-files",
        cwd=project, env=tool_env,
    )  # fmt: skip
    assert run(cruft, "check", cwd=project, env=tool_env).returncode == 0
    assert (project / ".gitignore").read_text(encoding="utf-8").endswith(added + "\n")
    assert readme.read_text(encoding="utf-8").startswith("Local note.\n")
    assert not list(project.rglob("*.rej")), "the update left merge conflicts"
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert state["commit"] == head
    assert state["context"]["cookiecutter"]["_template_version"] == new_version
    assert BakedProject(project).answers["_template_version"] == new_version
    assert BakedProject(project).answers["project_name"] == answers["project_name"]


def test_replaying_the_recorded_answers_rebakes_the_same_project(
    bake: Bake, tmp_path: Path, tool_env: dict[str, str]
) -> None:
    original = bake(project_name="Café Vision Lab", license="BSD-3-Clause", docker="no")
    run(
        tool("cookiecutter"), "--replay-file", original.path / ".cookiecutter.json",
        "--output-dir", tmp_path / "out", TEMPLATE_DIR,
        cwd=tmp_path, env=tool_env,
    )  # fmt: skip
    replayed = BakedProject(tmp_path / "out" / original.path.name)
    assert replayed.files() == original.files()
    differ = [
        name
        for name in sorted(original.files())
        if (original.path / name).read_bytes() != (replayed.path / name).read_bytes()
    ]
    assert not differ, f"the replay differs in {differ}"


def test_changelog_top_release_is_the_template_version(default_project: BakedProject) -> None:
    changelog = (TEMPLATE_DIR / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    releases = [m["version"] for m in RELEASE.finditer(changelog)]
    assert releases, "CHANGELOG.md has no released version"
    assert releases[0] == TEMPLATE_VERSION
    as_tuples = [tuple(map(int, v.split("."))) for v in releases]
    assert as_tuples == sorted(as_tuples, reverse=True), "releases must be newest first"
    assert default_project.answers["_template_version"] == TEMPLATE_VERSION
