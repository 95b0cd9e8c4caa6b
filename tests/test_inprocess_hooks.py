"""The hooks run inside cookiecutter's process, with the same results as scripts.

``inprocess_hooks.py`` replaces cookiecutter's new interpreter per hook with
``exec`` in the caller's process (see its docstring). These tests bake both
ways (``COOKIECUTTER_HOOKS=subprocess`` is cookiecutter's own runner) and
compare every byte, then check the runner's pieces on their own: which
scripts it takes, exit statuses, a broken hook, and that it leaves the
process (working folder, streams) as it found it.
"""

from __future__ import annotations

import filecmp
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter import hooks as cookiecutter_hooks
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from harness import TEMPLATE_DIR, load_module

RUNNER = load_module(TEMPLATE_DIR / "inprocess_hooks.py", "inprocess_hooks_under_test")
HOOKS = TEMPLATE_DIR / "hooks"


def bake(out: Path, config: Path, mode: str, **context: str) -> Path:
    """Bake in-process; ``mode`` is "subprocess" (cookiecutter's runner) or "in-process"."""
    os.environ.pop(RUNNER.OPT_OUT, None)
    if mode == "subprocess":
        os.environ[RUNNER.OPT_OUT] = "subprocess"
    try:
        path = cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=context,
            output_dir=str(out),
            config_file=str(config),
        )
    finally:
        os.environ.pop(RUNNER.OPT_OUT, None)
    return Path(path)


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


# --------------------------------------------------------------- whole bakes


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"ci": "gitlab", "docker": "no", "license": "none", "dataset": "mnist"},
        {"code_style": "black-flake8", "docs": "none", "pre_commit": "no", "ci": "none"},
    ],
    ids=["defaults", "pruned-a", "pruned-b"],
)
def test_bakes_are_identical_in_process_and_as_scripts(
    tmp_path: Path, cc_config: Path, options: dict[str, str]
) -> None:
    inside = bake(tmp_path / "in", cc_config, "in-process", **options)
    scripts = bake(tmp_path / "sub", cc_config, "subprocess", **options)
    assert tree_differences(inside, scripts) == []
    assert (inside / "pyproject.toml").is_file()


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_a_rejected_answer_fails_alike_and_leaves_nothing(
    tmp_path: Path, cc_config: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException, match="exit status: 1"):
        bake(out, cc_config, mode, package_name="import")
    assert list(out.iterdir()) == []
    err = capfd.readouterr().err
    assert "error: package_name = 'import': is a Python keyword" in err
    assert "Nothing was generated." in err


def test_the_runner_is_installed_once_around_cookiecutters(tmp_path: Path, cc_config: Path) -> None:
    bake(tmp_path / "a", cc_config, "in-process")
    bake(tmp_path / "b", cc_config, "in-process")
    current = cookiecutter_hooks.run_script_with_context
    assert hasattr(current, "wrapped")
    assert not hasattr(current.wrapped, "wrapped")


# --------------------------------------------------------------- the pieces


def test_only_this_templates_python_hooks_run_in_process(tmp_path: Path) -> None:
    assert RUNNER.is_own_python_hook(HOOKS / "pre_gen_project.py", HOOKS)
    assert RUNNER.is_own_python_hook(str(HOOKS / "post_gen_project.py"), HOOKS)
    assert not RUNNER.is_own_python_hook(HOOKS / "post_gen_project.sh", HOOKS)
    other = tmp_path / "hooks" / "pre_gen_project.py"
    assert not RUNNER.is_own_python_hook(other, HOOKS)


@pytest.mark.parametrize("hook", ["pre_gen_project.py", "post_gen_project.py"])
def test_both_hooks_take_the_context_as_data(hook: str) -> None:
    assert RUNNER.takes_context_as_data((HOOKS / hook).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "source",
    [
        "print('no context')\n",
        f"{RUNNER.CONTEXT_LINE}\nNAME = '{{{{ cookiecutter.project_name }}}}'\n",
        f"{RUNNER.CONTEXT_LINE}\n{RUNNER.CONTEXT_LINE}\n",
        f"{RUNNER.CONTEXT_LINE}\n{{% if true %}}x = 1{{% endif %}}\n",
    ],
    ids=["no-line", "more-jinja", "line-twice", "a-block"],
)
def test_other_hooks_are_rendered_first(source: str) -> None:
    assert not RUNNER.takes_context_as_data(source)


@pytest.mark.parametrize(
    ("code", "status", "printed"),
    [(None, 0, ""), (0, 0, ""), (3, 3, ""), ("bad answers", 1, "bad answers\n")],
)
def test_exit_status_is_the_interpreters(
    code: object, status: int, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert RUNNER.exit_status(code) == status
    assert capsys.readouterr().err == printed


def run_hook(tmp_path: Path, source: str, context: dict[str, Any] | None = None) -> Path:
    """Run ``source`` as a hook through the in-process runner, in a fresh project folder."""
    hook = tmp_path / "hooks" / "pre_gen_project.py"
    hook.parent.mkdir()
    hook.write_text(source, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    RUNNER.run_in_process(hook, project, {"cookiecutter": context or {"project_name": "Café"}})
    return project


def test_a_context_hook_gets_the_rendered_json_and_runs_in_the_project(tmp_path: Path) -> None:
    source = (
        "import json, os\n"
        f"{RUNNER.CONTEXT_LINE}\n"
        "def main():\n"
        "    name = json.loads(CONTEXT_JSON)['project_name']\n"
        "    open('seen.txt', 'w', encoding='utf-8').write(name + '|' + os.getcwd())\n"
        "    return 0\n"
        "if __name__ == '__main__':\n"
        "    raise SystemExit('the hook must not run as __main__ on this path')\n"
    )
    before = os.getcwd()
    project = run_hook(tmp_path, source, {"project_name": "Café \"quoted\" 'x'"})
    name, cwd = (project / "seen.txt").read_text(encoding="utf-8").split("|")
    assert name == "Café \"quoted\" 'x'"
    assert Path(cwd) == project.resolve()
    assert os.getcwd() == before


def test_a_context_hook_runs_as_an_importable_module(tmp_path: Path) -> None:
    source = (
        "from __future__ import annotations\n"
        "import dataclasses, sys\n"
        f"{RUNNER.CONTEXT_LINE}\n"
        "@dataclasses.dataclass\n"
        "class Answer:\n"
        "    name: str\n"
        "    kind: dataclasses.KW_ONLY\n"
        "    size: int = 0\n"
        "def main():\n"
        "    open('seen.txt', 'w').write(repr(Answer('x', size=2)) + __name__)\n"
        "    return 0 if sys.modules[__name__] else 1\n"
    )
    project = run_hook(tmp_path, source)
    assert (project / "seen.txt").read_text() == "Answer(name='x', size=2)" + RUNNER.HOOK_MODULE
    assert RUNNER.HOOK_MODULE not in sys.modules


def test_a_jinja_hook_is_rendered_and_run_as_main(tmp_path: Path) -> None:
    source = (
        "NAME = '{{ cookiecutter.project_name }}'\n"
        "if __name__ == '__main__':\n"
        "    open('seen.txt', 'w', encoding='utf-8').write(NAME)\n"
    )
    project = run_hook(tmp_path, source)
    assert (project / "seen.txt").read_text(encoding="utf-8") == "Café"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("    return 2\n", 2),
        ("    sys.exit('stop here')\n", 1),
        ("    raise RuntimeError('a bug in the hook')\n", 1),
    ],
    ids=["returns-2", "exit-message", "exception"],
)
def test_a_failing_hook_raises_cookiecutters_error_and_restores_the_process(
    tmp_path: Path, body: str, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (
        "import os, sys\n"
        f"{RUNNER.CONTEXT_LINE}\n"
        "def main():\n"
        "    sys.stderr.reconfigure(errors='backslashreplace')\n"
        "    os.chdir(os.sep)\n" + body
    )
    before, errors = os.getcwd(), sys.stderr.errors
    with pytest.raises(FailedHookException, match=f"exit status: {status}"):
        run_hook(tmp_path, source)
    assert os.getcwd() == before
    assert sys.stderr.errors == errors
    if "RuntimeError" in body:
        assert "RuntimeError: a bug in the hook" in capsys.readouterr().err


def test_the_opt_out_leaves_every_hook_to_cookiecutter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    wrapper = RUNNER.choose_runner(lambda path, cwd, context: calls.append("cookiecutter"))
    monkeypatch.setattr(RUNNER, "run_in_process", lambda *args: calls.append("in-process"))
    own = HOOKS / "post_gen_project.py"
    wrapper(own, tmp_path, {})
    wrapper(tmp_path / "elsewhere.py", tmp_path, {})
    monkeypatch.setenv(RUNNER.OPT_OUT, "subprocess")
    wrapper(own, tmp_path, {})
    assert calls == ["in-process", "cookiecutter", "cookiecutter"]
