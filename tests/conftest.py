"""Fixtures shared by every test of the template.

``bake(**options)`` bakes the template once per distinct option set in a test
session and hands back a :class:`BakedProject`; tests must treat it as
read-only (``project.copy(tmp_path / "p")`` gives a private copy to change).
``bake_result(**options)`` returns pytest-cookies' raw result, for bakes that
are expected to fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import checks
import pytest
from e2e_report import pytest_runtest_logreport, pytest_sessionfinish  # noqa: F401 (hooks)
from harness import TEMPLATE_DIR, BakedProject, tool

Bake = Callable[..., BakedProject]


@pytest.fixture(scope="session", autouse=True)
def _isolated_tool_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tools run on bakes from writing into the user's home or the bakes.

    mypy's cache lives in the template's ``.cache/`` (ignored by git) and is
    shared by every bake and every run: analysing torch and lightning takes
    ~12 s the first time and about a second once cached. Entries are keyed by
    file content, so a stale entry is never used.
    """
    cache = tmp_path_factory.mktemp("tool-cache")
    os.environ.setdefault("MYPY_CACHE_DIR", str(TEMPLATE_DIR / ".cache" / "mypy"))
    os.environ.setdefault("RUFF_CACHE_DIR", str(cache / "ruff"))
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    # Never let a git identity of the machine leak into (or be needed by) a test.
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    # Nothing outside the test's folders: no ~/.cookiecutter_replay from a
    # cookiecutter run as a process, no pre-commit cache in the home folder.
    config = cache / "cookiecutter.yaml"
    settings = {"cookiecutters_dir": str(cache / "cutters"), "replay_dir": str(cache / "replay")}
    config.write_text(json.dumps(settings), encoding="utf-8")  # JSON is YAML
    os.environ["COOKIECUTTER_CONFIG"] = str(config)
    os.environ["PRE_COMMIT_HOME"] = str(cache / "pre-commit")


BACKGROUND_MARKERS = ("mypy", "pyright")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the ``mypy`` and ``pyright`` tests last, once their background runs have worked."""
    items.sort(key=lambda item: any(item.get_closest_marker(m) for m in BACKGROUND_MARKERS))


@pytest.fixture(scope="session", autouse=True)
def _background_pyright(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, bake: Bake
) -> Iterator[None]:
    """Run pyright on the default bake in the background (~12 s on one core).

    Started with the session when a ``pyright`` test is selected; that test,
    collected last, reads the result (:func:`checks.pyright_findings`).
    """
    if not any(item.get_closest_marker("pyright") for item in request.session.items):
        yield
        return
    try:
        tool("pyright")
    except FileNotFoundError:
        yield  # the test says so
        return
    run = checks.start_pyright(bake(), tmp_path_factory.mktemp("pyright"))
    checks.PYRIGHT_RUN = run
    try:
        yield
    finally:
        checks.PYRIGHT_RUN = None
        if run[0].poll() is None:
            run[0].kill()
        run[0].wait()


@pytest.fixture(scope="session", autouse=True)
def _warm_mypy_cache(
    request: pytest.FixtureRequest, _isolated_tool_caches: None, bake: Bake
) -> Iterator[None]:
    """Fill mypy's cache in the background while the other tests run.

    mypy's first pass over torch and lightning takes ~12 s on one core; on a
    fresh clone it would stand in the middle of the fast tier. Started at the
    beginning of the session, beside the tests (a second core), it is done by
    the time the ``mypy`` tests, collected last, wait for it in
    :func:`checks.check_types`.
    """
    if not any(item.get_closest_marker("mypy") for item in request.session.items):
        yield
        return
    project = bake()
    warmup = subprocess.Popen(
        [tool("mypy")],
        cwd=project.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checks.MYPY_WARMUP = warmup
    yield
    checks.MYPY_WARMUP = None
    if warmup.poll() is None:
        warmup.kill()
    warmup.wait()


@pytest.fixture(scope="session")
def cc_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cookiecutter config whose replay and clone folders are private to the tests."""
    root = tmp_path_factory.mktemp("cookiecutter-config")
    config = root / "config.yaml"
    settings = {"cookiecutters_dir": str(root / "cutters"), "replay_dir": str(root / "replay")}
    config.write_text(json.dumps(settings), encoding="utf-8")  # JSON is YAML
    return config


@pytest.fixture(scope="session")
def bake(cookies_session: Any) -> Bake:
    """Bake the template with ``options`` (strings), cached per option set."""
    cache: dict[tuple[tuple[str, str], ...], BakedProject] = {}

    def _bake(**options: str) -> BakedProject:
        key = tuple(sorted(options.items()))
        if key not in cache:
            result = cookies_session.bake(extra_context=options, template=str(TEMPLATE_DIR))
            assert result.exception is None, f"bake {options} failed: {result.exception!r}"
            assert result.exit_code == 0
            cache[key] = BakedProject(Path(result.project_path), options)
        return cache[key]

    return _bake


@pytest.fixture
def bake_result(cookies: Any) -> Callable[..., Any]:
    """Bake without asserting success; returns pytest-cookies' ``Result``."""

    def _bake(**options: str) -> Any:
        return cookies.bake(extra_context=options, template=str(TEMPLATE_DIR))

    return _bake


@pytest.fixture(scope="session")
def default_project(bake: Bake) -> BakedProject:
    """The project baked with every default answer."""
    return bake()
