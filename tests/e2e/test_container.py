"""The baked Dockerfile built and run for real, with podman and no registry.

One bake (the public index as its mirror, torch from the local stand-in of
PyTorch's index, see ``conftest.py``) is locked with real Poetry, trained for
two tiny epochs and exported with the tests' environment (``PYTHONPATH=src``).
Then, on a base image made here (:mod:`.podman`):

- the ``serve`` target: built, run on 127.0.0.1 with the export folder
  mounted read-only, probed on ``/health``, ``/predict`` and the Open
  Inference Protocol's REST endpoints, its HEALTHCHECK run, its user and its
  packages checked (non-root, no torch), stopped and removed;
- the default target: built against the local torch index (the build uses the
  host's network to reach it), then ``fit`` run inside it with no network at
  all, its run folder written to a mounted folder.

Build times, image sizes and the base image's making time are recorded in the
end-to-end report (``.cache/e2e/report.json``). Where podman cannot run, the
tests skip and say why (``run_tests.py`` reports it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import tool

from .conftest import Report
from .local_index import LocalIndex
from .podman import (
    UID,
    Podman,
    base_tarball,
    free_port,
    helper_processes,
    http,
    import_base,
    unavailable,
)
from .steps import newest_run_metrics, run, validation_accuracy

pytestmark = pytest.mark.e2e

# The model's name in the export (not the slug), so the v2 URLs prove they use the card's.
MODEL_NAME = "digits-in-a-box"
STARTUP_S = 90


@dataclass
class Baked:
    """The locked bake, its package and its exported model."""

    path: Path
    package: str
    export: Path


@pytest.fixture(scope="module")
def podman(e2e_dir: Path) -> Iterator[Podman]:
    if reason := unavailable():
        pytest.skip(reason)
    before = helper_processes()
    engine = Podman(Path(tempfile.mkdtemp(prefix="podman-", dir=e2e_dir)))
    try:
        info = engine("info", check=False, timeout=120)
        if info.returncode != 0:
            pytest.skip(f"podman cannot run here: {info.stderr.strip()[-500:]}")
        yield engine
    finally:
        engine.close()
    deadline = time.monotonic() + 10
    while (left := {p: c for p, c in helper_processes().items() if p not in before}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not left, f"podman left processes behind: {left}"
    assert not engine.root.exists(), f"{engine.root} is left behind"


@pytest.fixture(scope="module")
def base_image(podman: Podman, e2e_dir: Path, e2e_report: Report) -> str:
    tarball, suite, made_s = base_tarball(e2e_dir)
    e2e_report.record("container base", base_s=round(made_s, 1))
    return import_base(podman, tarball, suite)


@pytest.fixture(scope="module")
def baked(
    bake: Any,
    e2e_dir: Path,
    pytorch_index: LocalIndex,
    mirror_url: str,
    poetry_env: dict[str, str],
) -> Baked:
    """A default bake, locked, with a two-epoch run exported as :data:`MODEL_NAME`."""
    project = bake(package_index_url=mirror_url, torch_index_url=pytorch_index.base)
    path = project.copy(e2e_dir / "container" / project.path.name).path
    run([tool("poetry"), "lock"], path, poetry_env)
    package = next(p.name for p in (path / "src").iterdir() if (p / "serve.py").is_file())
    env = {**os.environ, "PYTHONPATH": str(path / "src")}
    program = [sys.executable, "-m", package]
    fit = ["fit", "--config", "configs/smoke.yaml", "--trainer.accelerator=cpu"]
    run([*program, *fit], path, env)
    (run_dir,) = path.glob("runs/*_fit_smoke")
    run([*program, "export", run_dir, "--name", MODEL_NAME], path, env)
    return Baked(path, package, run_dir / "export")


def _rows(card: dict[str, Any], count: int) -> list[list[float]]:
    """``count`` flat samples of raw values inside the card's range (deterministic, varied)."""
    spec = card["input"]
    values = math.prod(spec["shape"][1:])
    low, high = spec["range"]
    return [
        [low + (high - low) * ((7 * row + 3 * column) % 17) / 16 for column in range(values)]
        for row in range(count)
    ]


def _nested(flat: list[float], shape: list[int]) -> Any:
    """``flat`` as nested lists of ``shape`` (row-major), as ``/predict`` takes a sample."""
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0]
    return [_nested(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _wait_healthy(podman: Podman, name: str, url: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        state = podman.inspect("container", name)["State"]
        if not state["Running"]:
            logs = podman("logs", name, check=False)
            raise AssertionError(f"the container exited ({state['ExitCode']}):\n{logs.stderr}")
        try:
            if http("GET", f"{url}/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"no answer on {url}/health in {STARTUP_S} s:\n{logs.stderr}")


def test_serve_target_serves_the_exported_model(
    podman: Podman, base_image: str, baked: Baked, e2e_report: Report
) -> None:
    tag = f"localhost/e2e-serve-{uuid.uuid4().hex[:8]}"
    build_s = podman.build(baked.path, tag, base_image, "--target", "serve")
    e2e_report.record(
        "container serve", build_s=round(build_s, 1), image_mb=round(podman.image_size_mb(tag))
    )
    image = podman.inspect("image", tag)
    assert image["Config"]["User"] == f"{UID}:{UID}", image["Config"]
    # The readiness probe, in the image itself: the docker format keeps it, and
    # podman shows it beside the (OCI) Config, which has no field for it.
    healthcheck = image.get("Healthcheck") or {}
    assert healthcheck.get("Test", [None])[0] == "CMD", image
    assert "/v2/health/ready" in " ".join(healthcheck["Test"])

    card = json.loads((baked.export / "model.json").read_text("utf-8"))
    name = f"e2e-serve-{uuid.uuid4().hex[:8]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        podman(
            "run",
            "--detach",
            "--name",
            name,
            # User-mode networking: no bridge, no firewall rules on the host.
            "--network",
            "slirp4netns",
            "--publish",
            f"127.0.0.1:{port}:8000",
            "--volume",
            f"{baked.export}:/model:ro",
            tag,
        )
        _wait_healthy(podman, name, url)

        status, health = http("GET", f"{url}/health")
        assert (status, health) == (200, {"status": "ok"})
        assert card["input"]["kind"] == "image", card["input"]  # the default bake: digits
        sample_shape = card["input"]["shape"][1:]
        rows = _rows(card, 3)
        samples = [_nested(row, sample_shape) for row in rows]
        status, predicted = http("POST", f"{url}/predict", {"inputs": samples})
        assert status == 200, predicted
        assert len(predicted["predictions"]) == 3
        assert predicted["labels"] == [card["classes"][i] for i in predicted["predictions"]]
        for probabilities in predicted["probabilities"]:
            assert len(probabilities) == len(card["classes"])
            assert math.isclose(sum(probabilities), 1, abs_tol=1e-4)
        status, refused = http("POST", f"{url}/predict", {"inputs": [rows[0]]})  # not nested
        assert status == 422, refused

        # Non-root, the model read-only, and no torch in the serving image.
        assert podman("exec", name, "id", "-u").stdout.strip() == str(UID)
        touch = podman("exec", name, "touch", "/model/written", check=False)
        assert touch.returncode != 0
        assert not (baked.export / "written").exists()
        probe = (
            "import importlib.util as u;"
            " print(u.find_spec('torch'), u.find_spec('onnxruntime') is not None)"
        )
        found = podman("exec", name, "python", "-c", probe).stdout.split()
        assert found == ["None", "True"], found

        # The Open Inference Protocol (v2) over REST, as KServe and Triton speak it.
        status, server = http("GET", f"{url}/v2")
        assert status == 200, server
        assert server["name"] == baked.path.name
        assert isinstance(server["extensions"], list)
        assert http("GET", f"{url}/v2/health/live") == (200, {"live": True})
        assert http("GET", f"{url}/v2/health/ready") == (200, {"ready": True})
        assert http("GET", f"{url}/v2/models/{MODEL_NAME}/ready") == (200, {"ready": True})
        status, metadata = http("GET", f"{url}/v2/models/{MODEL_NAME}")
        assert status == 200, metadata
        assert metadata["name"] == MODEL_NAME
        (tensor,) = metadata["inputs"]
        assert tensor["name"] == card["input"]["name"]
        assert tensor["datatype"] == "FP32"
        assert tensor["shape"][1:] == card["input"]["shape"][1:]
        assert tensor["shape"][0] == -1  # any batch size
        shape = [len(rows), *card["input"]["shape"][1:]]
        request = {
            "inputs": [
                {
                    "name": card["input"]["name"],
                    "shape": shape,
                    "datatype": "FP32",
                    "data": [value for row in rows for value in row],
                }
            ]
        }
        status, inferred = http("POST", f"{url}/v2/models/{MODEL_NAME}/infer", request)
        assert status == 200, inferred
        assert inferred["model_name"] == MODEL_NAME
        outputs = {output["name"]: output for output in inferred["outputs"]}
        probabilities = outputs["probabilities"]
        assert probabilities["datatype"] == "FP32"
        assert probabilities["shape"] == [len(rows), len(card["classes"])]
        flat = probabilities["data"]
        width = len(card["classes"])
        v2_rows = [flat[i * width : (i + 1) * width] for i in range(len(rows))]
        for got, want in zip(v2_rows, predicted["probabilities"], strict=True):
            assert got == pytest.approx(want, abs=1e-5)
        assert outputs["label"]["datatype"] == "BYTES"
        assert outputs["label"]["data"] == predicted["labels"]
        status, missing = http("GET", f"{url}/v2/models/no-such-model")
        assert status == 404
        assert isinstance(missing.get("error"), str), missing
        request["inputs"][0]["shape"] = [len(rows) + 1, *shape[1:]]  # data disagrees
        status, refused = http("POST", f"{url}/v2/models/{MODEL_NAME}/infer", request)
        assert status == 400, refused
        assert isinstance(refused.get("error"), str), refused

        # Prometheus metrics count what was answered above, by endpoint and status.
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        assert 'serve_requests_total{endpoint="/predict",status="200"} 1.0' in scraped
        assert 'endpoint="/v2/models/{model_name}/infer",status="400"' in scraped

        # The image's HEALTHCHECK, run by podman inside the container.
        check = podman("healthcheck", "run", name, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        health_state = podman.inspect("container", name)["State"]["Health"]
        assert health_state["Status"] == "healthy", health_state

        podman("stop", "--time", "10", name)
        assert podman.inspect("container", name)["State"]["Running"] is False
    finally:
        podman.remove_container(name)
        podman("rmi", "--force", tag, check=False)
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""


def test_default_target_trains(
    podman: Podman,
    base_image: str,
    baked: Baked,
    pytorch_index: LocalIndex,
    e2e_report: Report,
    e2e_dir: Path,
) -> None:
    tag = f"localhost/e2e-train-{uuid.uuid4().hex[:8]}"
    since = len(pytorch_index.requested)
    build_s = podman.build(baked.path, tag, base_image)
    e2e_report.record(
        "container default", build_s=round(build_s, 1), image_mb=round(podman.image_size_mb(tag))
    )
    downloads = pytorch_index.downloads(since)
    assert any(path.startswith("/whl/cpu/torch/") for path in downloads), downloads
    assert podman.inspect("image", tag)["Config"]["User"] == f"{UID}:{UID}"
    try:
        # The image's app user writes its run folders into a mounted runs/.
        runs = Path(tempfile.mkdtemp(prefix="container-fit-", dir=e2e_dir)) / "runs"
        runs.mkdir()
        shutil.chown(runs, UID, UID)
        name = f"e2e-train-{uuid.uuid4().hex[:8]}"
        version = "import torch; print(torch.__version__)"
        torch_version = podman(
            "run", "--rm", "--network", "none", "--entrypoint", "python", tag, "-c", version
        ).stdout.strip()
        assert torch_version.endswith("+cpu"), torch_version
        started = time.monotonic()
        try:
            podman(
                "run",
                "--name",
                name,
                "--network",
                "none",  # the digits ship with scikit-learn: training needs no network
                "--volume",
                f"{runs}:/app/runs",
                tag,
                "fit",
                "--config",
                "configs/smoke.yaml",
                "--trainer.accelerator=cpu",
            )
        finally:
            podman.remove_container(name)
        e2e_report.record("container default", train_s=round(time.monotonic() - started, 1))
        run_dir, rows = newest_run_metrics(runs.parent)
        assert run_dir.name.endswith("_fit_smoke")
        assert 0 <= validation_accuracy(rows) <= 1
        assert (run_dir / "config.yaml").is_file()
        assert list(run_dir.glob("**/*.ckpt")), sorted(p.name for p in run_dir.rglob("*"))
    finally:
        podman("rmi", "--force", tag, check=False)
