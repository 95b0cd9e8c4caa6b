"""Podman for the end-to-end tier: a private engine and a base image made here.

No container registry is reachable from CI, so nothing is pulled: the base
image is made on the machine with ``debootstrap --variant=minbase`` (Debian
with ``python3``, ``python3-venv`` and ``ca-certificates``) and brought in with
``podman import``. The root file system is cached as a tarball under the
template's ``.cache/container/`` (ignored by git), keyed by the Debian release
and the host's extra CA certificates, so only the first session pays for
debootstrap (about a minute and a half); later ones import the tarball in
seconds.

Every podman command of a session runs against its own configuration, storage
and temporary folders (``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF``,
``CONTAINERS_REGISTRIES_CONF``, ``TMPDIR``), never the machine's: builds and
containers of one session are gone when it ends (:meth:`Podman.close`). The
configuration written here is what this kind of machine needs:

- the ``runc`` runtime (``crun`` rejects hybrid cgroup hierarchies);
- container ulimits (``nofile``, ``nproc``) within the host's hard limits:
  podman's defaults for root are far above them, and without
  ``CAP_SYS_RESOURCE`` the runtime cannot raise a hard limit;
- ``cgroupfs`` and a file events log, as there is no systemd;
- no registries at all (``registries.conf`` empty, builds with ``--pull=never``).

Outside its folders podman writes only ``/var/lib/containers/cache`` (a cache
of layer digests that podman 4.3 keeps for root, with no setting to move it);
:meth:`Podman.close` removes it when that engine made it.

The host's extra CA certificates (``/usr/local/share/ca-certificates``) are
trusted inside the base image, and ``SSL_CERT_FILE``, ``PIP_CERT`` and
``REQUESTS_CA_BUNDLE`` point pip and Poetry at the system store: where the
registry is reached through a proxy that re-signs TLS, a build reaches it only
through them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import TEMPLATE_DIR

CACHE = TEMPLATE_DIR / ".cache" / "container"
# The Debian release whose python3 is the Python running the tests: the default
# target installs the same torch wheel the tests' environment has.
SUITES = {(3, 11): "bookworm", (3, 13): "trixie"}
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
EXTRA_CERTIFICATES = Path("/usr/local/share/ca-certificates")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Command -> the Debian package that brings it (.ci/run installs them).
TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "conmon": "conmon",
    "debootstrap": "debootstrap",
    "slirp4netns": "slirp4netns",
    "chroot": "coreutils",
}
# Ceilings for the containers' ulimits, below which this machine's runtime has
# set them (it refused nproc=65536 with a hard limit of 96367).
ULIMIT_CEILING = {"nofile": 16384, "nproc": 16384}
UID = 10001
# containers/image keeps a cache of layer digests here for root whatever the
# storage configuration says (podman 4.3 has no setting for it).
BLOB_INFO_CACHE = Path("/var/lib/containers/cache")


def unavailable() -> str | None:
    """Why podman cannot run here (``None`` when it can)."""
    if not sys.platform.startswith("linux"):
        return "containers are built with podman on Linux only"
    if os.geteuid() != 0:
        return (
            "podman runs here as root only (rootless podman needs /etc/subuid ranges"
            " and user namespaces, not set up on CI machines)"
        )
    missing = sorted({package for command, package in TOOLS.items() if not shutil.which(command)})
    if missing:
        return f"not installed: {' '.join(missing)} (apt-get install -y {' '.join(missing)})"
    if sys.version_info[:2] not in SUITES:
        version = ".".join(map(str, sys.version_info[:2]))
        return f"no Debian release whose python3 is {version}, the Python running the tests"
    if not DEBIAN_KEYRING.is_file():
        return f"{DEBIAN_KEYRING} is missing (apt-get install -y debian-archive-keyring)"
    return None


def ulimits() -> list[str]:
    """``NAME=SOFT:HARD`` for nofile and nproc, at or below the host's hard limits."""
    limits = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
    found = []
    for name, kind in limits.items():
        hard = resource.getrlimit(kind)[1]
        value = ULIMIT_CEILING[name] if hard == resource.RLIM_INFINITY else hard
        value = min(value, ULIMIT_CEILING[name])
        found.append(f"{name}={value}:{value}")
    return found


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


class Podman:
    """podman with a configuration and storage of its own under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("graph", "run", "tmp", "networks", "volumes"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        limits = ", ".join(_toml_string(limit) for limit in ulimits())
        (root / "containers.conf").write_text(
            "[containers]\n"
            f"default_ulimits = [{limits}]\n"
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f"events_logfile_path = {_toml_string(str(root / 'events.log'))}\n"
            f"tmp_dir = {_toml_string(str(root / 'tmp'))}\n"
            f"volume_path = {_toml_string(str(root / 'volumes'))}\n"
            "[network]\n"
            f"network_config_dir = {_toml_string(str(root / 'networks'))}\n",
            encoding="utf-8",
        )
        (root / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f"graphroot = {_toml_string(str(root / 'graph'))}\n"
            f"runroot = {_toml_string(str(root / 'run'))}\n",
            encoding="utf-8",
        )
        (root / "registries.conf").write_text("unqualified-search-registries = []\n", "utf-8")
        # Removed by close() when this engine is the one that made it.
        self.made_blob_info_cache = not BLOB_INFO_CACHE.exists()
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(root / "registries.conf"),
            # buildah keeps RUN --mount=type=cache folders under TMPDIR.
            "TMPDIR": str(root / "tmp"),
        }

    def __call__(
        self,
        *args: str | Path,
        check: bool = True,
        timeout: float = 600,
        input: str | bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS``; on failure (with ``check``) its output goes into the assertion."""
        command = ["podman", *map(str, args)]
        result = subprocess.run(
            command,
            env=self.env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode})\n"
                f"--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-20000:]}"
            )
        return result

    def build(self, context: Path, tag: str, base: str, *extra: str, timeout: float = 600) -> float:
        """``podman build`` the project at ``context``; its wall time in seconds.

        ``--format docker`` keeps HEALTHCHECK (the OCI format has no field for
        it); ``--network host`` lets the build reach a package index served on
        the host's 127.0.0.1.
        """
        started = time.monotonic()
        self(
            "build",
            "--format",
            "docker",
            "--pull=never",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--tag",
            tag,
            *extra,
            context,
            timeout=timeout,
        )
        return time.monotonic() - started

    def image_size_mb(self, tag: str) -> float:
        """The image's size as podman reports it (uncompressed layers), in MB."""
        size = self("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
        return int(size) / 1e6

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self(kind, "inspect", name).stdout)
        return found[0]

    def remove_container(self, name: str) -> None:
        """Stop and remove a container, if it is there (for finalizers)."""
        self("rm", "--force", "--ignore", "--time", "5", name, check=False, timeout=120)

    def close(self) -> None:
        """Remove every container and image of this engine, unmount, delete its folders."""
        try:
            self("rm", "--all", "--force", "--time", "5", check=False, timeout=120)
            self("rmi", "--all", "--force", check=False, timeout=300)
            self("system", "reset", "--force", check=False, timeout=300)
        finally:
            for mount in reversed(mounts_under(self.root)):
                subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)
            if self.made_blob_info_cache:
                shutil.rmtree(BLOB_INFO_CACHE, ignore_errors=True)
                with contextlib.suppress(OSError):
                    BLOB_INFO_CACHE.parent.rmdir()  # only when empty


# The engine's helper processes: one that outlives its container is a leak.
HELPERS = ("podman", "conmon", "runc", "slirp4netns", "catatonit")


def helper_processes() -> dict[int, str]:
    """Running podman helper processes: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            words = (entry / "cmdline").read_bytes().split(b"\0")
            if words and Path(words[0].decode(errors="replace")).name in HELPERS:
                found[int(entry.name)] = b" ".join(words).decode(errors="replace").strip()
    return found


def mounts_under(folder: Path) -> list[str]:
    """Mount points at or below ``folder``, in mount order."""
    prefix = str(folder.resolve())
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as file:
        for line in file:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def host_debian_mirror(suite: str) -> str | None:
    """The Debian mirror the host's apt uses (``None``: debootstrap's default)."""
    sources = Path("/etc/apt")
    candidates: list[str] = []
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for stanza in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")):
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split():
                candidates.extend(fields.get("uris", "").split())
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb":
                    candidates.append(words[1])
    for uri in candidates:
        if uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian"):
            return uri
    return None


def _base_key(suite: str, certificates: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"{suite} {' '.join(BASE_PACKAGES)}".encode())
    for certificate in certificates:
        digest.update(certificate.name.encode() + b"\0" + certificate.read_bytes())
    return digest.hexdigest()[:12]


def base_tarball(work: Path, timeout: float = 900) -> tuple[Path, str, float]:
    """The base root file system as a cached tarball: (path, suite, seconds spent making it).

    Made once with debootstrap (minbase), with the host's extra CA certificates
    added and trusted, apt's downloads and the documentation dropped.
    """
    suite = SUITES[sys.version_info[:2]]
    certificates = sorted(EXTRA_CERTIFICATES.glob("*.crt")) if EXTRA_CERTIFICATES.is_dir() else []
    tarball = CACHE / f"base-{suite}-{_base_key(suite, certificates)}.tar"
    if tarball.is_file():
        return tarball, suite, 0.0
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
    try:
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            suite,
            str(rootfs),
        ]
        if mirror := host_debian_mirror(suite):
            command.append(mirror)
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{result.stdout[-5000:]}{result.stderr}")
        for certificate in certificates:
            shutil.copyfile(
                certificate, rootfs / "usr/local/share/ca-certificates" / certificate.name
            )
        subprocess.run(
            ["chroot", str(rootfs), "update-ca-certificates"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        for folder in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
        ):
            for entry in (rootfs / folder).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        partial = tarball.with_suffix(".part")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            check=True,
            capture_output=True,
            timeout=300,
        )
        os.replace(partial, tarball)
    finally:
        for mount in reversed(mounts_under(rootfs)):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(rootfs, ignore_errors=True)
    return tarball, suite, time.monotonic() - started


def import_base(podman: Podman, tarball: Path, suite: str) -> str:
    """``podman import`` the base tarball; the image's name."""
    tag = f"localhost/e2e-base:{suite}"
    changes = [
        f"ENV SSL_CERT_FILE={SYSTEM_BUNDLE}",
        f"ENV PIP_CERT={SYSTEM_BUNDLE}",
        f"ENV REQUESTS_CA_BUNDLE={SYSTEM_BUNDLE}",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
    ]
    options = [part for change in changes for part in ("--change", change)]
    podman("import", *options, tarball, tag, timeout=300)
    return tag


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http(
    method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """One request; (status, the JSON body or ``None`` when it has none)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    return status, json.loads(text) if text.strip() else None
