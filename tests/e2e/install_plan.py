"""Ask Poetry what ``poetry install`` would install on other platforms.

    python install_plan.py PROJECT_DIR  ->  JSON on stdout

For each platform (Linux, Windows, macOS) and each choice of extras (none,
``cuda``), runs Poetry's own installer on the project's lock file in dry-run
mode against a mock environment of that platform, and prints the packages it
would install as ``{"linux": {"": [[name, version, source], ...], "cuda": ...}}``
(source: the Poetry source's name, ``""`` for the default index).

It runs as a separate process so that the caller's environment variables
(``POETRY_CONFIG_DIR`` and friends) isolate it exactly like the ``poetry``
commands around it, and honours the project's ``poetry.toml`` like they do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cleo.io.null_io import NullIO
from poetry.factory import Factory
from poetry.installation.executor import Executor
from poetry.installation.installer import Installer
from poetry.installation.operations.operation import Operation
from poetry.utils.env import MockEnv

PLATFORMS: dict[str, dict[str, Any]] = {
    "linux": {
        "platform": "linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "marker_env": {"platform_system": "Linux"},
    },
    "windows": {
        "platform": "win32",
        "platform_machine": "AMD64",
        "os_name": "nt",
        "marker_env": {"platform_system": "Windows"},
    },
    "macos": {
        "platform": "darwin",
        "platform_machine": "arm64",
        "os_name": "posix",
        "marker_env": {"platform_system": "Darwin"},
    },
}
EXTRAS: dict[str, list[str]] = {"": [], "cuda": ["cuda"]}


def plan(project: Path, platform: dict[str, Any], extras: list[str]) -> list[list[str]]:
    """The packages a fresh ``poetry install`` (with ``extras``) would install."""
    poetry = Factory().create_poetry(project)
    python = sys.version_info
    # An empty sys_path: nothing counts as installed already.
    env = MockEnv((python.major, python.minor, python.micro), sys_path=[], **platform)
    io = NullIO()
    recorded: list[Operation] = []

    class Recorder(Executor):
        def execute(self, operations: list[Operation]) -> int:
            recorded.extend(operations)
            return 0

    executor = Recorder(env, poetry.pool, poetry.config, io)
    installer = Installer(
        io, env, poetry.package, poetry.locker, poetry.pool, poetry.config, executor=executor
    )
    installer.extras(extras)
    status = installer.run()
    if status != 0:
        raise SystemExit(f"the installer failed ({status})")
    return sorted(
        [op.package.name, op.package.version.text, op.package.source_reference or ""]
        for op in recorded
        if op.job_type == "install" and not op.skipped
    )


def main() -> None:
    project = Path(sys.argv[1]).resolve()
    result = {
        name: {key: plan(project, platform, extras) for key, extras in EXTRAS.items()}
        for name, platform in PLATFORMS.items()
    }
    json.dump(result, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
