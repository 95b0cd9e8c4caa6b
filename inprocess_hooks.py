"""Run this template's own Python hooks inside cookiecutter's process.

cookiecutter runs every hook in a new Python interpreter (``python TEMPFILE``,
the hook rendered with the answers). Starting an interpreter and compiling the
hook there cost about 25 ms a hook: for this template's two hooks, a third of
a whole bake (see ``bench/``). Running hooks in the caller's process is a
long-standing request upstream (cookiecutter#1448).

:class:`InProcessHooks` (an extension listed in ``cookiecutter.json``) wraps
cookiecutter's ``hooks.run_script_with_context`` once per process. The ``.py``
hooks of *this* template's ``hooks/`` folder then run in this process, in the
project folder, with cookiecutter's error handling unchanged (a non-zero exit,
a ``sys.exit`` message or an exception becomes ``FailedHookException``):

- a hook whose one piece of Jinja is the line :data:`CONTEXT_LINE` (both hooks
  here; ``tests/test_hooks.py`` keeps it so) is valid Python unrendered: its
  code is compiled once (cached by :mod:`template_cache`), and its ``main()``
  is called with ``CONTEXT_JSON`` set to the very string cookiecutter would
  have rendered there;
- any other hook is rendered as cookiecutter renders it and run as
  ``__main__``.

Every other script, and every hook when the environment variable
``COOKIECUTTER_HOOKS=subprocess`` is set, goes to cookiecutter's own runner.
Where cookiecutter's hook module does not look as expected, nothing is
wrapped. The hooks stay ordinary cookiecutter hooks: run as scripts they
behave the same, which the tests check by baking both ways.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

HOOKS_DIR = Path(__file__).resolve().parent / "hooks"
OPT_OUT = "COOKIECUTTER_HOOKS"  # "subprocess": leave hooks to cookiecutter
CONTEXT_EXPRESSION = "{{ cookiecutter | tojson }}"
CONTEXT_LINE = f'CONTEXT_JSON = r"""{CONTEXT_EXPRESSION}"""'
HOOK_MODULE = "__cookiecutter_hook__"  # a hook's module name on the in-process path

Runner = Callable[[Any, Any, dict[str, Any]], None]


def is_own_python_hook(script_path: Any, hooks_dir: Path = HOOKS_DIR) -> bool:
    """Whether cookiecutter is about to run a ``.py`` hook of this template."""
    path = Path(script_path)
    return path.suffix == ".py" and path.resolve().parent == hooks_dir


def exit_status(code: object) -> int:
    """The status a Python process would exit with after ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with a message
    return 1


def takes_context_as_data(source: str) -> bool:
    """Whether the hook's one piece of Jinja is :data:`CONTEXT_LINE`.

    Such a hook is valid Python before rendering, and rendering changes only
    that string: it can be compiled once and handed the rendered string.
    (``tests/test_hooks.py`` checks that both hooks have this shape.)
    """
    if source.count(CONTEXT_LINE) != 1:
        return False
    rest = source.replace(CONTEXT_LINE, "")
    return not any(marker in rest for marker in ("{{", "{%", "{#"))


def compiled(env: Any, source: str, filename: str) -> types.CodeType:
    try:
        from template_cache import compile_python
    except ImportError:  # the cache module is optional
        return compile(source, filename, "exec")
    return compile_python(env, source, filename)


def run_in_process(script_path: Any, cwd: Any, context: dict[str, Any]) -> None:
    """cookiecutter's ``run_script_with_context``, without the new interpreter.

    A hook of the :func:`takes_context_as_data` shape runs from its cached
    code: its module body, then ``main()`` with ``CONTEXT_JSON`` set to the
    string cookiecutter would have rendered. Any other hook is rendered and
    run as ``__main__``, as cookiecutter would run it.
    """
    from cookiecutter.exceptions import FailedHookException  # type: ignore[import-untyped]
    from cookiecutter.utils import create_env_with_context  # type: ignore[import-untyped]

    filename = str(script_path)
    source = Path(filename).read_text(encoding="utf-8")
    env = create_env_with_context(context)
    as_data = takes_context_as_data(source)
    if as_data:
        code = compiled(env, source, filename)
        context_json = env.from_string(CONTEXT_EXPRESSION).render(**context)
        module = types.ModuleType(HOOK_MODULE)  # importable while it runs (dataclasses look)
        module.__file__ = filename
        namespace: dict[str, Any] = module.__dict__
        sys.modules[HOOK_MODULE] = module
    else:
        rendered = env.from_string(source).render(**context)
        code = compile(rendered, filename, "exec")
        namespace = {"__name__": "__main__", "__file__": filename}
    streams = [(stream, getattr(stream, "errors", None)) for stream in (sys.stdout, sys.stderr)]
    previous = os.getcwd()
    status = 0
    try:
        os.chdir(cwd)
        exec(code, namespace)
        if as_data:
            namespace["CONTEXT_JSON"] = context_json
            status = exit_status(namespace["main"]())
    except SystemExit as stop:
        status = exit_status(stop.code)
    except Exception:  # a bug in a hook: print it as the interpreter would
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        os.chdir(previous)
        restore(streams)
        sys.modules.pop(HOOK_MODULE, None)
    if status != 0:
        msg = f"Hook script failed (exit status: {status})"
        raise FailedHookException(msg)


def restore(streams: list[tuple[Any, str | None]]) -> None:
    """Flush the streams; undo a hook's ``reconfigure(errors=...)`` on them."""
    for stream, errors in streams:
        stream.flush()
        if errors is not None and getattr(stream, "errors", errors) != errors:
            stream.reconfigure(errors=errors)


def choose_runner(original: Runner) -> Runner:
    """The wrapper: this template's Python hooks in-process, the rest as before."""

    def run_script_with_context(script_path: Any, cwd: Any, context: dict[str, Any]) -> None:
        if os.environ.get(OPT_OUT) != "subprocess" and is_own_python_hook(script_path):
            run_in_process(script_path, cwd, context)
        else:
            original(script_path, cwd, context)

    run_script_with_context.wrapped = original  # type: ignore[attr-defined]
    return run_script_with_context


def install() -> bool:
    """Wrap cookiecutter's hook runner once; False where it cannot be found."""
    try:
        from cookiecutter import hooks  # type: ignore[import-untyped]
    except ImportError:
        return False
    current = getattr(hooks, "run_script_with_context", None)
    if not callable(current) or not callable(getattr(hooks, "run_hook", None)):
        return False
    if not hasattr(current, "wrapped"):
        hooks.run_script_with_context = choose_runner(current)
    return True


class InProcessHooks(Extension):
    """Installs the in-process runner when cookiecutter builds its environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        install()
