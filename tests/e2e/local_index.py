"""A local stand-in for PyTorch's wheel indexes, served on 127.0.0.1.

PyTorch publishes one PEP 503 "simple" index per build (``/whl/cpu``,
``/whl/cu128``, ...). The end-to-end tier cannot count on reaching them, so it
serves wheels it already has under the same paths from a temporary folder:
``<root>/whl/<channel>/<project>/index.html`` lists each wheel with its sha256
and its core metadata (PEP 658/714, so Poetry locks without downloading the
wheel). Each channel holds its own hard link to each file, so the access log
shows which channel a download came from.

Poetry rejects ``file://`` sources, hence a real HTTP server: the standard
library's, in a thread, on a free port.
"""

from __future__ import annotations

import hashlib
import html
import http.server
import os
import re
import shutil
import threading
import zipfile
from collections.abc import Iterable, Mapping
from email.parser import HeaderParser
from functools import partial
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_metadata(wheel: Path) -> bytes:
    """The ``METADATA`` file of a wheel (its core metadata)."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return archive.read(name)
    raise ValueError(f"{wheel.name} has no .dist-info/METADATA")


def _link(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:  # another file system, or hard links not allowed
        shutil.copyfile(source, target)


def _page(anchors: list[str]) -> str:
    body = "<br>\n".join(anchors)
    return f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder quietly and records every path it was asked for."""

    requested: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        self.requested.append(self.path)
        return super().send_head()


class LocalIndex:
    """PEP 503 indexes for ``channels`` under ``root/whl``, served until :meth:`stop`."""

    def __init__(self, root: Path, channels: Iterable[str]) -> None:
        self.root = root
        self.channels = list(channels)
        self.requested: list[str] = []
        # project -> wheel file name -> (anchor attributes, wheel path, metadata, sha256)
        self._files: dict[str, dict[str, tuple[str, Path, bytes, str]]] = {}
        root.mkdir(parents=True, exist_ok=True)
        handler = type("Handler", (_Handler,), {"requested": self.requested})
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(handler, directory=str(root))
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-pytorch-index", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; the indexes are at ``{url}/whl/<channel>``."""
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def base(self) -> str:
        """What the template's ``torch_index_url`` expects."""
        return f"{self.url}/whl"

    @property
    def wheel_names(self) -> set[str]:
        return {name for files in self._files.values() for name in files}

    def add(self, wheels: Iterable[Path], requires_python: Mapping[str, str] | None = None) -> None:
        """Serve ``wheels`` in every channel.

        ``requires_python`` maps a project name to the ``Requires-Python`` to
        announce instead of the wheel's own (in the page and the metadata).
        """
        for wheel in wheels:
            project = canonicalize_name(parse_wheel_filename(wheel.name)[0])
            metadata = wheel_metadata(wheel)
            override = (requires_python or {}).get(project)
            if override is not None:
                metadata = re.sub(
                    rb"(?m)^Requires-Python:.*$",
                    b"Requires-Python: " + override.encode(),
                    metadata,
                )
            headers = HeaderParser().parsestr(metadata.decode("utf-8"))
            attributes = f'data-core-metadata="sha256={_sha256(metadata)}"'
            attributes += f' data-dist-info-metadata="sha256={_sha256(metadata)}"'
            if headers.get("Requires-Python"):
                attributes += f' data-requires-python="{html.escape(headers["Requires-Python"])}"'
            entry = (attributes, wheel, metadata, _sha256(wheel))
            self._files.setdefault(project, {})[wheel.name] = entry
        self._write()

    def _write(self) -> None:
        for channel in self.channels:
            base = self.root / "whl" / channel
            projects = []
            for project, files in sorted(self._files.items()):
                folder = base / project
                folder.mkdir(parents=True, exist_ok=True)
                anchors = []
                for name, (attributes, wheel, metadata, sha256) in sorted(files.items()):
                    _link(wheel, folder / name)
                    (folder / f"{name}.metadata").write_bytes(metadata)
                    href = html.escape(f"{name}#sha256={sha256}")
                    anchors.append(f'<a href="{href}" {attributes}>{html.escape(name)}</a>')
                (folder / "index.html").write_text(_page(anchors), encoding="utf-8")
                projects.append(f'<a href="{project}/">{project}</a>')
            (base / "index.html").write_text(_page(projects), encoding="utf-8")

    def downloads(self, since: int = 0) -> list[str]:
        """Wheel files fetched (after the first ``since`` requests), in order."""
        return [path for path in self.requested[since:] if path.split("#")[0].endswith(".whl")]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
