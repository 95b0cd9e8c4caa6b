"""Derive ``hooks/reserved_names.json``: the names a baked project must not take.

A package named like a dependency's import name would shadow it; a project
named like a dependency would clash with it on the index. The file lists the
distributions a baked project can install, each with the top-level names it
imports as. It is derived, not kept by hand: the roots are the requirements the
template itself declares (every requirement string in the baked
``pyproject.toml``, for every option, extras included), followed through their
dependencies as this environment installed them (``importlib.metadata``).

    python tests/reserved_names.py          # say whether the file is current
    python tests/reserved_names.py --write  # write it

Run it from the test environment (``.venv``), which has every option's
runtime installed; a root that is not installed there is kept with the import
name its distribution name gives.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "hooks" / "reserved_names.json"
BAKED_PYPROJECT = next(ROOT.glob("{{*/pyproject.toml"))
# A requirement string at the start of a TOML array item: "name[extras]>=1; marker".
REQUIREMENT = re.compile(
    r'^\s*(?:requires\s*=\s*\[)?"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?\s*[<>=!~;]', re.M
)
NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
# What no CPU environment can show: the CUDA build's own packages (the `cuda`
# extra), and what every virtual environment holds.
OTHER_ROOTS = {
    "triton": ["triton"],
    "nvidia-cudnn-cu12": ["nvidia"],
    "pip": ["pip"],
    "setuptools": ["_distutils_hack", "pkg_resources", "setuptools"],
}


def canonical(name: str) -> str:
    """PEP 503's normal form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """Every distribution the baked project's requirement lists name, with its extras."""
    roots: dict[str, set[str]] = {}
    for name, extras in REQUIREMENT.findall(BAKED_PYPROJECT.read_text(encoding="utf-8")):
        wanted = roots.setdefault(canonical(name), set())
        wanted.update(extra.strip() for extra in extras.split(",") if extra.strip())
    return roots


def imports_of(dist: metadata.Distribution) -> list[str]:
    """The top-level names a distribution installs (lowercased: disks may fold case)."""
    names: set[str] = set()
    text = dist.read_text("top_level.txt")
    if text:
        names.update(line.strip() for line in text.splitlines() if line.strip())
    for path in dist.files or ():
        top = path.parts[0]
        if len(path.parts) > 1 and "." not in top and top.isidentifier():
            names.add(top)
        elif len(path.parts) == 1 and path.suffix == ".py":
            names.add(path.stem)
    return sorted({n.lower() for n in names if n.isidentifier() and "__" not in n})


def derive() -> dict[str, list[str]]:
    """Distribution -> import names, from the declared roots through their dependencies."""
    installed = {canonical(d.metadata["Name"]): d for d in metadata.distributions()}
    found: dict[str, list[str]] = dict(OTHER_ROOTS)
    todo = sorted(declared().items())
    seen: set[tuple[str, str]] = set()
    while todo:
        name, extras = todo.pop()
        dist = installed.get(name)
        if dist is None:
            found.setdefault(name, [name.replace("-", "_")])
            continue
        found[name] = imports_of(dist) or [name.replace("-", "_")]
        for requirement in dist.requires or ():
            needs = EXTRA.search(requirement)
            match = NAME.match(requirement)
            if (needs and needs.group(1) not in extras) or not match:
                continue
            key = (canonical(match.group(1)), requirement)
            if key[0] in installed and key not in seen:
                seen.add(key)
                todo.append((key[0], set()))
    return dict(sorted(found.items()))


def main(argv: list[str]) -> int:
    text = json.dumps({"distributions": derive()}, indent=1, sort_keys=True) + "\n"
    if "--write" in argv:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
        return 0
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
    if current == text:
        print(f"{OUTPUT.relative_to(ROOT)} is current")
        return 0
    print(f"{OUTPUT.relative_to(ROOT)} differs: run python tests/reserved_names.py --write")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
