"""Shipping benchmark: export, a serving install, and the served model's speed.

``measure(project, env)`` takes a Poetry-installed default bake (its ``.venv``
holds the training install) and the environment for its ``poetry`` commands,
and returns:

- ``export``: wall time of ``<slug> export RUN`` (whole process, and the
  export itself as its summary reports it) and ``model.onnx``'s size; RUN is
  the newest fit under ``runs/``, trained first with ``configs/default.yaml``
  when there is none;
- ``install``: a second, serve-only install (``poetry install --only serve``
  in a copy of the project): its time and ``.venv`` size beside the training
  ``.venv``'s, and whether torch is absent;
- ``served``: the serve-only install's ``serve`` command on 127.0.0.1, loaded
  by 8 client processes at once (one keep-alive connection each) for a fixed
  time per endpoint: ``GET /health`` (the HTTP floor), ``POST /predict`` with
  1 row and with 256 rows; requests/s, rows/s, p50/p99 latency; and the
  target, ``/predict`` at batch 1 reaching at least half of ``/health``'s
  requests/s;
- ``in_process``: ONNX Runtime alone on the same batches (same session
  options as the server: one thread), rows/s and p50.

Run on its own (``.venv/bin/python bench/serving.py``), it bakes the default
project, installs it with Poetry as ``bench/run.py`` does (CPU torch from the
end-to-end tier's local index) and prints the figures as JSON.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CLIENTS = 8
"""Concurrent client processes."""
SECONDS = 4.0
"""Load time per endpoint and batch size (after a short warm-up)."""
BATCHES = (1, 256)
"""Rows per ``/predict`` request."""
TARGET_RATIO = 0.5
"""``/predict`` at batch 1 should reach this share of ``/health``'s requests/s."""
SERVE_FILES = ("pyproject.toml", "poetry.toml", "poetry.lock", "README.md", "LICENSE", "src")

IN_PROCESS = r"""
import json, sys, time
import numpy as np, onnxruntime
folder, batches = sys.argv[1], [int(b) for b in sys.argv[2:]]
card = json.load(open(folder + "/model.json"))
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = onnxruntime.InferenceSession(folder + "/model.onnx", options)
shape, name = card["input"]["shape"][1:], card["input"]["name"]
result = {}
for batch in batches:
    x = np.random.default_rng(0).uniform(0, card["input"]["range"][1], (batch, *shape))
    x = x.astype(np.float32)
    for _ in range(50):
        session.run(["probabilities"], {name: x})
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < 2:
        t = time.perf_counter()
        session.run(["probabilities"], {name: x})
        times.append(time.perf_counter() - t)
    times.sort()
    result[str(batch)] = {
        "runs_per_s": round(len(times) / sum(times), 1),
        "rows_per_s": round(batch * len(times) / sum(times)),
        "p50_ms": round(times[len(times) // 2] * 1000, 4),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 4),
    }
print(json.dumps(result))
"""


def _run(
    command: Sequence[str | Path], cwd: Path, env: Mapping[str, str], timeout: float = 1800
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        shown = " ".join(map(str, command))
        raise RuntimeError(f"{shown} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result, elapsed


def _poetry() -> str:
    """Poetry beside the running interpreter (the template's venv), else on PATH."""
    beside = Path(sys.executable).with_name("poetry")
    return str(beside) if beside.exists() else "poetry"


def _size_mib(path: Path) -> float:
    seen: set[int] = set()
    total = 0
    for item in path.rglob("*"):
        if item.is_file() and not item.is_symlink():
            info = item.lstat()
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return round(total / 2**20, 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _newest_fit(project: Path) -> Path | None:
    runs = sorted(project.glob("runs/*_fit*/checkpoints/best.ckpt"))
    return runs[-1].parents[1] if runs else None


def _client(
    port: int, method: str, path: str, body: bytes | None, until: float, status: int = 200
) -> list[float]:
    """One client: requests on one keep-alive connection until ``until``; latencies."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json"} if body is not None else {}
    latencies = []
    while time.time() < until:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != status:
            raise RuntimeError(f"{method} {path}: {answer.status}, expected {status}")
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies


def _load(
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    rows: int,
    status: int = 200,
    seconds: float = SECONDS,
) -> dict[str, Any]:
    """CLIENTS processes at once, ``seconds`` long (after a 0.5 s warm-up)."""
    with multiprocessing.get_context("spawn").Pool(CLIENTS) as pool:
        warm = time.time() + 0.5
        pool.starmap(_client, [(port, method, path, body, warm, status)] * CLIENTS)
        until = time.time() + seconds
        started = time.perf_counter()
        results = pool.starmap(_client, [(port, method, path, body, until, status)] * CLIENTS)
        wall = time.perf_counter() - started
    latencies = sorted(t for result in results for t in result)
    count = len(latencies)
    return {
        "requests": count,
        "requests_per_s": round(count / wall, 1),
        "rows_per_s": round(count * rows / wall),
        "p50_ms": round(latencies[count // 2] * 1000, 2),
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))] * 1000, 2),
    }


def measure(project: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Export, serve-only install and serving figures of a Poetry-installed bake."""
    result: dict[str, Any] = {"clients": CLIENTS, "seconds_per_load": SECONDS}
    slug = json.loads((project / ".cookiecutter.json").read_text("utf-8"))["cookiecutter"][
        "project_slug"
    ]
    training = project / ".venv"
    run_dir = _newest_fit(project)
    if run_dir is None:
        _run(
            [
                training / "bin" / slug,
                "fit",
                "--config",
                "configs/default.yaml",
                "--trainer.enable_progress_bar=false",
            ],
            project,
            env,
        )
        run_dir = _newest_fit(project)
        assert run_dir is not None
    exported = run_dir / "export"
    shutil.rmtree(exported, ignore_errors=True)
    done, wall = _run([training / "bin" / slug, "export", str(run_dir)], project, env)
    inside = re.search(r" in (\d+(?:\.\d+)?) s", done.stdout)
    result["export"] = {
        "process_s": round(wall, 2),
        "export_s": float(inside.group(1)) if inside else None,
        "onnx_kib": round((exported / "model.onnx").stat().st_size / 1024, 1),
    }

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as scratch:
        serving = Path(scratch) / project.name
        serving.mkdir()
        for name in SERVE_FILES:
            source = project / name
            if source.is_dir():
                shutil.copytree(source, serving / name)
            elif source.exists():
                shutil.copy2(source, serving / name)
        _, install_s = _run([_poetry(), "install", "--only", "serve"], serving, env)
        venv = serving / ".venv"
        has_torch = any(venv.glob("lib/python*/site-packages/torch"))
        result["install"] = {
            "serve_install_s": round(install_s, 1),
            "serve_venv_mib": _size_mib(venv),
            "training_venv_mib": _size_mib(training),
            "serve_venv_has_torch": has_torch,
        }
        ort, _ = _run(
            [venv / "bin" / "python", "-c", IN_PROCESS, str(exported), *map(str, BATCHES)],
            serving,
            env,
        )
        result["in_process"] = json.loads(ort.stdout)
        result["served"] = _serve_and_load([venv / "bin" / slug], exported, serving, env)
    health = result["served"]["health"]["requests_per_s"]
    predict = result["served"]["predict_1"]["requests_per_s"]
    result["target"] = {
        "predict_1_over_health": round(predict / health, 3),
        "wanted": TARGET_RATIO,
        "met": predict / health >= TARGET_RATIO,
    }
    return result


def rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The benchmark table's lines for this part."""
    export, install = result["export"], result["install"]
    served, local = result["served"], result["in_process"]
    lines = [
        (
            "serving: `export` (ONNX, dynamo exporter), `model.onnx`",
            f"{export['export_s']:.2f} s, {export['onnx_kib']:.1f} KiB",
        ),
        (
            "serving: `poetry install --only serve` venv / training venv",
            f"{install['serve_venv_mib']:.1f} MiB (torch:"
            f" {'yes' if install['serve_venv_has_torch'] else 'no'})"
            f" / {install['training_venv_mib']:.1f} MiB",
        ),
    ]
    for key, label in (
        ("health", "`GET /health`"),
        ("predict_1", "`POST /predict`, 1 row"),
        ("predict_256", "`POST /predict`, 256 rows"),
        ("infer_1", "`POST /v2/models/NAME/infer`, batch 1"),
        ("infer_256", "`POST /v2/models/NAME/infer`, batch 256"),
        ("bad_256", "`POST /predict`, 256 rows of strings (422)"),
        ("predict_1_no_metrics", "`POST /predict`, 1 row, `--no-metrics`"),
    ):
        if key not in served:
            continue
        data = served[key]
        lines.append(
            (
                f"serving: {label}, {result['clients']} clients",
                f"{data['requests_per_s']:,.0f} requests/s ({data['rows_per_s']:,.0f} rows/s),"
                f" p50 {data['p50_ms']} ms, p99 {data['p99_ms']} ms",
            )
        )
    for size in ("1", "256"):
        data = local[size]
        lines.append(
            (
                f"serving: ONNX Runtime in-process, batch {size}",
                f"p50 {data['p50_ms']} ms, p99 {data['p99_ms']} ms",
            )
        )
    for label, over, under in (
        ("v2 infer / `/predict` requests/s, batch 1", "infer_1", "predict_1"),
        ("v2 infer / `/predict` requests/s, batch 256", "infer_256", "predict_256"),
        ("metrics on / off, `/predict` 1 row", "predict_1", "predict_1_no_metrics"),
        ("bad body / good body p50, 256 rows", "bad_256", "predict_256"),
    ):
        if over in served and under in served:
            figure = "p50_ms" if label.startswith("bad") else "requests_per_s"
            ratio = served[over][figure] / served[under][figure]
            lines.append((f"serving: {label}", f"{ratio:.2f}"))
    target = result.get("target") or {}
    if target:
        lines.append(
            (
                "serving: `/predict` (1 row) / `/health` requests/s",
                f"{target['predict_1_over_health']:.2f} (target >= {target['wanted']})",
            )
        )
    return lines


def _serve_and_load(
    command: Sequence[str | Path],
    exported: Path,
    cwd: Path,
    env: Mapping[str, str],
    seconds: float = SECONDS,
) -> dict[str, Any]:
    """The serving figures of ``command serve exported`` (with metrics, then without)."""
    served: dict[str, Any] = {}
    for metrics in ("--metrics", "--no-metrics"):
        with _serving(command, exported, cwd, env, metrics) as (port, card):
            if metrics == "--no-metrics":
                body = _predict_body(card, 1)
                served["predict_1_no_metrics"] = _load(
                    port, "POST", "/predict", body, 1, seconds=seconds
                )
                continue
            served["health"] = _load(port, "GET", "/health", None, 0, seconds=seconds)
            infer = f"/v2/models/{card['name']}/infer"
            for batch in BATCHES:
                body = _predict_body(card, batch)
                served[f"predict_{batch}"] = _load(
                    port, "POST", "/predict", body, batch, seconds=seconds
                )
                served[f"infer_{batch}"] = _load(
                    port, "POST", infer, _infer_body(card, batch), batch, seconds=seconds
                )
            # The same rows, every value a string: each is a 422.
            bad = re.sub(rb"[0-9.]+", b'"x"', _predict_body(card, BATCHES[-1]))
            served["bad_256"] = _load(
                port, "POST", "/predict", bad, BATCHES[-1], 422, seconds=seconds
            )
    return served


def _samples(card: Mapping[str, Any], batch: int) -> list[Any]:
    """``batch`` raw image samples of the card's shape, values within its range."""
    shape = [int(n) for n in card["input"]["shape"][1:]]
    high = int(card["input"]["range"][1])
    count = batch * int(np.prod(shape))
    values = (np.arange(count) * 7 % (high + 1)).astype(float)
    samples: list[Any] = values.reshape(batch, *shape).tolist()
    return samples


def _predict_body(card: Mapping[str, Any], batch: int) -> bytes:
    return json.dumps({"inputs": _samples(card, batch)}).encode()


def _infer_body(card: Mapping[str, Any], batch: int) -> bytes:
    samples = np.asarray(_samples(card, batch))
    tensor = {
        "name": card["input"]["name"],
        "shape": list(samples.shape),
        "datatype": "FP32",
        "data": samples.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


@contextlib.contextmanager
def _serving(
    command: Sequence[str | Path],
    exported: Path,
    cwd: Path,
    env: Mapping[str, str],
    *options: str,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``command serve exported`` on a free port until ready: the port and the card."""
    port = _free_port()
    server = subprocess.Popen(
        [*map(str, command), "serve", str(exported), "--port", str(port), *options],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError("serve exited before answering")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/metadata")
                card = json.loads(connection.getresponse().read())
                connection.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port, card
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def quick(project: Path, exported: Path, seconds: float = 1.5) -> dict[str, Any]:
    """The serving figures alone, with this interpreter and ``project/src``."""
    package = next(path.parent.name for path in (project / "src").glob("*/serve.py"))
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return _serve_and_load([sys.executable, "-m", package], exported, project, env, seconds)


def main() -> int:
    """Bake and install the default project as bench/run.py does, then measure it.

    ``serving.py --quick PROJECT EXPORT`` measures only the served figures, with
    this interpreter (the template's venv) and ``PROJECT/src``, 1.5 s a load.
    """
    if sys.argv[1:2] == ["--quick"]:
        project, exported = map(Path, sys.argv[2:4])
        print(json.dumps(quick(project, exported), indent=2))
        return 0
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # run as a script: make the bench package importable
        sys.path.insert(0, root)
    from bench import project as bench_run  # the local PyTorch index, bakes, Poetry

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        with bench_run.local_setup(work, work / "poetry-cache") as local:
            options = {"package_index_url": local.mirror, "torch_index_url": local.index.base}
            project = bench_run.bake_project(work, "cpu", options)
            bench_run.poetry(project, local.env, "lock")
            bench_run.poetry(project, local.env, "install")
            figures = measure(project, local.env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
