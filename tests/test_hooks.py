"""The hooks: answer validation, safe data passing, pruning, and the optional steps.

The hook files are imported unrendered (their only Jinja is the JSON context
in a raw string), so most tests call their functions directly; a few bake the
template in-process through cookiecutter's API (tens of milliseconds each) to
check what only a real bake shows: nothing is left on disk after a rejection,
the user's files survive ``--overwrite-if-exists``, values stay data.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, BakedProject, choices, load_module, tomllib

HOOKS = TEMPLATE_DIR / "hooks"
PRE = load_module(HOOKS / "pre_gen_project.py", "pre_gen_project")
POST = load_module(HOOKS / "post_gen_project.py", "post_gen_project")
CHOICES = PRE.load_choices(str(TEMPLATE_DIR))


# --------------------------------------------------------------- helpers


def bake_here(
    output_dir: Path,
    config: Path,
    *,
    hooks: bool = True,
    overwrite: bool = False,
    replay: Path | None = None,
    **context: str,
) -> Path:
    """Bake with cookiecutter's API (the hooks run as cookiecutter runs them)."""
    result = cookiecutter(
        str(TEMPLATE_DIR),
        no_input=replay is None,
        extra_context=context if replay is None else None,
        replay=str(replay) if replay else None,
        output_dir=str(output_dir),
        config_file=str(config),
        accept_hooks=hooks,
        overwrite_if_exists=overwrite,
    )
    return Path(result)


def leftovers(folder: Path) -> list[str]:
    """What is in ``folder``, looked at once: a rejected bake is cleaned up when it returns."""
    return sorted(
        Path(root, name).relative_to(folder).as_posix()
        for root, dirs, files in os.walk(folder)
        for name in dirs + files
    )


def rendered_context(source: str, context: dict[str, Any]) -> Any:
    """Render a hook like cookiecutter does; return what its CONTEXT_JSON holds."""
    env = StrictEnvironment(context={"cookiecutter": context}, keep_trailing_newline=True)
    rendered = env.from_string(source).render(cookiecutter=context)
    assert rendered.isascii(), "tojson writes every non-ASCII character as an escape"
    tree = ast.parse(rendered)
    compile(tree, "hook", "exec")
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONTEXT_JSON":
            return json.loads(ast.literal_eval(node.value))
    raise AssertionError("CONTEXT_JSON not found in the rendered hook")


def answers(**overrides: str) -> dict[str, str]:
    """A valid, complete set of answers (the template's defaults, rendered)."""
    base = {
        "project_name": "My ML Project",
        "project_slug": "my-ml-project",
        "package_name": "my_ml_project",
        "description": "A PyTorch Lightning project.",
        "author_name": "Ada Lovelace",
        "author_email": "ada@example.org",
        "github_owner": "ada",
        "version": "0.1.0",
        "package_index_url": "",
        "torch_index_url": "https://download.pytorch.org/whl",
        **{option: values[0] for option, values in CHOICES.items()},
    }
    return {**base, **overrides}


# --------------------------------------------------------------- values stay data


@pytest.mark.parametrize("hook", ["pre_gen_project.py", "post_gen_project.py"])
def test_hook_holds_one_jinja_expression_the_json_context(hook: str) -> None:
    source = (HOOKS / hook).read_text(encoding="utf-8")
    assert source.count("{{") == 1
    assert 'CONTEXT_JSON = r"""{{ cookiecutter | tojson }}"""' in source
    assert "{%" not in source
    assert "{#" not in source


HOSTILE = {
    "triple": "a\"\"\"b'''c",
    "ends_in_backslash": "tail\\",
    "backslash_quote": '\\"',
    "escapes": "\\n \\u0041 \\x00 \\N{BULLET}",
    "html": "</script><!-- & ' >",
    "non_bmp": "\U0001d518\U0001d52b\U0001d526 😀 👨\u200d👩\u200d👧",
    "controls": "a\x00b\nc\u2028d\u0085e\ufeff",
    "lone_surrogate": "\ud800",
    "jinja_like": "} }} %} #}",
    "code": "__import__('os').system('false')",
}


@pytest.mark.parametrize("hook", ["pre_gen_project.py", "post_gen_project.py"])
def test_rendered_hook_receives_every_value_exactly(hook: str) -> None:
    source = (HOOKS / hook).read_text(encoding="utf-8")
    assert rendered_context(source, HOSTILE) == HOSTILE


# --------------------------------------------------------------- validation rules

# (field, value, accepted?) -- the hostile and edge-case names and values.
VERDICTS: list[tuple[str, str, bool]] = [
    # package_name
    ("package_name", "my_project", True),
    ("package_name", "a", True),  # one letter is a fine name
    ("package_name", "x1_2", True),
    ("package_name", "match", True),  # soft keywords import fine
    ("package_name", "case", True),
    ("package_name", "a" * 100, True),
    ("package_name", "a" * 101, False),
    ("package_name", "", False),
    ("package_name", "class", False),
    ("package_name", "import", False),
    ("package_name", "async", False),
    ("package_name", "None", False),
    ("package_name", "os", False),
    ("package_name", "json", False),
    ("package_name", "typing", False),
    ("package_name", "distutils", False),  # stdlib of Python 3.10/3.11
    ("package_name", "tomllib", False),
    ("package_name", "test", False),
    ("package_name", "tests", False),
    ("package_name", "torch", False),
    ("package_name", "lightning", False),
    ("package_name", "pytorch_lightning", False),
    ("package_name", "lightning_fabric", False),
    ("package_name", "torchmetrics", False),
    ("package_name", "sklearn", False),
    ("package_name", "numpy", False),
    ("package_name", "scipy", False),
    ("package_name", "matplotlib", False),
    ("package_name", "jsonargparse", False),
    ("package_name", "yaml", False),
    ("package_name", "pytest", False),
    ("package_name", "torchvision", False),
    ("package_name", "tensorboard", False),
    ("package_name", "mlflow", False),
    ("package_name", "wandb", False),
    ("package_name", "mkdocs", False),
    ("package_name", "pil", False),
    ("package_name", "1abc", False),
    ("package_name", "my-project", False),
    ("package_name", "my project", False),
    ("package_name", "my_bad_name!", False),
    ("package_name", "café", False),
    ("package_name", "MyProject", False),
    ("package_name", "_private", False),
    ("package_name", "my_project\n", False),
    ("package_name", "con", False),
    # project_slug
    ("project_slug", "my-project", True),
    ("project_slug", "a", True),
    ("project_slug", "2048", True),
    ("project_slug", "x" * 100, True),
    ("project_slug", "x" * 101, False),
    ("project_slug", "", False),
    ("project_slug", "-ab-", False),
    ("project_slug", "ab-", False),
    ("project_slug", "My-Project", False),
    ("project_slug", "my_project", False),
    ("project_slug", "my..project", False),
    ("project_slug", "my project", False),
    ("project_slug", "a/b", False),
    ("project_slug", "..\\b", False),
    ("project_slug", "..", False),
    ("project_slug", "my-project\n", False),
    ("project_slug", "émoji", False),
    ("project_slug", "torch", False),
    ("project_slug", "scikit-learn", False),
    ("project_slug", "pytorch-lightning", False),
    ("project_slug", "python", False),
    ("project_slug", "nul", False),
    # author_email
    ("author_email", "you@example.com", True),
    ("author_email", "a.b+tag@sub.example.co.uk", True),
    ("author_email", "jürgen@bücher.de", True),
    ("author_email", "x", False),
    ("author_email", "a@b", False),
    ("author_email", "a@@b.org", False),
    ("author_email", "a b@c.org", False),
    ("author_email", "<a@b.org>", False),
    ("author_email", "Ada <a@b.org>", False),
    ("author_email", "a@b.org\n", False),
    ("author_email", "a@-b.org", False),
    ("author_email", "@b.org", False),
    ("author_email", "a@b.123", False),
    ("author_email", 'a"@b.org', False),
    # version
    ("version", "0.1.0", True),
    ("version", "1", True),
    ("version", "2024.1", True),
    ("version", "1.0rc1", True),
    ("version", "1.0.post1.dev2", True),
    ("version", "1!2.0", True),
    ("version", "v1.0", False),
    ("version", "1.0-alpha", False),
    ("version", "01.0", False),
    ("version", "1.0+local", False),
    ("version", "abc", False),
    ("version", "", False),
    ("version", "0.1.0\n", False),
    ("version", '0.1"', False),
    # github_owner
    ("github_owner", "octo-cat", True),
    ("github_owner", "a", True),
    ("github_owner", "A1", True),
    ("github_owner", "x" * 39, True),
    ("github_owner", "x" * 40, False),
    ("github_owner", "-ab-", False),
    ("github_owner", "a--b", False),
    ("github_owner", "a_b", False),
    ("github_owner", "ünï", False),
    ("github_owner", "", False),
    # package_index_url
    ("package_index_url", "", True),
    ("package_index_url", "https://mirror.example.org/simple/", True),
    ("package_index_url", "http://127.0.0.1:8080/simple", True),
    ("package_index_url", "file:///srv/simple", False),
    ("package_index_url", "/srv/simple", False),
    ("package_index_url", "mirror.example.org/simple", False),
    ("package_index_url", "https://", False),
    ("package_index_url", "https://user:secret@mirror.example.org/simple", False),
    ("package_index_url", "https://mirror.example.org/simple index", False),
    ("package_index_url", 'https://mirror.example.org/"q"', False),
    ("package_index_url", "ftp://mirror.example.org/", False),
    ("package_index_url", "https://mirror.example.org:99999/", False),
    ("package_index_url", "https://mirror.example.org/simple#x", False),
    # torch_index_url: the same rules, never empty, no query ('/cpu' is appended)
    ("torch_index_url", "https://download.pytorch.org/whl", True),
    ("torch_index_url", "https://artifacts.example.org/pytorch/whl/", True),
    ("torch_index_url", "", False),
    ("torch_index_url", "file:///srv/whl", False),
    ("torch_index_url", "https://user:secret@artifacts.example.org/whl", False),
    ("torch_index_url", "https://artifacts.example.org/whl?repo=torch", False),
    # free text
    ("project_name", "My ML Project", True),
    ("project_name", "Ünïcode \U0001d518 😀 👨\u200d👩\u200d👧 中文 עִברִית", True),
    ("project_name", "x" * 100, True),
    ("project_name", "x" * 101, False),
    ("project_name", "", False),
    ("project_name", "   ", False),
    ("project_name", " leading", False),
    ("project_name", "trailing ", False),
    ("project_name", "two\nlines", False),
    ("project_name", "a\rb", False),
    ("project_name", "tab\there", False),
    ("project_name", "line\u2028separator", False),
    ("project_name", "next\u0085line", False),
    ("project_name", "\ufeffbom", False),
    ("project_name", "nul\x00", False),
    ("project_name", "lone \ud800 surrogate", False),
    ("project_name", "bidi \u202e override", False),
    ("description", "", True),
    ("description", "Quotes \"'`, \\ # : - ? & * ! | > % @ $ {} [] <b>", True),
    ("description", "d" * 300, True),
    ("description", "d" * 301, False),
    ("description", "two\nlines", False),
    ("author_name", 'Jean-Luc O\'Brien "JL"', True),
    ("author_name", "", False),
    ("author_name", "a" * 101, False),
    # choices come from cookiecutter.json
    ("license", "MIT", True),
    ("license", "WTFPL", False),
    ("dataset", "mnist", True),
    ("dataset", "cifar", False),
]


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    VERDICTS,
    ids=[f"{f}={v[:20]!r}-{'ok' if ok else 'bad'}" for f, v, ok in VERDICTS],
)
def test_answer_verdict(field: str, value: str, accepted: bool) -> None:
    problems = PRE.validate(answers(**{field: value}), CHOICES)
    if accepted:
        assert not problems, [str(p) for p in problems]
    else:
        assert problems, f"{field}={value!r} should be rejected"
        assert {p.field for p in problems} == {field}
        message = str(problems[0])
        assert message.startswith(f"{field} = {value!r}: "), message
        assert len(message) > len(f"{field} = {value!r}: ") + 10, "the rule is named"


def test_the_verdict_table_is_thorough() -> None:
    assert len(VERDICTS) >= 30
    assert sum(not ok for *_, ok in VERDICTS) >= 30


def test_default_answers_are_valid() -> None:
    context = {k: v for k, v in COOKIECUTTER_JSON.items() if not k.startswith("_")}
    rendered = {k: (v[0] if isinstance(v, list) else v) for k, v in context.items()}
    rendered.update(project_slug="my-ml-project", package_name="my_ml_project")
    rendered.update(github_owner="your-name")
    assert PRE.validate(rendered, CHOICES) == []


def test_choices_are_read_from_the_template_not_repeated_in_the_hook() -> None:
    assert choices() == CHOICES
    source = (HOOKS / "pre_gen_project.py").read_text(encoding="utf-8")
    for option, values in CHOICES.items():
        assert not all(f'"{value}"' in source for value in values), option


def test_a_non_text_answer_is_rejected() -> None:
    problems = PRE.validate({**answers(), "version": 1.0}, CHOICES)  # type: ignore[dict-item]
    assert [str(p) for p in problems] == ["version = 1.0: must be text"]


def test_an_answer_the_hook_does_not_know_gets_the_one_line_rule() -> None:
    assert PRE.validate({**answers(), "new_field": "fine"}, CHOICES) == []
    [problem] = PRE.validate({**answers(), "new_field": "two\nlines"}, CHOICES)
    assert problem.field == "new_field"


def test_version_suggests_the_normal_form() -> None:
    assert PRE.check_version("1.0-alpha") == [
        "must be written in PEP 440's normal form, i.e. '1.0a0'"
    ]


def test_slug_suggests_the_normal_form() -> None:
    [rule] = PRE.check_project_slug("My_Project")
    assert "'my-project'" in rule


def test_template_dir_comes_from_repo_dir() -> None:
    assert PRE.template_dir({"_repo_dir": str(TEMPLATE_DIR)}) == str(TEMPLATE_DIR)
    assert PRE.template_dir({"_repo_dir": "/nonexistent", "_template": "gh:x/y"}) is None


# --------------------------------------------------------------- failing bakes


@pytest.mark.parametrize(
    "context",
    [
        {"package_name": "class"},
        {"project_slug": "a/b/c"},
        {"project_slug": "deep/er/../nested", "version": "v1"},
        {"project_name": "two\nlines"},
    ],
    ids=["keyword", "nested-slug", "nested-dots", "newline"],
)
def test_a_rejected_bake_leaves_nothing_on_disk(
    context: dict[str, str], tmp_path: Path, cc_config: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        bake_here(out, cc_config, **context)
    assert leftovers(out) == []


def test_a_replayed_record_with_an_unknown_choice_is_rejected(
    tmp_path: Path, cc_config: Path
) -> None:
    """Replay skips cookiecutter's own choice check; the hook's (from _repo_dir) catches it."""
    record = tmp_path / "bad.json"
    record.write_text(json.dumps({"cookiecutter": answers(license="WTFPL")}), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        bake_here(out, cc_config, replay=record)
    assert leftovers(out) == []


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "cookiecutter"
    return subprocess.run(
        [str(cli), "--no-input", "--config-file", str(tmp_path / "config.yaml"),
         "--output-dir", str(tmp_path / "out"), str(TEMPLATE_DIR), *args],
        capture_output=True, text=True, encoding="utf-8", errors="replace",
        timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip


CLI_ARGS = [
    "package_name=class",
    "author_email=nobody",
    "project_name=Line\u2028Break",
    "package_index_url=file:///srv/simple",
]
CLI_ERRORS = [  # in the order the template asks
    "error: project_name = 'Line\\u2028Break': must be one line of printable text; it contains"
    " control or line-break characters that package metadata cannot carry (U+2028 LINE SEPARATOR)",
    "error: package_name = 'class': is a Python keyword, so `import class` would be a syntax error",
    "error: author_email = 'nobody': must be one e-mail address like 'name@example.org'",
    "error: package_index_url = 'file:///srv/simple': must be an http:// or https:// URL",
]


def test_the_cli_prints_one_line_per_problem(tmp_path: Path, cc_config: Path) -> None:
    shutil.copy(cc_config, tmp_path / "config.yaml")
    (tmp_path / "out").mkdir()
    done = run_cli(tmp_path, *CLI_ARGS)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(CLI_ERRORS), done.stderr
    for line, start in zip(errors, CLI_ERRORS, strict=True):
        assert line.startswith(start), line
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("given", "field", "derived"),
    [
        ("project_slug=class", "project_slug", "package_name = 'class' (derived from project_slug"),
        ("project_name=Class", "project_name", "package_name = 'class' (derived from project_name"),
    ],
    ids=["slug", "name"],
)
def test_a_rejected_derived_answer_names_the_field_the_user_gave(
    tmp_path: Path, cc_config: Path, given: str, field: str, derived: str
) -> None:
    shutil.copy(cc_config, tmp_path / "config.yaml")
    (tmp_path / "out").mkdir()
    done = run_cli(tmp_path, given)
    assert done.returncode != 0
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: {derived}"), error
    assert f"fix {field} (package_name is derived from it) in this command" in done.stderr
    assert "fix package_name" not in done.stderr


# --------------------------------------------------------------- injection


@pytest.fixture
def marker() -> Iterator[Path]:
    """A short absolute path that an injected payload would create."""
    folder = Path(tempfile.mkdtemp(prefix="inj"))
    yield folder / "M"
    shutil.rmtree(folder)


def payloads(marker: Path) -> list[str]:
    """Values that would create ``marker`` if pasted into Python source, per quote style."""
    call = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    call_dq = call.replace("'", '"')
    return [
        f"x'); {call}; ('",
        f'x"); {call_dq}; ("',
        f'x"""); {call}; ("""',
        f"x'''); {call_dq}; ('''",
    ]


FREE_TEXT = ["project_name", "description", "author_name"]
NAME_FIELDS = [
    "project_slug",
    "package_name",
    "author_email",
    "github_owner",
    "version",
    "package_index_url",
    "torch_index_url",
]


def test_injection_through_free_text_bakes_safely(
    tmp_path: Path, cc_config: Path, marker: Path
) -> None:
    values = payloads(marker)
    for shift in range(len(values)):  # every field meets every quote style
        context = {field: values[(i + shift) % len(values)] for i, field in enumerate(FREE_TEXT)}
        out = tmp_path / f"out{shift}"
        project = bake_here(
            out, cc_config, project_slug="safe", package_name="safe", github_owner="safe", **context
        )
        record = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
        for field, value in context.items():
            assert record["cookiecutter"][field] == value
        for path in project.rglob("*.py"):
            ast.parse(path.read_text(encoding="utf-8"))
    assert not marker.exists()


def test_injection_through_name_fields_is_rejected(
    tmp_path: Path, cc_config: Path, marker: Path
) -> None:
    for i, value in enumerate(payloads(marker)):
        out = tmp_path / f"out{i}"
        out.mkdir()
        with pytest.raises(FailedHookException):
            bake_here(out, cc_config, **dict.fromkeys(NAME_FIELDS, value))
        assert leftovers(out) == []
    assert not marker.exists()


# --------------------------------------------------------------- the record


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a bake by path, without its git repository (commit times differ)."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in files
        if ".git" not in p.relative_to(root).parts
    }


def test_the_record_replays_the_same_bake(tmp_path: Path, cc_config: Path) -> None:
    """``cookiecutter --replay-file .cookiecutter.json TEMPLATE``, with or without _extensions."""
    context = {
        "project_name": 'Ünïcode "Q" \\ # : - ? & * ! | > 😀',
        "description": "x'''y\"\"\"z",
        "dataset": "mnist",
        "ci": "gitlab",
        "license": "none",
    }
    original = bake_here(tmp_path / "a", cc_config, **context)
    record_path = original / ".cookiecutter.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["cookiecutter"]["_template_version"] == COOKIECUTTER_JSON["_template_version"]
    assert not [k for k in record["cookiecutter"] if k.startswith("_") and k != "_template_version"]
    assert tree(bake_here(tmp_path / "b", cc_config, replay=record_path)) == tree(original)
    record["cookiecutter"]["_extensions"] = COOKIECUTTER_JSON["_extensions"]
    with_extensions = tmp_path / "with-extensions.json"
    with_extensions.write_text(json.dumps(record), encoding="utf-8")
    assert tree(bake_here(tmp_path / "c", cc_config, replay=with_extensions)) == tree(original)


def test_the_index_answers_become_the_poetry_sources(tmp_path: Path, cc_config: Path) -> None:
    """``package_index_url`` is the primary source; ``torch_index_url`` holds the torch builds."""
    project = bake_here(
        tmp_path,
        cc_config,
        package_index_url="https://pypi.example.org/simple/",
        torch_index_url="https://artifacts.example.org/pytorch/whl/",
    )
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    sources = {s["name"]: s for s in pyproject["tool"]["poetry"]["source"]}
    assert sources["mirror"]["url"] == "https://pypi.example.org/simple/"
    assert sources["mirror"]["priority"] == "primary"
    base = "https://artifacts.example.org/pytorch/whl"
    assert sources["pytorch-cpu"]["url"] == f"{base}/cpu"
    assert sources["pytorch-cuda"]["url"] == f"{base}/{COOKIECUTTER_JSON['_cuda_tag']}"
    assert {sources[n]["priority"] for n in ("pytorch-cpu", "pytorch-cuda")} == {"explicit"}
    # The README is the published package's description: no index address in it.
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert "example.org" not in readme
    assert "`torch_index_url` answer" in readme


# --------------------------------------------------------------- pruning


def test_option_table_has_the_agreed_shape() -> None:
    table = POST.OPTION_PATHS
    assert isinstance(table, dict)
    for option, by_value in table.items():
        assert option in CHOICES, option
        assert set(by_value) <= set(CHOICES[option]), option
        for paths in by_value.values():
            for path in paths:
                assert not path.startswith("/"), path
                assert ".." not in path.split("/"), path
                assert "{{" not in path, path
                assert "{%" not in path, path
    assert "docs/training.md" not in {p for v in table.values() for ps in v.values() for p in ps}
    assert table["license"]["none"] == []
    assert all(table["license"][v] == ["LICENSE"] for v in CHOICES["license"] if v != "none")


def test_removal_targets_keep_what_the_answer_lists() -> None:
    table = {
        "license": {"MIT": ["LICENSE"], "BSD": ["LICENSE"], "none": []},
        "dataset": {
            "digits": ["src/{package_name}/data.py"],
            "mnist": ["src/{package_name}/mnist.py"],
        },
    }
    targets = POST.removal_targets
    assert targets(table, {"license": "MIT", "dataset": "digits", "package_name": "p"}) == [
        "src/p/mnist.py"
    ]
    assert targets(table, {"license": "none", "dataset": "mnist", "package_name": "p"}) == [
        "LICENSE",
        "src/p/data.py",
    ]
    assert targets(table, {"package_name": "p"}) == []  # options not answered: keep all


def make_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_remove_generated_spares_what_existed_before(tmp_path: Path) -> None:
    make_tree(tmp_path, {".github/workflows/mine.yml": "mine", "keep.txt": "mine"})
    (tmp_path / ".github/empty-before").mkdir()
    (tmp_path / ".github/node_modules").mkdir()
    before = PRE.snapshot(str(tmp_path))
    (tmp_path / ".github/node_modules/x.js").write_text("x", encoding="utf-8")  # not walked
    make_tree(
        tmp_path,
        {".github/workflows/ci.yml": "gen", ".github/dependabot.yml": "gen", "Dockerfile": "gen"},
    )
    before["pruned"] = [*before["pruned"], ".github/node_modules"]
    removed = POST.remove_generated(str(tmp_path), ".github", before)
    assert sorted(removed) == [".github/dependabot.yml", ".github/workflows/ci.yml"]
    assert (tmp_path / ".github/workflows/mine.yml").read_text(encoding="utf-8") == "mine"
    assert (tmp_path / ".github/empty-before").is_dir()
    assert (tmp_path / ".github/node_modules/x.js").exists()
    assert POST.remove_generated(str(tmp_path), "Dockerfile", before) == ["Dockerfile"]
    assert POST.remove_generated(str(tmp_path), "keep.txt", before) == []


def test_snapshot_lists_but_does_not_walk_heavy_folders(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": "", ".venv/lib/x.py": "", "src/data/raw.csv": "", "src/p.py": ""})
    record = PRE.snapshot(str(tmp_path))
    assert record["files"] == ["a.txt", "src/p.py"]
    assert record["pruned"] == [".venv", "src/data"]
    assert set(record["pruned"]) <= set(record["dirs"])


def test_overwriting_a_project_never_deletes_the_users_files(
    tmp_path: Path, cc_config: Path
) -> None:
    options = {"ci": "none", "docker": "no", "code_style": "ruff"}
    project = bake_here(tmp_path, cc_config, **options)
    mine = {
        "Dockerfile": "FROM scratch  # mine\n",
        ".flake8": "[flake8]  # mine\n",
        ".github/workflows/mine.yml": "name: mine\n",
        "notes.md": "my notes\n",
        ".venv/bin/tool": "x",
    }
    make_tree(project, mine)
    bake_here(tmp_path, cc_config, overwrite=True, **options)
    for rel, text in mine.items():
        assert (project / rel).read_text(encoding="utf-8") == text, rel
    assert not (project / ".github/workflows/ci.yml").exists()
    assert not (project / ".dockerignore").exists()
    assert not (project / PRE.SNAPSHOT_FILE).exists()
    assert not (project / PRE.BACKUP_DIR).exists()


def test_a_bake_leaves_no_bookkeeping(default_project: BakedProject) -> None:
    assert not default_project.exists(PRE.SNAPSHOT_FILE)
    assert not default_project.exists(PRE.BACKUP_DIR)
    assert PRE.SNAPSHOT_FILE == POST.SNAPSHOT_FILE
    assert PRE.BACKUP_DIR == POST.BACKUP_DIR


def test_prune_without_a_record_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path, {"Dockerfile": "x"})
    assert POST.prune(str(tmp_path), answers(docker="no")) == []
    assert (tmp_path / "Dockerfile").exists()
    assert "no record" in capsys.readouterr().err


# --------------------------------------------------------------- post-gen steps


def call_post_main(monkeypatch: pytest.MonkeyPatch, root: Path, context: dict[str, str]) -> None:
    """Run the post-gen hook's main() in-process on ``root``."""
    (root / POST.SNAPSHOT_FILE).write_text(
        json.dumps({"files": [], "dirs": [], "pruned": [], "backups": []}), encoding="utf-8"
    )
    monkeypatch.chdir(root)
    monkeypatch.setattr(POST, "CONTEXT_JSON", json.dumps(context))
    assert POST.main() == 0


def test_without_git_the_default_path_starts_no_subprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the default bake must not start a process")

    monkeypatch.setattr(POST, "run", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setenv("PWD", str(tmp_path.parent))
    # init_git is the default's one optional step (tested on its own below).
    call_post_main(monkeypatch, tmp_path, answers(init_git="no"))
    out = capsys.readouterr().out
    assert f"  cd {tmp_path.name}\n" in out
    for step in ("poetry install", "poetry run pytest", "poetry run my-ml-project fit"):
        assert step in out


def test_next_steps_quote_an_awkward_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my dir's"
    folder.mkdir()
    monkeypatch.setenv("PWD", "/nonexistent-start")
    text = POST.next_steps(str(folder), answers())
    assert f"cd '{tmp_path}/my dir'\"'\"'s'" in text


def test_missing_tools_are_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    call_post_main(monkeypatch, tmp_path, answers(init_git="yes", poetry_lock="yes"))
    err = capsys.readouterr().err
    assert "warning: git is not installed" in err
    assert "warning: poetry is not installed" in err


def test_a_failing_lock_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(POST, "run", lambda command, cwd: (1, "offline"))
    assert POST.poetry_lock(str(tmp_path)) is False
    assert "`poetry lock` failed" in capsys.readouterr().err


def test_cruft_rebakes_are_recognised(tmp_path: Path) -> None:
    rebake = Path(tempfile.mkdtemp()) / "my-ml-project"
    try:
        rebake.mkdir()
        assert POST.is_cruft_rebake({"_commit": "abc"}, str(rebake))
        assert not POST.is_cruft_rebake({}, str(rebake))  # plain cookiecutter
        assert not POST.is_cruft_rebake({"_commit": "abc"}, str(tmp_path))  # cruft create
    finally:
        shutil.rmtree(rebake.parent)


git_only = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def no_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git with no user configuration at all."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)


@git_only
def test_init_git_commits_on_main_as_the_author(
    tmp_path: Path, cc_config: Path, no_git_identity: None
) -> None:
    name = 'Ann "Quote" O\'Neil -c core.editor=x'
    project = bake_here(
        tmp_path / "out", cc_config, init_git="yes", author_name=name, github_owner="ann"
    )

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=project, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert git("branch", "--show-current") == "main"
    assert git("log", "--format=%an|%ae|%s") == (
        f"{name}|you@example.com|Initial commit from cookiecutter-poetry-ml "
        f"{COOKIECUTTER_JSON['_template_version']}"
    )
    assert git("status", "--porcelain") == ""


@git_only
def test_git_identity_fills_in_only_what_git_lacks(tmp_path: Path, no_git_identity: None) -> None:
    git = str(shutil.which("git"))
    assert POST.git_identity(git, str(tmp_path), "Ann", "a@x") == [
        "-c",
        "user.name=Ann",
        "-c",
        "user.email=a@x",
    ]
    subprocess.run([git, "config", "--global", "user.email", "me@home"], check=True)
    subprocess.run([git, "config", "--global", "user.name", ""], check=True)  # empty: unset
    assert POST.git_identity(git, str(tmp_path), "Ann", "a@x") == ["-c", "user.name=Ann"]


@git_only
def test_init_git_inside_a_work_tree_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_git_identity: None
) -> None:
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    inner = tmp_path / "inner"
    inner.mkdir()
    assert POST.init_git(str(inner), answers()) is False
    assert "Skipped `git init`" in capsys.readouterr().out
    assert not (inner / ".git").exists()


# --------------------------------------------------------------- no network


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and `unshare -n`")
def test_a_bake_needs_no_network(tmp_path: Path, cc_config: Path) -> None:
    shutil.copy(cc_config, tmp_path / "config.yaml")
    cli = Path(sys.executable).parent / "cookiecutter"
    done = subprocess.run(
        ["unshare", "-n", str(cli), "--no-input", "--config-file", str(tmp_path / "config.yaml"),
         "--output-dir", str(tmp_path / "out"), str(TEMPLATE_DIR)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "my-ml-project" / "pyproject.toml").is_file()


# --------------------------------------------------------------- reserved names


def test_reserved_names_are_derived_from_the_declared_requirements() -> None:
    """Every requirement of the baked pyproject.toml, with its import names as installed here."""
    derive = load_module(TEMPLATE_DIR / "tests" / "reserved_names.py", "reserved_names")
    recorded = json.loads((HOOKS / "reserved_names.json").read_text(encoding="utf-8"))
    distributions = recorded["distributions"]
    assert set(derive.declared()) <= set(distributions), (
        "run python tests/reserved_names.py --write"
    )
    fresh = derive.derive()
    for root in derive.declared():
        assert set(fresh[root]) <= set(distributions[root]), root
    assert distributions == PRE.DEPENDENCIES  # what the hook checks against


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("package_name", "sklearn", "import name of the dependency 'scikit-learn'"),
        ("package_name", "pil", "import name of the dependency 'pillow'"),
        ("package_name", "onnxruntime", "import name of the dependency 'onnxruntime'"),
        ("project_slug", "lightning", "name of a dependency or command"),
        ("project_slug", "poetry", "name of a dependency or command"),
    ],
)
def test_a_dependencys_name_is_refused(field: str, value: str, rule: str) -> None:
    (problem,) = PRE.validate(answers(**{field: value}), CHOICES)
    assert rule in problem.rule


def test_the_hook_reads_the_names_from_the_templates_hooks_folder(
    tmp_path: Path, cc_config: Path
) -> None:
    """Run as cookiecutter runs it (from a temporary copy), the hook still knows them."""
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        bake_here(out, cc_config, package_name="torchmetrics")
    assert leftovers(out) == []
