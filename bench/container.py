"""Container benchmark: the Dockerfile's two images, their sizes and build times.

    .venv/bin/python bench/container.py            # both targets (~4 min on 2 cores)
    .venv/bin/python bench/container.py --target serve

Bakes the default project with the end-to-end tier's setup (the public index
as the mirror, torch from a local stand-in of PyTorch's CPU index on
127.0.0.1), locks it with Poetry, and builds each target with podman on the
base image the tier makes (``tests/e2e/podman.py``: debootstrap minbase,
imported, cached under ``.cache/container/``; no registry), each target in a
podman storage of its own that starts empty. Per target it prints one row:

- ``cold s``: the first build (no layer cache, no Poetry download cache; pip
  and Poetry download from the registry, torch from the local index);
- ``code edit s``: the build again after one line of ``src/`` changed (the
  dependency layers come from the cache, the code layers are rebuilt);
- ``no change s``: the build again with nothing changed;
- ``image MB``: the image's size as podman reports it (uncompressed).

Needs root and podman (see ``.ci/run``); prints the reason and exits 2
otherwise. Nothing is left behind: the storage and the bake are removed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from e2e.conftest import CHANNELS, download_wheel  # noqa: E402
from e2e.local_index import LocalIndex  # noqa: E402
from e2e.podman import Podman, base_tarball, import_base, unavailable  # noqa: E402

TARGETS = {"serve": ["--target", "serve"], "default": []}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bake_and_lock(work: Path, index: LocalIndex) -> Path:
    """The default bake, locked against the mirror and the local torch index."""
    from pip._internal.models.index import PyPI

    subprocess.run(
        [
            str(Path(sys.executable).with_name("cookiecutter")),
            "--no-input",
            "-o",
            str(work),
            str(ROOT),
            "init_git=no",
            "poetry_lock=no",
            f"package_index_url={PyPI.simple_url}",
            f"torch_index_url={index.base}",
        ],
        check=True,
        capture_output=True,
    )
    (project,) = [path for path in work.iterdir() if (path / "pyproject.toml").is_file()]
    env = {key: value for key, value in os.environ.items() if not key.startswith("POETRY_")}
    env.update(
        POETRY_CONFIG_DIR=str(work / "poetry-config"),
        POETRY_CACHE_DIR=str(ROOT / ".cache" / "e2e" / "poetry"),
        POETRY_KEYRING_ENABLED="false",
        POETRY_NO_INTERACTION="1",
    )
    poetry = str(Path(sys.executable).with_name("poetry"))
    subprocess.run([poetry, "lock"], cwd=project, env=env, check=True, capture_output=True)
    return project


def measure(work: Path, project: Path, tarball: Path, suite: str, target: str) -> dict[str, float]:
    """One target's three builds and its size, in a podman storage of its own.

    A storage per target keeps the second target's cold build cold: the two
    share the Dockerfile's first stage and Poetry's download cache.
    """
    podman = Podman(work / f"podman-{target}")
    try:
        base = import_base(podman, tarball, suite)
        tag = f"localhost/bench-{target}"
        extra = TARGETS[target]
        log(f"{target}: cold build")
        cold = podman.build(project, tag, base, *extra, timeout=900)
        size = podman.image_size_mb(tag)
        package = next(p for p in (project / "src").iterdir() if (p / "__init__.py").is_file())
        with (package / "__init__.py").open("a", encoding="utf-8") as file:
            file.write(f"# edited for the benchmark ({target})\n")
        log(f"{target}: build after a code edit")
        edited = podman.build(project, tag, base, *extra)
        log(f"{target}: build with nothing changed")
        unchanged = podman.build(project, tag, base, *extra)
    finally:
        podman.close()
    return {"cold": cold, "edit": edited, "unchanged": unchanged, "size": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=list(TARGETS), action="append")
    options = parser.parse_args()
    if reason := unavailable():
        print(f"cannot benchmark containers here: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-container-"))
    index = LocalIndex(work / "index", CHANNELS)
    try:
        version = importlib.metadata.version("torch")
        index.add([download_wheel(f"torch=={version}", work / "wheels")])
        log("bake and poetry lock")
        project = bake_and_lock(work / "bake", index)
        tarball, suite, made = base_tarball(work)
        log(f"base image: {tarball.name}" + (f" (made in {made:.0f} s)" if made else " (cached)"))
        rows = {t: measure(work, project, tarball, suite, t) for t in options.target or TARGETS}
    finally:
        index.stop()
        shutil.rmtree(work, ignore_errors=True)
    if made:
        print(f"base image {suite} (debootstrap minbase): made in {made:.0f} s")
    header = ("target", "cold s", "code edit s", "no change s", "image MB")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for target, row in rows.items():
        cells = [target, *(f"{row[k]:.1f}" for k in ("cold", "edit", "unchanged"))]
        print("| " + " | ".join([*cells, f"{row['size']:.0f}"]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
