"""The default bake and the foundation options: layout, metadata, packaging, style."""

from __future__ import annotations

import datetime
import fnmatch
import json
import re
import zipfile
from pathlib import Path

import pytest
from checks import check_parses, check_rendered, check_style, check_types
from conftest import Bake
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, BakedProject, choices, template_files, tool
from poetry.core.factory import Factory
from poetry.core.masonry import api as build_api

SUPPORTED_PYTHONS: list[str] = COOKIECUTTER_JSON["_python_versions"]


def test_default_bake_has_the_core_layout(default_project: BakedProject) -> None:
    package = default_project.package
    expected = {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        ".gitignore",
        ".gitattributes",
        ".editorconfig",
        ".cookiecutter.json",
        f"src/{package}/__init__.py",
        f"src/{package}/__main__.py",
        f"src/{package}/cli.py",
        f"src/{package}/py.typed",
        "configs/default.yaml",
        "docs/training.md",
    }
    assert expected <= default_project.files()
    assert any(name.startswith("tests/test_") for name in default_project.files())


def test_default_names_derive_from_the_project_name(default_project: BakedProject) -> None:
    answers = default_project.answers
    assert answers["project_name"] == COOKIECUTTER_JSON["project_name"]
    assert answers["project_slug"] == "my-ml-project"
    assert answers["package_name"] == "my_ml_project"
    assert default_project.path.name == answers["project_slug"]


def test_no_jinja_is_left(default_project: BakedProject) -> None:
    check_rendered(default_project)


def test_every_structured_file_parses(default_project: BakedProject) -> None:
    check_parses(default_project)


def test_pyproject_is_pep621_with_poetry2(default_project: BakedProject) -> None:
    data = default_project.toml()
    project = data["project"]
    answers = default_project.answers
    assert data["build-system"] == {
        "requires": ["poetry-core>=2.0"],
        "build-backend": "poetry.core.masonry.api",
    }
    assert project["name"] == answers["project_slug"]
    assert project["version"] == answers["version"]
    assert project["description"] == answers["description"]
    assert project["authors"] == [
        {"name": answers["author_name"], "email": answers["author_email"]}
    ]
    assert project["readme"] == "README.md"
    assert project["requires-python"] == f">={answers['python_version']}"
    assert project["scripts"] == {answers["project_slug"]: f"{answers['package_name']}.cli:main"}
    assert {"pytest", "pytest-cov", "ruff", "mypy"} <= {
        re.split(r"[<>=\[;]", spec)[0] for spec in data["dependency-groups"]["dev"]
    }
    pytest_options = data["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in pytest_options["addopts"]


def test_poetry_core_validates_pyproject(default_project: BakedProject) -> None:
    result = Factory.validate(default_project.toml(), strict=True)
    assert result == {"errors": [], "warnings": []}


def test_poetry_check_strict_has_no_warnings(default_project: BakedProject) -> None:
    result = default_project.run(tool("poetry"), "check", "--strict")
    assert result.stdout.strip() == "All set!", result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower()


def test_wheel_and_sdist_build_in_process(
    default_project: BakedProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = default_project.package
    monkeypatch.chdir(default_project.path)
    wheel = tmp_path / build_api.build_wheel(str(tmp_path))
    sdist = tmp_path / build_api.build_sdist(str(tmp_path))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"{package}/__init__.py" in names
    assert f"{package}/py.typed" in names
    assert any(name.endswith("entry_points.txt") for name in names)
    assert sdist.name.endswith(".tar.gz")


def test_default_bake_passes_its_linters(default_project: BakedProject) -> None:
    check_style(default_project)


@pytest.mark.mypy
def test_default_bake_passes_mypy(default_project: BakedProject) -> None:
    check_types(default_project)


def test_package_version_comes_from_installed_metadata(default_project: BakedProject) -> None:
    init = default_project.read(f"src/{default_project.package}/__init__.py")
    assert "importlib.metadata" in init
    assert default_project.answers["version"] not in init


@pytest.mark.parametrize("license_id", choices()["license"])
def test_every_license(bake: Bake, license_id: str) -> None:
    project = bake(license=license_id, author_name="Ada Lovelace")
    metadata = project.toml()["project"]
    if license_id == "none":
        assert not project.exists("LICENSE")
        assert "license" not in metadata
        assert "license-files" not in metadata
        return
    assert metadata["license"] == license_id
    text = project.read("LICENSE")
    assert "Ada Lovelace" in text
    assert str(datetime.datetime.now(datetime.timezone.utc).year) in text
    first_words = {
        "MIT": "MIT License",
        "BSD-3-Clause": "BSD 3-Clause License",
        "Apache-2.0": "Apache License",
        "GPL-3.0-only": "GNU GENERAL PUBLIC LICENSE",
    }
    assert first_words[license_id] in text
    assert text.endswith("\n")
    assert not text.endswith("\n\n")


@pytest.mark.parametrize("python_version", choices()["python_version"])
def test_every_python_version(bake: Bake, python_version: str) -> None:
    project = bake(python_version=python_version)
    metadata = project.toml()["project"]
    assert metadata["requires-python"] == f">={python_version}"
    versions = [
        c.rsplit(" :: ", 1)[1]
        for c in metadata["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions == [
        v
        for v in SUPPORTED_PYTHONS
        if tuple(map(int, v.split("."))) >= tuple(map(int, python_version.split(".")))
    ]


def test_answers_record_has_no_machine_paths(default_project: BakedProject) -> None:
    text = default_project.read(".cookiecutter.json")
    record = json.loads(text)["cookiecutter"]
    assert str(TEMPLATE_DIR) not in text
    assert str(default_project.path) not in text
    assert not [key for key in record if key.startswith("_") and key != "_template_version"]
    assert record["_template_version"] == COOKIECUTTER_JSON["_template_version"]


def test_readme_walks_a_newcomer_through(default_project: BakedProject) -> None:
    readme = default_project.read("README.md")
    slug = default_project.answers["project_slug"]
    for command in (
        "pipx install poetry",
        "poetry install",
        "poetry run pytest",
        f"poetry run {slug} fit",
        "poetry run ruff check",
        "poetry run ruff format",
        "poetry run mypy",
    ):
        assert command in readme, command


def test_gitignore_keeps_ml_artefacts_out(default_project: BakedProject) -> None:
    ignored = set(default_project.read(".gitignore").split())
    assert {"/data/", "runs/", "*.ckpt", ".env", ".venv/", "mlruns/", "lightning_logs/"} <= ignored
    # The data folder at the root only: configs/data/ holds the example data configs.
    assert default_project.exists("configs/data/table.yaml")
    assert default_project.exists("configs/data/images.yaml")


def test_line_endings_are_normalised(default_project: BakedProject) -> None:
    assert "* text=auto eol=lf" in default_project.read(".gitattributes")
    assert "end_of_line = lf" in default_project.read(".editorconfig")


def test_template_readme_documents_every_question_and_the_two_commands() -> None:
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    questions = [key for key in COOKIECUTTER_JSON if not key.startswith("_")]
    missing = [key for key in questions if f"`{key}`" not in readme]
    assert not missing, f"README's table of questions lacks {missing}"
    assert "cookiecutter --no-input" in readme
    assert "python run_tests.py" in readme
    # CI runs exactly the README's test command.
    assert "run_tests.py" in (TEMPLATE_DIR / ".ci" / "run").read_text(encoding="utf-8")


def test_files_without_jinja_are_copied_not_rendered() -> None:
    """``_copy_without_render`` lists exactly the project files that hold no Jinja.

    Copying skips cookiecutter's binary check and Jinja for them (a faster
    bake); a file with Jinja in that list would reach projects unrendered.
    """
    patterns = COOKIECUTTER_JSON["_copy_without_render"]
    markers = ("{{", "{%", "{#")
    root = TEMPLATE_DIR / "{{project_folder(cookiecutter.project_slug)}}"
    copied, plain = set(), set()
    for relative in template_files():
        path = relative.as_posix()
        if any(fnmatch.fnmatch(path, pattern) for pattern in patterns):
            copied.add(path)
        text = (root / relative).read_text(encoding="utf-8")
        if not any(marker in text for marker in markers):
            plain.add(path)
    assert copied == plain, "add Jinja-free files to _copy_without_render, remove the others"
    unused = [p for p in patterns if not any(fnmatch.fnmatch(path, p) for path in copied)]
    assert unused == []
