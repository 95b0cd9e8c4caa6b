"""Jinja's compiled template files, kept on disk between bakes.

cookiecutter compiles every template file afresh in every bake. Jinja has a
public answer for that, a bytecode cache: :class:`CompiledTemplates` (an
extension listed in ``cookiecutter.json``) gives cookiecutter's environment
Jinja's own ``FileSystemBytecodeCache`` in ``.cache/jinja`` under the
template's root (ignored by git). Jinja keys each entry by the template's name
and checks it against the source's checksum and the Python version, so an
edited file or another interpreter compiles afresh. Only files loaded through
the environment's loader are cached; the short strings cookiecutter renders
with ``from_string`` (paths, defaults) compile as usual.

Where the folder cannot be made, bakes compile as cookiecutter does. The
output of a bake never depends on the cache: ``tests/test_template_cache.py``
bakes with it off, cold and warm and compares every byte; ``bench/`` measures
what it saves.

cookiecutter loads this module from the template's root, inside whatever
environment cookiecutter was installed into, so it uses only Jinja and the
standard library.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemBytecodeCache
from jinja2.ext import Extension

CACHE_DIR = Path(__file__).resolve().parent / ".cache" / "jinja"


def bytecode_cache(folder: Path = CACHE_DIR) -> FileSystemBytecodeCache | None:
    """Jinja's file-system bytecode cache in ``folder``; None where it cannot be made."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder))


class CompiledTemplates(Extension):
    """Gives cookiecutter's Jinja environment a bytecode cache (when it has none)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if environment.bytecode_cache is None:
            environment.bytecode_cache = bytecode_cache()
