"""Jinja filters that turn user answers into safe text for each file format.

Every value a person types reaches the baked files through one of these
filters, never pasted raw. Each filter returns a complete literal of its
format (quotes included) or text already escaped for its context, so a quote,
backslash, ``#``, ``: `` or emoji in a name cannot change the file's structure.

cookiecutter imports this module from the template's root (``_extensions`` in
``cookiecutter.json``). It uses the standard library alone, because it runs
inside whatever environment the user installed cookiecutter into.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

FALLBACK_SLUG = "ml-project"

# TOML basic strings allow any Unicode scalar value except these controls.
_TOML_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# YAML (1.1 as read by PyYAML, and 1.2) folds or rejects these inside a
# double-quoted scalar, so they are written as escapes.
_YAML_ESCAPE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]"
)
# CommonMark lets a backslash escape any ASCII punctuation character.
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by dashes, e.g. ``My ML Project`` -> ``my-ml-project``.

    Accents are folded (``Café`` -> ``cafe``); a name with no ASCII letters or
    digits at all falls back to a neutral slug that the user can override.
    """
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.decode("ascii").lower()).strip("-")
    return slug or FALLBACK_SLUG


def to_identifier(slug: str) -> str:
    """Python import name for a slug: dashes and dots become underscores."""
    return re.sub(r"[^a-z0-9_]", "_", str(slug).lower().replace("-", "_").replace(".", "_"))


def toml_str(value: Any) -> str:
    """A TOML basic string (with quotes) holding exactly ``value``."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    text = _TOML_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04X}", text)
    return f'"{text}"'


def _yaml_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04X}"


def yaml_str(value: Any) -> str:
    """A YAML double-quoted scalar (with quotes) holding exactly ``value``."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _YAML_ESCAPE.sub(_yaml_escape, text) + '"'


def md_text(value: Any) -> str:
    """Markdown inline text that renders as exactly ``value``, never as markup."""
    return _MD_PUNCTUATION.sub(r"\\\1", str(value))


def docstring_text(value: Any) -> str:
    """Text safe inside a triple-double-quoted Python docstring.

    Backslashes and double quotes are escaped, so the literal cannot end early
    and ``ast.literal_eval`` of the docstring gives back exactly ``value``.
    """
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def public_answers(context: Mapping[str, Any]) -> str:
    """The answers a project was baked from, as JSON, for replay and updates.

    Private keys (``_``-prefixed) are dropped except the template version:
    they hold absolute paths of the machine that baked the project.
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
    "public_answers": public_answers,
}


class ValueFilters(Extension):
    """Registers :data:`FILTERS` on cookiecutter's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(FILTERS)
