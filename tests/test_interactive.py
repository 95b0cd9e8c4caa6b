"""A person answers cookiecutter's prompts on a terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from harness import COOKIECUTTER_JSON, TEMPLATE_DIR, tool

pexpect = pytest.importorskip("pexpect", reason="pexpect needs a POSIX terminal")

PROMPTS: dict[str, object] = COOKIECUTTER_JSON["__prompts__"]


def prompt_text(key: str) -> str:
    """The question cookiecutter shows for ``key``."""
    prompt = PROMPTS[key]
    return prompt["__prompt__"] if isinstance(prompt, dict) else str(prompt)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_typed_answers_reach_the_project(tmp_path: Path) -> None:
    license_choices = COOKIECUTTER_JSON["license"]
    style_choices = COOKIECUTTER_JSON["code_style"]
    typed = {
        "project_name": "Café Vision Lab",
        "description": 'Reads "digits" \\ fast',
        "author_name": "Ada Lovelace",
        "license": str(license_choices.index("Apache-2.0") + 1),
        "code_style": str(style_choices.index("black-flake8") + 1),
    }
    by_question = {prompt_text(key).split("(")[0].strip(): value for key, value in typed.items()}

    child = pexpect.spawn(
        tool("cookiecutter"),
        [str(TEMPLATE_DIR), "--output-dir", str(tmp_path)],
        encoding="utf-8",
        timeout=30,
        dimensions=(60, 400),  # wide enough that no question wraps
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
    )
    asked = 0
    # "[3/21] Question (hint) (default): ", choices listed on the lines between.
    while child.expect([r"\[\d+/\d+\] ([^\n(]+)[\s\S]*?\): ", pexpect.EOF]) == 0:
        question = child.match.group(1).strip()
        answer = next((v for q, v in by_question.items() if question.startswith(q)), "")
        child.sendline(answer)  # an empty line accepts the default
        asked += 1
    child.close()
    assert child.exitstatus == 0, child.before

    public = [k for k in COOKIECUTTER_JSON if not k.startswith("_")]
    assert asked == len(public)
    project = tmp_path / "cafe-vision-lab"
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    recorded = answers["cookiecutter"]
    assert recorded["project_name"] == "Café Vision Lab"
    assert recorded["package_name"] == "cafe_vision_lab"
    assert recorded["description"] == typed["description"]
    assert recorded["license"] == "Apache-2.0"
    assert recorded["code_style"] == "black-flake8"
    assert "Apache License" in (project / "LICENSE").read_text(encoding="utf-8")
