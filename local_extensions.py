"""Jinja filters that turn user answers into safe text for each file format.

Every value a person types reaches the baked files through one of these
filters, never pasted raw. Each filter returns a complete literal of its
format (quotes included) or text already escaped for its context, so a quote,
backslash, ``#``, ``: `` or emoji in a name cannot change the file's structure,
and the parser of that format reads back exactly what was typed.

cookiecutter imports this module from the template's root (``_extensions`` in
``cookiecutter.json``). It uses the standard library alone, because it runs
inside whatever environment the user installed cookiecutter into.

The pre-generation hook rejects, before anything is rendered, the values these
filters cannot represent (lone surrogates, line breaks in one-line fields); the
filters raise ``ValueError`` on them rather than write a broken file.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from jinja2.ext import Extension

FALLBACK_SLUG = "ml-project"
# Prefix for an import name that would otherwise start with a digit.
IDENTIFIER_PREFIX = "ml_"
# GitHub's limit for repository names; also keeps folder names sane.
MAX_SLUG_LENGTH = 100

# Letters that Unicode decomposition does not reduce to ASCII.
_ASCII_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "TH",
        "\u0131": "i",  # dotless i
    }
)
# TOML basic strings allow any Unicode scalar value except these controls.
_TOML_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# YAML (1.1 as read by PyYAML, and 1.2) folds or rejects these inside a
# double-quoted scalar, so they are written as escapes.
_YAML_ESCAPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Markdown. A backslash escape works in CommonMark (GitHub, most renderers) for
# any ASCII punctuation, but Python-Markdown (mkdocs) honours it only for these;
# elsewhere it prints the backslash. So these are backslash-escaped ...
_MD_BACKSLASH = "\\`*_{}[]()#+-.!>"
# ... and these, which carry markup in GFM or common extensions (tables,
# strikethrough, math, HTML, entities, tabbed blocks), become character
# references, which every renderer decodes back to the character.
_MD_ENTITY = {
    "&": "&amp;",
    "<": "&lt;",
    "|": "&#124;",
    "~": "&#126;",
    "^": "&#94;",
    "=": "&#61;",
    "$": "&#36;",
}
# Characters a folder name cannot hold (the path separators, and Windows' own).
_NOT_IN_FOLDER = '/\\<>:"|?*'
# Inline markup: escaped wherever it appears.
_MD_INLINE = re.compile(r"[\\`*_{}\[\]()#&<|~^=$]")
# Block markup that only counts at the start of a line: list markers, quotes,
# admonitions (``!!!``), details (``???``), ordered-list numbers (``1.``, ``1)``).
_MD_LINE_START = re.compile(r"^(?:[-+>!?:]|\d+[.)])")


def slugify(text: Any, max_length: int = MAX_SLUG_LENGTH) -> str:
    """Lowercase ASCII words joined by dashes, e.g. ``My ML Project`` -> ``my-ml-project``.

    Accents are folded (``Café`` -> ``cafe``, ``Straße`` -> ``strasse``); a name
    with no ASCII letters or digits at all falls back to a neutral slug that the
    user can override. The result is a valid, normalised distribution name (and
    a valid GitHub name) of at most ``max_length`` characters: use
    ``slugify(39)`` for a GitHub user or organisation name.
    """
    folded = unicodedata.normalize("NFKD", str(text).translate(_ASCII_FOLD))
    ascii_text = folded.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-")
    return slug or FALLBACK_SLUG


def to_identifier(slug: Any) -> str:
    """Python import name for a slug: ``my-ml-project`` -> ``my_ml_project``.

    Anything but ASCII letters, digits and underscores becomes one underscore;
    a name that would start with a digit gets :data:`IDENTIFIER_PREFIX`. The
    pre-generation hook still checks the result (keywords, standard library,
    dependencies), because a user may type any package name.
    """
    name = re.sub(r"[^a-z0-9]+", "_", str(slug).lower()).strip("_")
    if not name:
        return slugify("").replace("-", "_")
    if name[0].isdigit():
        name = IDENTIFIER_PREFIX + name
    return name


def project_folder(slug: Any) -> str:
    """The project folder's name: the slug, when it can be one folder name.

    cookiecutter creates the folder, and every folder above it, before the
    pre-generation hook can reject the slug, and on failure removes only the
    folder itself. So a slug that is not one plain folder name (``a/b``,
    ``..``, empty, a character Windows forbids) becomes a single folder name
    with those characters percent-escaped (``a%2Fb``); the hook then rejects
    the slug, and cookiecutter's own clean-up leaves nothing behind.
    """
    text = str(slug)
    if text not in ("", ".", "..") and text.isprintable() and not set(text) & set(_NOT_IN_FOLDER):
        return text
    return quote(text, safe="", errors="surrogatepass").replace(".", "%2E") or "%00"


def _refuse_surrogates(value: str, fmt: str) -> None:
    if _SURROGATE.search(value):
        raise ValueError(f"{fmt} cannot hold a lone surrogate: {value!r}")


def toml_str(value: Any) -> str:
    """A TOML basic string (with quotes) holding exactly ``value``.

    Characters outside the Basic Multilingual Plane are written as themselves
    (UTF-8), never as JSON-style surrogate pairs, which TOML forbids.
    """
    text = str(value)
    _refuse_surrogates(text, "TOML")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = _TOML_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04X}", text)
    return f'"{text}"'


def _yaml_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04X}"


def yaml_str(value: Any) -> str:
    """A YAML double-quoted scalar (with quotes) holding exactly ``value``.

    Line breaks of every kind (including U+0085, U+2028 and U+2029, which YAML
    would fold) and other non-printable characters are written as escapes.
    """
    text = str(value)
    _refuse_surrogates(text, "YAML")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _YAML_ESCAPE.sub(_yaml_escape, text) + '"'


def _md_inline(match: re.Match[str]) -> str:
    char = match.group()
    return _MD_ENTITY.get(char) or "\\" + char


def _md_line_start(match: re.Match[str]) -> str:
    text = match.group()
    head, last = text[:-1], text[-1]
    if last in _MD_BACKSLASH:
        return f"{head}\\{last}"
    return f"{head}&#{ord(last)};"


def md_text(value: Any) -> str:
    """Markdown inline text that renders as exactly ``value``, never as markup.

    Works for CommonMark/GFM (GitHub, GitLab) and Python-Markdown (mkdocs) alike,
    in a paragraph, a heading or a table cell, at the start of a line or inside
    one. ASCII punctuation without meaning to either renderer (``:``, ``,``,
    ``'``, ``/``...) is left as typed, so the Markdown source stays readable.
    """
    text = str(value)
    escaped = _MD_INLINE.sub(_md_inline, text)
    return _MD_LINE_START.sub(_md_line_start, escaped, count=1)


def _display_width(text: str) -> int:
    """Columns a line takes in an editor (and in ruff's line-length check)."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _docstring_atoms(text: str) -> list[str]:
    """Each character of ``text`` as it is written inside the docstring."""
    last = len(text) - 1
    atoms = []
    for i, char in enumerate(text):
        if char == "\\":
            atoms.append(r"\u005c")
        elif char not in "\n\t" and unicodedata.category(char) == "Cc":
            atoms.append(f"\\u{ord(char):04x}")  # NUL cannot be in source; CR is folded
        elif char == '"' and (
            i in (0, last) or text[i - 1] == '"' or (i < last and text[i + 1] == '"')
        ):
            atoms.append(r"\u0022")
        else:
            atoms.append(char)
    return atoms


def docstring_text(value: Any, width: int = 0, indent: int = 0, first: int = 0) -> str:
    """Text safe inside a triple-double-quoted (non-raw) Python docstring.

    ``ast.literal_eval`` of the docstring gives back exactly ``value``. A
    backslash, and a double quote that could end the docstring early (at either
    end of the value, or next to another quote), and control characters other
    than newline and tab are written as ``\\uXXXX`` escapes (``\\u005c``,
    ``\\u0022``): pydocstyle's D301 (which wants a raw docstring for other
    backslashes) accepts those, black and ruff's formatter leave them alone,
    and they hold no space, so wrapping never splits one.

    With ``width``, the text is wrapped at spaces into lines of at most that many
    columns (wide East Asian characters and emoji count two, as in ruff's line
    length): the first line starts after ``first`` columns (e.g. 3 for ``\"\"\"`` at
    module level), later lines are indented by ``indent`` spaces. Wrapping turns
    some spaces into line breaks, as docstring prose allows; a word longer than
    a line stays whole.
    """
    text = str(value)
    _refuse_surrogates(text, "A Python docstring")
    atoms = _docstring_atoms(text)
    if width <= 0:
        return "".join(atoms)
    words: list[str] = [""]
    for atom in atoms:
        if atom == " ":
            words.append("")
        else:
            words[-1] += atom
    lines: list[str] = []
    current, used = words[0], first + _display_width(words[0])
    for word in words[1:]:
        word_width = _display_width(word)
        if used + 1 + word_width <= width:
            current, used = f"{current} {word}", used + 1 + word_width
        elif current.strip(" ") and word:
            # Break here; the spaces at the break become the line break.
            lines.append(current.rstrip(" "))
            current, used = word, indent + word_width
        else:
            # A run of spaces, or nothing yet on this line: keep going.
            current, used = f"{current} {word}" if current else word, used + 1 + word_width
    lines.append(current)
    return ("\n" + " " * indent).join(lines)


def py_str(value: Any) -> str:
    """A Python string literal (with quotes) holding exactly ``value``.

    Double quotes unless single quotes need fewer escapes, which is the choice
    black and ruff's formatter make, so the baked file is already formatted.
    Non-printable characters are escaped; printable non-ASCII text stays as is.
    """
    text = str(value)
    quote = "'" if text.count("'") < text.count('"') else '"'
    out = []
    for char in text:
        if char == "\\" or char == quote:
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return quote + "".join(out) + quote


def public_answers(context: Mapping[str, Any]) -> str:
    """The answers a project was baked from, as JSON, for replay and updates.

    The shape is cookiecutter's replay file (``{"cookiecutter": {...}}``), so
    ``cookiecutter --replay-file .cookiecutter.json TEMPLATE`` bakes the same
    project again. Private keys (``_``-prefixed) are dropped, except the
    template version: they hold absolute paths of the machine that baked the
    project (``_output_dir``, ``_repo_dir``, ``_template``) or template
    internals that a replay takes from the template itself.
    """
    answers = {
        key: value
        for key, value in context.items()
        if not key.startswith("_") or key == "_template_version"
    }
    return json.dumps({"cookiecutter": answers}, indent=2, ensure_ascii=False)


FILTERS = {
    "slugify": slugify,
    "to_identifier": to_identifier,
    "toml_str": toml_str,
    "yaml_str": yaml_str,
    "md_text": md_text,
    "docstring_text": docstring_text,
    "py_str": py_str,
    "public_answers": public_answers,
}


class ValueFilters(Extension):
    """Registers :data:`FILTERS` and the :func:`project_folder` function on cookiecutter's Jinja.

    ``project_folder`` is a function, not a filter, because it names the
    project folder: ``{{project_folder(cookiecutter.project_slug)}}`` is a
    valid file name everywhere, and a filter's ``|`` is not on Windows.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(FILTERS)
        environment.globals["project_folder"] = project_folder
