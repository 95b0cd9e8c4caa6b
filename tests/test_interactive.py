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


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_mistyped_answer_costs_one_retry(tmp_path: Path) -> None:
    """A bad e-mail typed at the prompt: the bake stops, prints the command, and that
    command with the one field fixed bakes what the person meant, other answers kept."""
    import shlex
    import subprocess

    license_choices = COOKIECUTTER_JSON["license"]
    typed = {
        "project_name": "Typo Lab",
        "author_email": "ada at example.org",
        "license": str(license_choices.index("GPL-3.0-only") + 1),
    }
    by_question = {prompt_text(key).split("(")[0].strip(): value for key, value in typed.items()}
    child = pexpect.spawn(
        tool("cookiecutter"),
        [str(TEMPLATE_DIR), "--output-dir", str(tmp_path)],
        encoding="utf-8",
        timeout=30,
        dimensions=(60, 400),
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
    )
    while child.expect([r"\[\d+/\d+\] ([^\n(]+)[\s\S]*?\): ", pexpect.EOF]) == 0:
        question = child.match.group(1).strip()
        child.sendline(next((v for q, v in by_question.items() if question.startswith(q)), ""))
    output = child.before or ""
    child.close()
    assert child.exitstatus != 0
    assert not (tmp_path / "typo-lab").exists()
    lines = [line.strip() for line in output.splitlines()]
    assert any(line.startswith("error: author_email") for line in lines), output
    command = shlex.split(lines[next(i for i, x in enumerate(lines) if "run it:" in x) + 1])
    fixed = [
        "author_email=ada@example.org" if w.startswith("author_email=") else w for w in command
    ]
    done = subprocess.run(
        [tool("cookiecutter"), *fixed[1:]], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads((tmp_path / "typo-lab" / ".cookiecutter.json").read_text("utf-8"))
    assert answers["cookiecutter"]["author_email"] == "ada@example.org"
    assert answers["cookiecutter"]["license"] == "GPL-3.0-only"  # kept from the prompt
