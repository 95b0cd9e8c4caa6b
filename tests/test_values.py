"""Every value lands safely in every file type, and reads back exactly as typed.

First the filters of ``local_extensions`` on their own (tricky inputs and
Hypothesis round trips through ``tomllib``, PyYAML, ruamel.yaml, ``ast``,
Python-Markdown and markdown-it), then whole bakes: Hypothesis draws names,
descriptions and authors full of quotes, backslashes, YAML and Markdown
indicators, non-ASCII text and emoji, bakes them in-process, and checks that
every structured file parses and that the values come back from pyproject's
``[project]``, ``mkdocs.yml``, ``.cookiecutter.json``, the rendered README and
docs page, and the package docstring.

``HYPOTHESIS_EXAMPLES=1000`` raises the number of bakes (default 25).
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml
from cookiecutter.main import cookiecutter
from harness import TEMPLATE_DIR, BakedProject, load_module, tomllib, tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import Environment
from markdown_it import MarkdownIt

import local_extensions as le

PRE = load_module(TEMPLATE_DIR / "hooks" / "pre_gen_project.py", "pre_gen_project")
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "25"))
PURE_EXAMPLES = max(EXAMPLES, 100)  # the filters alone are cheap

# Characters and fragments that mean something in one of the formats.
TRICKY = [
    *"\"'\\#:-?&*!|>%@`$<{}[]~^=_+.()/;,",
    ": ",
    "- ",
    "? ",
    "# ",
    "* ",
    "1. ",
    "\\n",
    "\\u0041",
    '"""',
    "'''",
    "&amp;",
    "<b>",
    "${{ x }}"[1:2],  # a lone "{"; "{{" and "{%" are cookiecutter's own syntax
    "é",
    "ß",
    "中文",
    "עִבְרִית",
    "😀",
    "👨\u200d👩\u200d👧",
    "\U0001d518",
    "\u00a0",
    "\u0301",
    "ﬁ",
    "\u200b",
    "\u200e",
]
ONE_LINE_CHAR = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")).filter(
    lambda c: not PRE.is_forbidden_char(c)
)
FRAGMENT = st.one_of(st.sampled_from(TRICKY), ONE_LINE_CHAR)
# Jinja syntax in an answer is rendered by cookiecutter itself (with --no-input
# and extra_context), before this template sees it.
JINJA = re.compile(r"\{\{|\{%|\{#")


def one_line_text(limit: int, required: bool) -> st.SearchStrategy[str]:
    """Text the pre-generation hook accepts for a free-text field."""
    return (
        st.lists(FRAGMENT, min_size=1 if required else 0, max_size=24)
        .map("".join)
        .map(lambda s: s.strip()[:limit].strip())
        .filter(lambda s: not JINJA.search(s))
        .filter(lambda s: not PRE.check_text(s, limit, required))
    )


# --------------------------------------------------------------- TOML and YAML


class _Yaml12:
    """ruamel.yaml in YAML 1.2 mode (as GitHub and GitLab read workflows)."""

    def __init__(self) -> None:
        from ruamel.yaml import YAML

        self.yaml = YAML(typ="safe", pure=True)

    def load(self, text: str) -> Any:
        return self.yaml.load(StringIO(text))


YAML12 = _Yaml12()

EDGE_STRINGS = [
    "",
    "plain",
    'quote " and \\ backslash',
    "'single' \"double\" '''triple''' \"\"\"triple\"\"\"",
    "tail backslash \\",
    "# not a comment",
    "key: value",
    "- item",
    "? key",
    "&anchor *alias !tag |literal >folded %directive @at `tick`",
    "yes",
    "no",
    "null",
    "~",
    "0x1F",
    "1e3",
    "  spaced  ",
    "tab\there",
    "line\nbreak\r\nwindows",
    "nel\u0085ls\u2028ps\u2029",
    "bom\ufeff nonchar\ufffe\uffff",
    "nul\x00 del\x7f c1\x80\x9f esc\x1b",
    "emoji 😀 non-BMP \U0001d518 \U0010ffff",
    "\\u00e9 \\x41 \\N{BULLET}",
]


@pytest.mark.parametrize("value", EDGE_STRINGS)
def test_toml_str_round_trips(value: str) -> None:
    assert tomllib.loads(f"x = {le.toml_str(value)}")["x"] == value


@pytest.mark.parametrize("value", EDGE_STRINGS)
def test_yaml_str_round_trips_in_yaml_1_1_and_1_2(value: str) -> None:
    scalar = le.yaml_str(value)
    assert yaml.safe_load(f"x: {scalar}")["x"] == value
    assert yaml.safe_load(f"- {scalar}\n- {{k: {scalar}}}") == [value, {"k": value}]
    assert YAML12.load(f"x: {scalar}")["x"] == value


def test_toml_str_writes_non_bmp_characters_not_surrogate_pairs() -> None:
    literal = le.toml_str("😀")
    assert literal == '"😀"'
    assert "\\ud83d" not in literal.lower()


@pytest.mark.parametrize("name", ["toml_str", "yaml_str", "docstring_text"])
def test_a_lone_surrogate_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        le.FILTERS[name]("bad \ud800")


@settings(max_examples=PURE_EXAMPLES, deadline=None, database=None)
@given(st.text())
def test_toml_and_yaml_round_trip_any_text(value: str) -> None:
    assert tomllib.loads(f"x = {le.toml_str(value)}")["x"] == value
    assert yaml.safe_load(f"x: {le.yaml_str(value)}")["x"] == value


# --------------------------------------------------------------- Python


@pytest.mark.parametrize("value", EDGE_STRINGS)
def test_docstring_text_round_trips(value: str) -> None:
    source = f'"""{le.docstring_text(value)}"""'
    assert ast.literal_eval(source) == value


@pytest.mark.parametrize("value", EDGE_STRINGS)
def test_py_str_round_trips(value: str) -> None:
    assert ast.literal_eval(le.py_str(value)) == value


@settings(max_examples=PURE_EXAMPLES, deadline=None, database=None)
@given(st.text())
def test_python_literals_round_trip_any_text(value: str) -> None:
    assert ast.literal_eval(le.py_str(value)) == value
    assert ast.literal_eval(f'"""{le.docstring_text(value)}"""') == value


@settings(max_examples=PURE_EXAMPLES, deadline=None, database=None)
@given(one_line_text(300, required=False), st.integers(20, 100), st.integers(0, 8))
def test_wrapped_docstring_text_keeps_the_words(value: str, width: int, indent: int) -> None:
    wrapped = le.docstring_text(value, width=width, indent=indent, first=3)
    text = ast.literal_eval(f'"""{wrapped}"""')
    unwrapped = text.replace("\n" + " " * indent, " ")
    assert re.sub(" +", " ", unwrapped) == re.sub(" +", " ", value)
    lines = wrapped.split("\n")
    for number, line in enumerate(lines):
        used = (3 if number == 0 else 0) + le._display_width(line)
        assert used <= width or " " not in line.strip(), (width, line)
        assert line == line.rstrip(" ") or number == len(lines) - 1


def test_docstring_text_keeps_quotes_readable() -> None:
    assert le.docstring_text('say "hi" now') == 'say "hi" now'
    assert le.docstring_text('"quoted"') == r"\u0022quoted\u0022"
    assert le.docstring_text('a""b') == r"a\u0022\u0022b"
    assert le.docstring_text("a\\b") == r"a\u005cb"


def test_py_str_prefers_the_quotes_a_formatter_keeps() -> None:
    assert le.py_str("it's") == '"it\'s"'
    assert le.py_str('say "hi"') == "'say \"hi\"'"
    assert le.py_str("line\nbreak") == '"line\\nbreak"'


def _ruff() -> str | None:
    try:
        return tool("ruff")
    except FileNotFoundError:
        return None


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed")
def test_python_filters_satisfy_ruff_check_and_format(tmp_path: Path) -> None:
    values = [v for v in EDGE_STRINGS if not PRE.check_text(v, 300, required=True)]
    values += ['ends with a quote"', '"starts with one', "back\\slash", "a" * 40 + " " + "b" * 60]
    lines = ['"""Module summary."""', ""]
    for i, value in enumerate(values):
        lines += [
            "",
            f"def f{i}() -> str:",
            '    """Summary.',
            "",
            f"    {le.docstring_text(value, width=88, indent=4, first=4)}",
            '    """',
            f"    return {le.py_str(value)}  # noqa: E501",
            "",
        ]
    module = tmp_path / "mod.py"
    module.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    ruff = str(_ruff())
    rules = "D,E,W,F,RUF"
    ignore = "D203,D213,RUF001,RUF002,RUF100"
    check = subprocess.run(
        [ruff, "check", "--isolated", "--select", rules, "--ignore", ignore,
         "--line-length", "88", str(module)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + module.read_text(encoding="utf-8")
    form = subprocess.run(
        [ruff, "format", "--isolated", "--check", "--diff", str(module)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert form.returncode == 0, form.stdout + form.stderr


# --------------------------------------------------------------- Markdown


class _Texts(HTMLParser):
    """The text of each heading, paragraph and table cell of an HTML fragment."""

    BLOCKS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "p", "td", "th", "li"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._stack: list[tuple[str, list[str]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and ("class", "headerlink") in attrs:
            self._skip += 1
        elif tag in self.BLOCKS:
            self._stack.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._skip:
            self._skip -= 1
        elif tag in self.BLOCKS and self._stack and self._stack[-1][0] == tag:
            name, parts = self._stack.pop()
            self.blocks.append((name, "".join(parts)))

    def handle_data(self, data: str) -> None:
        if self._stack and not self._skip:
            self._stack[-1][1].append(data)


def html_blocks(html: str) -> list[tuple[str, str]]:
    parser = _Texts()
    parser.feed(html)
    parser.close()
    return parser.blocks


MKDOCS_EXTENSIONS = [
    "admonition",
    "attr_list",
    "pymdownx.details",
    "pymdownx.superfences",
    "pymdownx.tabbed",
    "pymdownx.inlinehilite",
    "tables",
    "toc",
]
COMMONMARK = MarkdownIt("commonmark").enable("table").enable("strikethrough")


PYTHON_MARKDOWN = markdown.Markdown()
MKDOCS_MARKDOWN = markdown.Markdown(extensions=MKDOCS_EXTENSIONS)


def renderings(source: str) -> dict[str, str]:
    """``source`` rendered by Python-Markdown (bare and as mkdocs) and by CommonMark."""
    return {
        "python-markdown": PYTHON_MARKDOWN.reset().convert(source),
        "mkdocs": MKDOCS_MARKDOWN.reset().convert(source),
        "commonmark": COMMONMARK.render(source),
    }


def check_markdown_text(value: str) -> None:
    text = le.md_text(value)
    documents = {
        "h1": f"# {text}\n",
        "p": f"Intro.\n\n{text}\n\nOutro.\n",
        "li": f"- {text}\n",
        "td": f"| a | b |\n| --- | --- |\n| {text} | x |\n",
    }
    for tag, source in documents.items():
        for renderer, html in renderings(source).items():
            if tag == "td" and renderer == "python-markdown":
                continue  # tables are an extension there
            found = [t for name, t in html_blocks(html) if name == tag]
            if tag == "p":
                found = found[1:2]  # between "Intro." and "Outro."
            assert found, (renderer, tag, source, html)
            assert found[0].strip() == value, (renderer, tag, source, html)


MARKDOWN_EDGES = [
    "My ML Project",
    "*stars* _under_ **bold** __bold__ `code`",
    "[link](http://x) ![img](y) <http://z> <b>html</b> &amp; &copy;",
    "# hash ## and trailing #",
    "- dash",
    "+ plus",
    "1. ordered",
    "2) ordered",
    "> quote",
    "!!! note",
    "??? details",
    '=== "tab"',
    ": definition",
    "a | pipe | table",
    "~~strike~~ ^^ins^^ ==mark== $math$",
    "{: .attr} {#id}",
    "back\\slash \\* \\\\",
    "C# and F#",
    "***",
    "---",
    "Ünïcode 中文 😀 👨\u200d👩\u200d👧",
]


@pytest.mark.parametrize("value", MARKDOWN_EDGES)
def test_md_text_renders_as_typed(value: str) -> None:
    check_markdown_text(value)


@settings(max_examples=PURE_EXAMPLES, deadline=None, database=None)
@given(one_line_text(100, required=True))
def test_md_text_renders_any_one_line_text_as_typed(value: str) -> None:
    check_markdown_text(value)


# --------------------------------------------------------------- names and records


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("My ML Project", "my-ml-project"),
        ("Café Straße Ærø", "cafe-strasse-aero"),
        ("  --Hello__World--  ", "hello-world"),
        ("2048 Game", "2048-game"),
        ("中文", le.FALLBACK_SLUG),
        ("", le.FALLBACK_SLUG),
        ("x" * 150, "x" * 100),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert le.slugify(text) == slug


def test_slugify_to_a_github_name() -> None:
    owner = le.slugify("Maria-Magdalena von Hohenzollern-Sigmaringen", 39)
    assert owner == "maria-magdalena-von-hohenzollern-sigmar"
    assert PRE.check_github_owner(owner) == []


@pytest.mark.parametrize(
    ("slug", "name"),
    [
        ("my-ml-project", "my_ml_project"),
        ("2048-game", "ml_2048_game"),
        ("a.b--c", "a_b_c"),
        ("---", "ml_project"),
    ],
)
def test_to_identifier(slug: str, name: str) -> None:
    assert le.to_identifier(slug) == name


@settings(max_examples=PURE_EXAMPLES, deadline=None, database=None)
@given(st.text())
def test_derived_names_are_always_well_formed(text: str) -> None:
    slug = le.slugify(text)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert len(slug) <= le.MAX_SLUG_LENGTH
    assert PRE.is_distribution_name(slug)
    assert PRE.canonicalize_name(slug) == slug
    name = le.to_identifier(slug)
    assert name.isascii()
    assert name.isidentifier()
    assert name[0].isalpha()


def test_the_extension_registers_every_filter() -> None:
    env = Environment(extensions=[le.ValueFilters])
    for name, function in le.FILTERS.items():
        assert env.filters[name] is function
    rendered = env.from_string("x = {{ v | toml_str }}").render(v='a "b"')
    assert tomllib.loads(rendered) == {"x": 'a "b"'}


def test_public_answers_keep_answers_and_the_template_version_only() -> None:
    context = {
        "project_name": "Café 😀",
        "_template_version": "1.2.3",
        "_output_dir": "/home/me/out",
        "_repo_dir": "/home/me/template",
        "_template": "/home/me/template",
        "_extensions": ["local_extensions.ValueFilters"],
        "_checkout": None,
    }
    text = le.public_answers(context)
    assert "/home/me" not in text
    assert "Café 😀" in text  # readable, not \\u-escaped
    assert json.loads(text) == {
        "cookiecutter": {"project_name": "Café 😀", "_template_version": "1.2.3"}
    }


@pytest.mark.parametrize(
    ("slug", "folder"),
    [
        ("my-ml-project", "my-ml-project"),
        ("a/b/c", "a%2Fb%2Fc"),
        ("..\\b", "%2E%2E%5Cb"),
        ("..", "%2E%2E"),
        ("", "%00"),
        ("x:y", "x%3Ay"),
        ("ü/ä", "%C3%BC%2F%C3%A4"),
    ],
)
def test_project_folder_is_always_one_folder_name(slug: str, folder: str) -> None:
    """cookiecutter creates no parent folders before the hook can reject the slug."""
    assert le.project_folder(slug) == folder
    assert Path(folder).name == folder


# --------------------------------------------------------------- whole bakes


@pytest.fixture(scope="module")
def bakery(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Bake through cookiecutter's API into a fresh folder: ``bake(**context) -> BakedProject``."""
    root = tmp_path_factory.mktemp("value-bakes")
    config = root / "config.yaml"
    settings_ = {"cookiecutters_dir": str(root / "cutters"), "replay_dir": str(root / "replay")}
    config.write_text(json.dumps(settings_), encoding="utf-8")
    out = root / "out"

    def bake(**context: str) -> BakedProject:
        shutil.rmtree(out, ignore_errors=True)
        path = cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=context,
            output_dir=str(out),
            config_file=str(config),
            accept_hooks=False,  # the hook's checks are called directly instead
        )
        return BakedProject(Path(path), context)

    return bake


class _AnyTagLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML that reads application tags (``!!python/name:...``) as plain values."""


_AnyTagLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def check_all_files_parse(project: BakedProject) -> None:
    for rel in sorted(project.files()):
        path = project.path / rel
        if rel.endswith(".toml"):
            tomllib.loads(path.read_text(encoding="utf-8"))
        elif rel.endswith((".yml", ".yaml")):
            list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_AnyTagLoader))
        elif rel.endswith(".json"):
            json.loads(path.read_text(encoding="utf-8"))
        elif rel.endswith(".py"):
            ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        elif rel.endswith((".cfg", ".ini", ".flake8")):
            configparser.ConfigParser().read_string(path.read_text(encoding="utf-8"))


def markdown_blocks(project: BakedProject, rel: str) -> dict[str, list[tuple[str, str]]]:
    source = project.read(rel)
    return {name: html_blocks(html) for name, html in renderings(source).items()}


def check_markdown_page(project: BakedProject, rel: str, name: str, description: str) -> None:
    for renderer, blocks in markdown_blocks(project, rel).items():
        headings = [text.strip() for tag, text in blocks if tag == "h1"]
        assert headings[:1] == [name], (rel, renderer, headings)
        if description:
            paragraphs = [text.strip() for tag, text in blocks if tag == "p"]
            assert description in paragraphs, (rel, renderer, paragraphs[:4])


def squash_ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# Files that carry the free-text answers, and that the checks below read.
VALUE_FILES = [
    "pyproject.toml",
    ".cookiecutter.json",
    "mkdocs.yml",
    "README.md",
    "docs/index.md",
    "src/{package_name}/__init__.py",
]


def check_values_land(project: BakedProject, name: str, description: str, author: str) -> None:
    """The values come back from every file that carries them."""
    pyproject = project.toml()["project"]
    assert pyproject["description"] == description
    assert pyproject["authors"] == [{"name": author, "email": "ann@example.org"}]
    record = project.answers
    assert (record["project_name"], record["description"], record["author_name"]) == (
        name,
        description,
        author,
    )
    if project.exists("mkdocs.yml"):
        site = yaml.load(project.read("mkdocs.yml"), Loader=_AnyTagLoader)
        assert (site["site_name"], site["site_description"], site["site_author"]) == (
            name,
            description,
            author,
        )
    check_markdown_page(project, "README.md", name, description)
    if project.exists("docs/index.md"):
        check_markdown_page(project, "docs/index.md", name, description)
    init = project.read(f"src/{project.package}/__init__.py")
    docstring = ast.get_docstring(ast.parse(init), clean=False) or ""
    assert squash_ws(name) in squash_ws(docstring)


def test_value_files_exist_in_the_template() -> None:
    """The files the round-trip checks read; report any the template lacks."""
    root = TEMPLATE_DIR / "{{project_folder(cookiecutter.project_slug)}}"
    missing = [
        rel
        for rel in VALUE_FILES
        if not (root / rel.replace("{package_name}", "{{cookiecutter.package_name}}")).exists()
    ]
    assert not missing, f"expected value-carrying files: {missing}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    name=one_line_text(100, required=True),
    description=one_line_text(300, required=False),
    author=one_line_text(100, required=True),
)
def test_free_text_round_trips_through_a_bake(
    bakery: Any, name: str, description: str, author: str
) -> None:
    context = {
        "project_name": name,
        "description": description,
        "author_name": author,
        "author_email": "ann@example.org",
        "project_slug": "prop-project",
        "package_name": "prop_project",
        "github_owner": "ann",
    }
    assert PRE.validate(context, {}) == []
    project = bakery(**context)
    check_all_files_parse(project)
    check_values_land(project, name, description, author)


@settings(max_examples=PURE_EXAMPLES, deadline=None, database=None)
@given(
    st.sampled_from(["project_name", "description", "author_name"]),
    st.text(max_size=20),
    st.sampled_from([*"\n\r\x00\x1b\x7f\x85\u2028\u2029\ufeff\u202e"]),
    st.text(max_size=20),
)
def test_free_text_with_a_line_break_or_control_is_rejected(
    field: str, before: str, bad: str, after: str
) -> None:
    value = before + bad + after
    problems = PRE.validate({field: value}, {})
    assert problems
    assert all(p.field == field for p in problems)
