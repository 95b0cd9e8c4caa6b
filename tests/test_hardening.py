"""Supply chain and third-party checkers: what a baked project guards against.

- Lightning's compromised releases (2.6.2, 2.6.3; GHSA-w37p-236h-pfx3) can
  never be resolved, and Poetry never locks a release younger than a week.
- Every bake names its repository; the GitLab pipeline declares no empty stage;
  ``.dockerignore`` names only files the bake has.
- pyright (standard mode, plus ``@override`` on every overriding method) is
  clean on the default bake, as mypy is.

zizmor on every GitHub bake: ``test_options.py``; on the template's own
workflow: ``test_template_ci.py``.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import checks
import pytest
from checks import check_gitlab_ci
from conftest import Bake
from e2e.steps import run_tracked
from harness import BakedProject, choices, tool
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

COMPROMISED_LIGHTNING = ("2.6.2", "2.6.3")
ADVISORY = "GHSA-w37p-236h-pfx3"
MIN_RELEASE_AGE_DAYS = 7


def requirement(project: BakedProject, name: str) -> Requirement:
    found = [
        Requirement(line)
        for line in project.toml()["project"]["dependencies"]
        if Requirement(line).name == name
    ]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


@pytest.mark.parametrize("dataset", choices()["dataset"])
def test_compromised_lightning_releases_are_excluded(bake: Bake, dataset: str) -> None:
    project = bake(dataset=dataset)
    specifier = requirement(project, "lightning").specifier
    for version in COMPROMISED_LIGHTNING:
        assert not specifier.contains(version), f"lightning {specifier} allows {version}"
    assert specifier.contains("2.6.1")
    assert specifier.contains("2.6.6")
    lines = project.read("pyproject.toml").splitlines()
    at = next(n for n, line in enumerate(lines) if line.strip().startswith('"lightning'))
    assert any(ADVISORY in line for line in lines[max(0, at - 3) : at]), "cite the advisory"


def poetry_config(project: BakedProject, key: str, tmp_path: Path) -> str:
    """``poetry config KEY`` as Poetry reads it in the project (no user config)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("POETRY_") or key == "POETRY_NO_INTERACTION"
    }
    env |= {"POETRY_CONFIG_DIR": str(tmp_path / "config"), "POETRY_NO_INTERACTION": "1"}
    result = project.run(tool("poetry"), "config", key, env=env)
    return result.stdout.strip()


def test_poetry_never_locks_a_release_younger_than_a_week(
    default_project: BakedProject, tmp_path: Path
) -> None:
    days = poetry_config(default_project, "solver.min-release-age", tmp_path)
    assert int(days) >= MIN_RELEASE_AGE_DAYS
    # The setting exists from Poetry 2.4 on: older Poetry must refuse the project.
    required = SpecifierSet(default_project.toml()["tool"]["poetry"]["requires-poetry"])
    assert not required.contains("2.3.9")
    assert required.contains("2.4.0")


def test_the_readme_says_how_to_lift_the_cooldown_for_one_package(
    default_project: BakedProject,
) -> None:
    readme = default_project.read("README.md")
    assert "POETRY_SOLVER_MIN_RELEASE_AGE_EXCLUDE=" in readme
    assert "solver.min-release-age-exclude" in readme


@pytest.mark.parametrize("ci", choices()["ci"])
def test_every_bake_names_its_repository(bake: Bake, ci: str) -> None:
    project = bake(ci=ci, github_owner="some-org")
    url = project.toml()["project"]["urls"]["Repository"]
    host = "gitlab.com" if ci == "gitlab" else "github.com"
    assert url == f"https://{host}/some-org/{project.answers['project_slug']}"


def test_the_docs_group_has_a_signature_formatter(default_project: BakedProject) -> None:
    """mkdocstrings warns, and formats no signature, without black or ruff beside it."""
    docs = {Requirement(d).name for d in default_project.toml()["dependency-groups"]["docs"]}
    assert docs & {"ruff", "black"}, docs


def test_the_pipeline_declares_no_stage_without_a_job(bake: Bake) -> None:
    check_gitlab_ci(bake(ci="gitlab", docs="none"))
    check_gitlab_ci(bake(ci="gitlab", docs="mkdocs"))


@pytest.mark.parametrize("license", ["MIT", "none"])
def test_dockerignore_names_the_license_only_when_there_is_one(bake: Bake, license: str) -> None:
    project = bake(license=license)
    assert ("LICENSE" in project.read(".dockerignore")) == project.exists("LICENSE")


def test_typing_extensions_is_a_direct_dependency(default_project: BakedProject) -> None:
    """The baked code imports ``override`` from it, so it must not arrive by chance."""
    importers = [
        relative
        for relative in default_project.files()
        if relative.endswith(".py")
        and any(
            isinstance(node, ast.ImportFrom) and node.module == "typing_extensions"
            for node in ast.walk(ast.parse(default_project.read(relative)))
        )
    ]
    assert importers
    assert requirement(default_project, "typing-extensions").specifier.contains("4.5.0")


@pytest.mark.pyright
def test_pyright_reports_nothing_on_the_default_bake() -> None:
    try:
        tool("pyright")
    except FileNotFoundError:
        pytest.skip("pyright is not installed (it is in the test group: pip install pyright)")
    assert checks.PYRIGHT_RUN is not None, "conftest's _background_pyright did not start"
    try:
        findings = checks.pyright_findings(checks.PYRIGHT_RUN)
    except RuntimeError as error:  # e.g. its npm package could not be fetched (offline)
        pytest.skip(f"pyright could not run: {error}")
    assert findings == []


# --- no test of a bake leaves a process behind (e2e.steps.run_tracked) -------

# A server started in a session of its own, its output elsewhere.
LEAVES_A_SLEEPER = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c',"
    " 'import time; time.sleep(60)'], start_new_session=True,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
)
# A child that keeps the output pipe open: the command never seems to end.
LEAVES_A_CHILD_ON_THE_PIPE = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c',"
    " 'import time; time.sleep(60)'])"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("script", [LEAVES_A_SLEEPER, LEAVES_A_CHILD_ON_THE_PIPE])
def test_run_tracked_names_and_kills_a_process_left_behind(tmp_path: Path, script: str) -> None:
    """Even one that started a session of its own, as servers in tests do."""
    env = dict(os.environ)
    with pytest.raises(AssertionError, match="left running") as caught:
        run_tracked([sys.executable, "-c", script], tmp_path, env, timeout=2, grace=0.5)
    pid = int(str(caught.value).splitlines()[1].split(":")[0])
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), f"{pid} was not killed"
    run_tracked([sys.executable, "-c", "pass"], tmp_path, env, grace=0.5)  # nothing left: fine


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended: only its parent has to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
