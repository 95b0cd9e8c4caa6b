"""Jinja's bytecode cache between bakes changes nothing in the output.

``template_cache.py`` gives cookiecutter's Jinja environment Jinja's own
``FileSystemBytecodeCache`` (see its docstring). The whole-bake test copies the
template twice: without the cache extension and with it, and bakes through
cookiecutter's executable without the cache, cold and warm: every byte must
agree, and a warm bake writes nothing new.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import TEMPLATE_DIR, load_module, tool
from jinja2 import DictLoader, Environment, FileSystemBytecodeCache

CACHE = load_module(TEMPLATE_DIR / "template_cache.py", "template_cache_under_test")
EXTENSION = "template_cache.CompiledTemplates"
IGNORED = shutil.ignore_patterns(".git", ".venv", ".cache", "node_modules", "__pycache__")


def tree_differences(left: Path, right: Path) -> list[str]:
    """Paths that differ between two folders (missing on a side, or other bytes)."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(prefix + name for name in cmp.left_only + cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        found.extend(prefix + name for name in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right), "")
    return sorted(found)


def copy_template(destination: Path, *, cache: bool) -> Path:
    """The template's files (no caches, no venv) in ``destination``, the cache on or off."""
    shutil.copytree(TEMPLATE_DIR, destination, ignore=IGNORED)
    if not cache:
        settings = json.loads((destination / "cookiecutter.json").read_text(encoding="utf-8"))
        settings["_extensions"].remove(EXTENSION)
        (destination / "cookiecutter.json").write_text(json.dumps(settings), encoding="utf-8")
    return destination


def bake_cli(template: Path, out: Path, config: Path, *options: str) -> Path:
    flags = ["--no-input", "--config-file", str(config), "-o", str(out)]
    subprocess.run(
        [tool("cookiecutter"), *flags, str(template), "init_git=no", *options],
        check=True,
        capture_output=True,
    )
    (project,) = out.iterdir()
    return project


@pytest.mark.parametrize(
    "options",
    [(), ("ci=gitlab", "license=Apache-2.0", "docs=none", 'project_name=Zoë\'s "Net"')],
    ids=["defaults", "options"],
)
def test_bakes_agree_without_cache_cold_and_warm(
    tmp_path: Path, cc_config: Path, options: tuple[str, ...]
) -> None:
    plain = copy_template(tmp_path / "plain", cache=False)
    cached = copy_template(tmp_path / "cached", cache=True)
    reference = bake_cli(plain, tmp_path / "out-plain", cc_config, *options)
    assert not (plain / ".cache").exists(), "without the extension nothing is cached"
    cold = bake_cli(cached, tmp_path / "out-cold", cc_config, *options)
    entries = sorted((cached / ".cache" / "jinja").iterdir())
    assert len(entries) > 20, "the cold bake cached the template files"
    filled = {entry.name: entry.stat().st_mtime_ns for entry in entries}
    warm = bake_cli(cached, tmp_path / "out-warm", cc_config, *options)
    assert tree_differences(reference, cold) == []
    assert tree_differences(reference, warm) == []
    after = {
        entry.name: entry.stat().st_mtime_ns for entry in (cached / ".cache" / "jinja").iterdir()
    }
    assert after == filled, "a warm bake compiles nothing new"


def test_an_edited_file_compiles_afresh(tmp_path: Path) -> None:
    sources = {"a.txt": "{{ 1 + 1 }}"}
    cache = CACHE.bytecode_cache(tmp_path / "cache")
    assert isinstance(cache, FileSystemBytecodeCache)
    first = Environment(loader=DictLoader(sources), bytecode_cache=cache)
    assert first.get_template("a.txt").render() == "2"
    sources["a.txt"] = "{{ 2 + 2 }}"
    second = Environment(loader=DictLoader(sources), bytecode_cache=cache)
    assert second.get_template("a.txt").render() == "4"


def test_an_unwritable_folder_only_means_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    assert CACHE.bytecode_cache(blocker / "jinja") is None
    env = Environment()
    env.bytecode_cache = None
    assert env.from_string("{{ 'still' }} renders").render() == "still renders"


def test_an_environment_with_a_cache_keeps_its_own() -> None:
    own = FileSystemBytecodeCache()
    env = Environment(bytecode_cache=own, extensions=[CACHE.CompiledTemplates])
    assert env.bytecode_cache is own
