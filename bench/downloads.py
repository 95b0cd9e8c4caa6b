"""What a newcomer downloads for torch: the CPU route beside the registry's CUDA route.

Sizes come from the indexes' file listings, never from downloading the wheels:
the public index's simple API in its JSON form (PEP 691, which lists each file's
size) and, for dependencies, each chosen wheel's metadata read through HTTP
range requests (pip's lazy wheel reader, a few kilobytes per wheel). The CPU
route's torch wheel is the file the local PyTorch index serves.
"""

from __future__ import annotations

import json
import urllib.request
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from bench.common import log

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"


def listing(index: str, name: str) -> list[dict[str, Any]]:
    """The files of ``name`` on a simple index (PEP 691 JSON)."""
    url = f"{index.rstrip('/')}/{canonicalize_name(name)}/"
    request = urllib.request.Request(url, headers={"Accept": JSON_ACCEPT})
    with urllib.request.urlopen(request, timeout=60) as answer:
        files: list[dict[str, Any]] = json.load(answer)["files"]
    return files


def best_wheel(files: Iterable[dict[str, Any]], requirement: Requirement) -> dict[str, Any]:
    """The newest wheel that ``requirement`` allows and this platform installs (pip's choice)."""
    rank = {tag: number for number, tag in enumerate(sys_tags())}
    candidates = []
    for entry in files:
        if not entry["filename"].endswith(".whl") or entry.get("yanked"):
            continue
        _, version, _, tags = parse_wheel_filename(entry["filename"])
        if version.is_prerelease or not requirement.specifier.contains(version):
            continue
        best = min((rank[tag] for tag in tags if tag in rank), default=None)
        if best is not None:
            candidates.append((version, -best, entry))
    if not candidates:
        raise RuntimeError(f"no installable wheel for {requirement}")
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def requirements(metadata: str, extras: Iterable[str]) -> list[Requirement]:
    """The ``Requires-Dist`` entries that apply here, with the given extras."""
    found = []
    for line in Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            found.append(requirement)
            continue
        for extra in ["", *extras]:
            environment = {**default_environment(), "extra": extra}
            if requirement.marker.evaluate(environment):  # type: ignore[arg-type]
                found.append(requirement)
                break
    return found


def remote_metadata(url: str, name: str) -> str:
    """A remote wheel's METADATA, read with range requests (pip's lazy wheel)."""
    from pip._internal.network.lazy_wheel import dist_from_wheel_url
    from pip._internal.network.session import PipSession

    with PipSession() as session:
        distribution = dist_from_wheel_url(name, url, session)  # type: ignore[arg-type]
        return str(distribution.read_text("METADATA"))


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(member).decode("utf-8")


def closure(index: str, top: list[Requirement]) -> dict[str, dict[str, Any]]:
    """Every distribution ``top`` pulls in from ``index``, with its file name and size."""
    chosen: dict[str, dict[str, Any]] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = list(top)
    while pending:
        requirement = pending.pop(0)
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in chosen and extras <= extras_seen[name]:
            continue
        if name not in chosen:
            entry = best_wheel(listing(index, name), requirement)
            chosen[name] = {
                "file": entry["filename"],
                "bytes": int(entry["size"]),
                "url": entry["url"],
            }
            extras_seen[name] = set()
        new_extras = extras - extras_seen[name]
        extras_seen[name] |= extras
        metadata = remote_metadata(chosen[name]["url"], name)
        wanted = requirements(metadata, new_extras or extras)
        pending += [r for r in wanted if canonicalize_name(r.name) not in chosen or r.extras]
    for entry in chosen.values():
        entry.pop("url")
    return chosen


def measure(cpu_wheel: Path, index: str) -> dict[str, Any]:
    """Download sizes of torch's CPU route (local wheel + its dependencies) and CUDA route."""
    version = Version(parse_wheel_filename(cpu_wheel.name)[1].public)
    result: dict[str, Any] = {"torch_version": str(version)}
    cpu_dependencies = requirements(wheel_metadata(cpu_wheel), [])
    log(f"  download sizes: torch {version}, CPU wheel and the index's CUDA route")
    cpu_deps = closure(index, cpu_dependencies)
    result["cpu"] = {
        "torch_file": cpu_wheel.name,
        "torch_bytes": cpu_wheel.stat().st_size,
        "dependencies": cpu_deps,
    }
    cuda = closure(index, [Requirement(f"torch=={version}")])
    torch_entry = cuda.pop("torch")
    result["cuda"] = {
        "torch_file": torch_entry["file"],
        "torch_bytes": torch_entry["bytes"],
        "dependencies": cuda,
    }
    for route in ("cpu", "cuda"):
        data = result[route]
        data["dependencies_bytes"] = sum(d["bytes"] for d in data["dependencies"].values())
        data["total_bytes"] = data["torch_bytes"] + data["dependencies_bytes"]
    cpu_names = set(result["cpu"]["dependencies"])
    result["cuda"]["gpu_only"] = sorted(set(result["cuda"]["dependencies"]) - cpu_names)
    return result
