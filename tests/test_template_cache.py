"""Jinja's compiled code, cached between bakes, changes nothing in the output.

``template_cache.py`` keeps the code objects cookiecutter's Jinja environment
compiles (see its docstring). The whole-bake test copies the template three
times over: without the cache extension, with an empty cache, with a full
one, and bakes each through cookiecutter's executable: every byte must agree.
The rest checks the pieces: strings rendered with their leading text as data,
the store's file (atomic, corrupt, bounded) and the fingerprint.
"""

from __future__ import annotations

import json
import marshal
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.utils import create_env_with_context
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, load_module, tool
from jinja2 import Environment
from test_inprocess_hooks import tree_differences

CACHE = load_module(TEMPLATE_DIR / "template_cache.py", "template_cache_under_test")
EXTENSION = "template_cache.CompiledTemplates"
IGNORED = shutil.ignore_patterns(".git", ".venv", ".cache", "node_modules", "__pycache__")


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
        [tool("cookiecutter"), *flags, str(template), *options],
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
    cold = bake_cli(cached, tmp_path / "out-cold", cc_config, *options)
    stores = sorted((cached / ".cache" / "jinja").glob("code-*.marshal"))
    assert len(stores) == 1, "the cold bake wrote one store"
    filled = stores[0].stat().st_mtime_ns
    warm = bake_cli(cached, tmp_path / "out-warm", cc_config, *options)
    assert tree_differences(reference, cold) == []
    assert tree_differences(reference, warm) == []
    assert stores[0].stat().st_mtime_ns == filled, "a warm bake compiles nothing new"
    entries = marshal.loads(stores[0].read_bytes())
    assert not [key for key in entries if "out-" in repr(key)], "no output folder kept"


# --------------------------------------------------------------- paths


def template_env(folder: Path) -> Environment:
    """cookiecutter's environment for this template, caching into ``folder``."""
    settings = {**COOKIECUTTER_JSON, "_extensions": ["local_extensions.ValueFilters"]}
    env: Environment = create_env_with_context({"cookiecutter": settings})
    CACHE.install(env, folder)
    return env


STRINGS = [
    "/out/my-project/./configs",
    'Zoë\'s "Net" \\ 😀',
    "",
    "a{b}c",
    "{{ cookiecutter.package_name }}",
    "{{ 'folded' }} constant",
    '/o u t/it\'s "q"\\x/./src/{{ cookiecutter.package_name }}',
    "/a/{{ cookiecutter.project_slug }}/b{{ cookiecutter.package_name }}",
    "/a/{% if cookiecutter.docs == 'mkdocs' %}docs{% endif %}",
    "/a/b {{- cookiecutter.package_name }}",  # head ends in a space: plain compile
    "/a/{not jinja}/c",
    "/a/b/{# a comment #}c",
]


@pytest.mark.parametrize("source", STRINGS)
def test_strings_render_as_jinja_renders_them(tmp_path: Path, source: str) -> None:
    context = {"cookiecutter": {"package_name": "pkg", "project_slug": "p-s", "docs": "mkdocs"}}
    expected = Environment(keep_trailing_newline=True).from_string(source).render(**context)
    for _ in range(2):  # the first fills the cache, the second reads it
        assert template_env(tmp_path).from_string(source).render(**context) == expected
        CACHE.store_for(template_env(tmp_path), tmp_path).save()


def test_a_strings_head_is_not_kept(tmp_path: Path) -> None:
    env = template_env(tmp_path)
    for head in ("/first/place", "/second/place"):
        env.from_string(head + "/./src/{{ cookiecutter.package_name }}")
    for answer in ("First answer", "Second answer"):
        env.from_string(answer)
    keys = list(CACHE.store_for(env, tmp_path).entries)
    assert keys == [
        ("string", CACHE.HEAD + "{{ cookiecutter.package_name }}"),
        ("string", CACHE.HEAD),
    ]


# --------------------------------------------------------------- the store


def test_a_corrupt_store_is_ignored_and_replaced(tmp_path: Path) -> None:
    env = template_env(tmp_path)
    store = CACHE.store_for(env, tmp_path)
    store.path.write_bytes(b"\x00not marshal")
    fresh = CACHE.CodeStore(store.path)
    assert fresh.entries == {}
    fresh.put(("string", "x"), compile("x = 1", "<template>", "exec"))
    fresh.save()
    assert list(marshal.loads(store.path.read_bytes())) == [("string", "x")]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_a_save_merges_what_another_process_added(tmp_path: Path) -> None:
    path = tmp_path / "store.marshal"
    one, two = CACHE.CodeStore(path), CACHE.CodeStore(path)
    one.put(("string", "a"), "code a")
    one.save()
    two.put(("string", "b"), "code b")
    two.save()
    both = {("string", "a"), ("string", "b")}
    assert set(marshal.loads(path.read_bytes())) == both


def test_a_full_store_keeps_only_what_this_process_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.marshal"
    old = {("string", str(n)): "old" for n in range(5)}
    path.write_bytes(marshal.dumps(old))
    monkeypatch.setattr(CACHE, "MAX_ENTRIES", 4)
    store = CACHE.CodeStore(path)
    assert store.get(("string", "0")) == "old"
    store.put(("string", "new"), "new")
    store.save()
    assert set(marshal.loads(path.read_bytes())) == {
        ("string", "0"),
        ("string", "new"),
    }


def test_an_unwritable_folder_only_means_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    store = CACHE.CodeStore(blocker / "store.marshal")
    store.put(("string", "x"), "x")
    store.save()  # no exception
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_the_fingerprint_follows_syntax_and_filters() -> None:
    def env(**options: Any) -> Environment:
        return Environment(keep_trailing_newline=True, **options)

    base = CACHE.environment_fingerprint(env())
    assert CACHE.environment_fingerprint(env()) == base
    assert CACHE.environment_fingerprint(env(trim_blocks=True)) != base
    assert CACHE.environment_fingerprint(env(variable_start_string="<<")) != base
    more = env()
    more.filters["extra"] = str
    assert CACHE.environment_fingerprint(more) != base


def test_a_new_version_of_a_file_replaces_the_old_entry(tmp_path: Path) -> None:
    path = tmp_path / "store.marshal"
    first = CACHE.CodeStore(path)
    first.put(("file", "pyproject.toml", "checksum-1"), "old code", versioned=True)
    first.put(("file", "README.md", "checksum-1"), "other file", versioned=True)
    first.save()
    edited = CACHE.CodeStore(path)
    edited.put(("file", "pyproject.toml", "checksum-2"), "new code", versioned=True)
    edited.save()
    assert marshal.loads(path.read_bytes()) == {
        ("file", "README.md", "checksum-1"): "other file",
        ("file", "pyproject.toml", "checksum-2"): "new code",
    }
