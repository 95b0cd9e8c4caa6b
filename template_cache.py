"""Jinja's compiled code for this template, kept on disk between bakes.

cookiecutter compiles Jinja source afresh in every bake: each template file,
but also each short string it renders with ``Environment.from_string`` (every
path name, every default and choice in ``cookiecutter.json``, each hook
script). Compiling is most of a bake's own time, and the sources rarely
change, so :class:`CompiledTemplates` keeps the code objects in one file per
Python and Jinja version under ``.cache/jinja`` in the template's root
(ignored by git), loaded once per process and written back at exit when a
bake compiled something new.

Entries are keyed by their source: a template file by its name and checksum
(an edited file compiles afresh and replaces its old entry), a string by what
follows its Jinja-free head, which goes into the code as data
(:func:`string_code`: answers and output folders never become entries). A
change to the environment's syntax, extensions or filters selects another
cache file. Where the folder cannot be written, or the file is unreadable,
bakes compile as cookiecutter does. The output of a bake never depends on the
cache: ``tests/test_template_cache.py`` bakes with it off, cold and warm, and
compares every byte.

cookiecutter loads this module from the template's root (``_extensions`` in
``cookiecutter.json``), inside whatever environment cookiecutter was installed
into, so it uses the standard library and Jinja alone.
"""

from __future__ import annotations

import atexit
import hashlib
import marshal
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any

import jinja2
from jinja2 import BytecodeCache, Environment
from jinja2.bccache import Bucket
from jinja2.ext import Extension

CACHE_DIR = Path(__file__).resolve().parent / ".cache" / "jinja"
# Above this many entries a save keeps only what this process used (property
# tests bake thousands of distinct answers, each compiled as a string).
MAX_ENTRIES = 4096

Key = tuple[str, ...]


def environment_fingerprint(env: Environment) -> str:
    """What Jinja's generated code depends on besides the source itself."""
    options = (
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.optimized,
        env.is_async,
        env.autoescape if isinstance(env.autoescape, bool) else "callable",
        getattr(env.finalize, "__qualname__", None),
    )
    extensions = sorted(env.extensions)
    filters = sorted(
        (name, str(getattr(func, "jinja_pass_arg", ""))) for name, func in env.filters.items()
    )
    tests = sorted(env.tests)
    text = repr((jinja2.__version__, sys.version, options, extensions, filters, tests))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


Entry = CodeType | str  # a code object, or Jinja's Python source (paths)


class CodeStore:
    """Compiled entries by key, read from one file and written back at exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[Key, Entry] = self._read()
        self.used: set[Key] = set()
        self.dropped: set[Key] = set()
        self.dirty = False
        atexit.register(self.save)

    def _read(self) -> dict[Key, Entry]:
        try:
            data = marshal.loads(self.path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: Key) -> Entry | None:
        entry = self.entries.get(key)
        if isinstance(entry, (CodeType, str)):
            self.used.add(key)
            return entry
        return None

    def put(self, key: Key, entry: Entry, *, versioned: bool = False) -> None:
        """Add ``key``; with ``versioned``, its last item is a version (a file's
        checksum, a hook's source) and the entries of older versions go."""
        if versioned:
            stale = [old for old in self.entries if old[:-1] == key[:-1] and old != key]
            for old in stale:
                del self.entries[old]
            self.dropped.update(stale)
        self.entries[key] = entry
        self.used.add(key)
        self.dirty = True

    def save(self) -> None:
        """Write the entries, merged with the file's (another process may have
        added some), in one atomic replace; never fails a bake."""
        if not self.dirty:
            return
        self.dirty = False
        merged = {**self._read(), **self.entries}
        for key in self.dropped - self.entries.keys():
            merged.pop(key, None)
        if len(merged) > MAX_ENTRIES:
            merged = {key: merged[key] for key in self.used if key in merged}
        import tempfile  # only a process that compiled something new gets here

        temp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(marshal.dumps(merged))
            os.replace(temp, self.path)
        except (OSError, ValueError):
            if temp is not None and os.path.exists(temp):
                os.remove(temp)


_STORES: dict[str, CodeStore] = {}


def store_for(env: Environment, folder: Path = CACHE_DIR) -> CodeStore:
    """The process's one store for environments configured like ``env``."""
    name = f"code-{sys.implementation.cache_tag}-{environment_fingerprint(env)}.marshal"
    path = folder / name
    key = str(path)
    if key not in _STORES:
        _STORES[key] = CodeStore(path)
    return _STORES[key]


class LazyStore:
    """The store for an environment, chosen at first use.

    The fingerprint needs every filter, and cookiecutter creates the
    environment's extensions one by one: by the first compile all are there.
    """

    def __init__(self, env: Environment, folder: Path) -> None:
        self.env = env
        self.folder = folder
        self._store: CodeStore | None = None

    def __call__(self) -> CodeStore:
        if self._store is None:
            self._store = store_for(self.env, self.folder)
        return self._store


class StoreBytecodeCache(BytecodeCache):
    """Jinja's bytecode-cache interface (template files) over a :class:`CodeStore`."""

    def __init__(self, store: LazyStore) -> None:
        self.store = store

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self.store().get(("file", bucket.key, bucket.checksum))
        if isinstance(code, CodeType):
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is not None:
            self.store().put(("file", bucket.key, bucket.checksum), bucket.code, versioned=True)


# Stands for a string's leading text in its cached code; see :func:`string_code`.
HEAD = "\x00head\x00"


def with_constant(code: CodeType, old: str, new: str) -> tuple[CodeType, int]:
    """``code`` (and the code objects inside it) with the constant ``old`` made
    ``new``, and how many constants were replaced."""
    count = 0
    consts: list[object] = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            const, inner = with_constant(const, old, new)
            count += inner
        elif type(const) is str and const == old:
            const = new
            count += 1
        consts.append(const)
    return code.replace(co_consts=tuple(consts)), count


def string_code(source: str, compile_: Callable[..., Any], store: LazyStore) -> CodeType | None:
    """Code for a string to render, its leading Jinja-free text kept as data.

    cookiecutter compiles every answer and every folder's absolute path
    (``/out/project/./src``) as a template of its own. Keyed by their whole
    text, these would differ from bake to bake and fill the cache. So a
    string is split at its first ``{``: the *head* before it holds no Jinja
    and renders as itself. The cache keeps Jinja's code for :data:`HEAD`
    followed by the rest, and each use puts its own head in place of that
    constant. An answer without ``{``, whatever it says, shares one entry.
    None where the string does not have that simple shape (a line break in
    the head, a head ending in blank space that Jinja's whitespace control
    could strip, line statements): the caller then compiles it as Jinja does.
    """
    env = store.env
    cut = source.find("{")
    head, rest = (source, "") if cut < 0 else (source[:cut], source[cut:])
    if (
        "\n" in head
        or "\r" in head
        or HEAD in source
        or (head and head[-1].isspace())
        or env.line_statement_prefix
        or env.line_comment_prefix
    ):
        return None
    key = ("string", HEAD + rest)
    code = store().get(key)
    if not isinstance(code, CodeType):
        code = compile_(HEAD + rest)
        store().put(key, code)
    filled, count = with_constant(code, HEAD, head)
    return filled if count == 1 else None


def caching_compile(env: Environment, store: LazyStore) -> Any:
    """``env.compile`` that looks strings up in the store before compiling them.

    Only unnamed sources (``Environment.from_string``) go through here; files
    come through :class:`StoreBytecodeCache`, Jinja's own interface.
    """
    compile_: Callable[..., Any] = env.compile

    def compile(
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        plain = name is None and filename is None and not raw and not defer_init
        if plain and isinstance(source, str):
            code = string_code(source, compile_, store)
            if code is not None:
                return code
        return compile_(source, name, filename, raw, defer_init)

    return compile


def compile_python(env: Environment, source: str, filename: str) -> CodeType:
    """``compile(source, filename, "exec")``, kept in the store of ``env``'s settings.

    For the hooks that :mod:`inprocess_hooks` runs: their unrendered source is
    the same in every bake. Without the cache on ``env``, a plain compile.
    """
    cache = env.bytecode_cache
    if not isinstance(cache, StoreBytecodeCache):
        return compile(source, filename, "exec")
    store = cache.store()
    key = ("python", filename, source)
    code = store.get(key)
    if not isinstance(code, CodeType):
        code = compile(source, filename, "exec")
        store.put(key, code, versioned=True)
    return code


def install(env: Environment, folder: Path = CACHE_DIR) -> None:
    """Route ``env``'s compiling through the cache in ``folder``."""
    store = LazyStore(env, folder)
    env.bytecode_cache = StoreBytecodeCache(store)
    env.compile = caching_compile(env, store)  # type: ignore[method-assign]


class CompiledTemplates(Extension):
    """Serves cookiecutter's Jinja environment its compiled code from the cache."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        install(environment)
