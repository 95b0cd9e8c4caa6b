"""The baked ``.gitlab-ci.yml``, run for real by gitlab-ci-local (shell executor).

The default bake with ``ci=gitlab``, in a git repository of its own, runs its
``lint`` job and the ``test`` job of its lowest Python: Poetry installs the
project (torch from the local stand-in of PyTorch's CPU index, every other
package through the mirror, as in ``test_poetry_path.py``), then the linters,
mypy and the test suite run exactly as the pipeline's scripts say.

The shell executor runs the jobs on this machine instead of in the pipeline's
``python:<version>-slim`` image: the job's ``python`` and ``poetry`` are the
test environment's (already holding a Poetry 2, so the job's
``pip install "poetry>=2,<3"`` installs nothing, and ``PIP_NO_INDEX`` makes
sure of it). gitlab-ci-local comes from npm (``run_tests.py`` installs it
into ``.cache/npm``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import BIN_DIR, TEMPLATE_DIR, BakedProject

from .conftest import POETRY_CACHE, Report
from .local_index import LocalIndex
from .steps import gpu_distributions, installed_distributions, run_tracked
from .test_poetry_path import bake_for_e2e

pytestmark = pytest.mark.e2e

GITLAB_CI_LOCAL = TEMPLATE_DIR / ".cache" / "npm" / "node_modules" / ".bin" / "gitlab-ci-local"
NAME = "gitlab-ci-local (lint, test)"


def git(project: BakedProject, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "e2e",
        "GIT_AUTHOR_EMAIL": "e2e@example.com",
        "GIT_COMMITTER_NAME": "e2e",
        "GIT_COMMITTER_EMAIL": "e2e@example.com",
    }
    subprocess.run(["git", *args], cwd=project.path, env=env, check=True, capture_output=True)


def test_gitlab_pipeline_lint_and_test_jobs_pass(
    bake: Any,
    e2e_dir: Path,
    pytorch_index: LocalIndex,
    mirror_url: str,
    poetry_env: dict[str, str],
    e2e_report: Report,
) -> None:
    if not GITLAB_CI_LOCAL.exists():
        pytest.skip("gitlab-ci-local is not installed: run `python run_tests.py` (it uses npm)")
    missing = [name for name in ("git", "rsync") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"gitlab-ci-local needs {' and '.join(missing)} (not installed)")
    # Its own repository (with a remote), not the one a bake makes by default.
    options = {"ci": "gitlab", "init_git": "no"}
    project = bake_for_e2e(bake, e2e_dir, "gitlab", options, pytorch_index, mirror_url)
    git(project, "init", "--quiet", "--initial-branch", "main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "baked")
    git(project, "remote", "add", "origin", "https://gitlab.example.com/group/project.git")
    git(project, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")

    lowest = project.yaml(".gitlab-ci.yml")["variables"]["PYTHON_VERSION"]
    jobs = ["lint", f"test: [{lowest}]"]
    env = {
        **poetry_env,
        # The test environment's python and poetry come first on PATH.
        "PATH": os.pathsep.join([str(BIN_DIR), poetry_env.get("PATH", "")]),
        "PIP_NO_INDEX": "1",
    }
    command = [
        str(GITLAB_CI_LOCAL),
        "--force-shell-executor",
        "--concurrency",
        "1",  # the jobs share the project folder (and its .venv)
        "--home",
        str(e2e_dir / "gitlab-ci-local-home"),
        # Poetry's downloads from the session's shared cache, not a cold one per job.
        "--variable",
        f"POETRY_CACHE_DIR={POETRY_CACHE}",
        *jobs,
    ]
    result, elapsed = run_tracked(command, project.path, env, check=False, timeout=1500)
    output = result.stdout + result.stderr
    e2e_report.record(NAME, total_s=round(elapsed, 1))
    assert result.returncode == 0, output[-8000:]
    for job in jobs:  # gitlab-ci-local's closing summary: " PASS  <job>"
        assert re.search(rf"^\s*PASS\s+{re.escape(job)}", output, re.M), output[-4000:]
    assert "$ poetry run mypy" in output
    assert re.search(r"\d+ passed", output)
    # The pipeline's `poetry install` took torch's CPU build, nothing from NVIDIA.
    venv = project.path / ".venv"
    assert installed_distributions(venv).get("torch", "").endswith("+cpu")
    assert not gpu_distributions(venv)
