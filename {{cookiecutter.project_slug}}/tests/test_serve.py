"""serve: the HTTP service over an exported model, bad input, no torch."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.cli import main
{%- if cookiecutter.dataset == "digits" %}
from {{ cookiecutter.package_name }}.data import DigitsDataModule as DataModule
{%- else %}
from {{ cookiecutter.package_name }}.mnist import MNISTDataModule as DataModule
{%- endif %}
from {{ cookiecutter.package_name }}.serve import MAX_ROWS, ServedModel, create_app

PACKAGE = "{{ cookiecutter.package_name }}"
FEATURES = DataModule.num_features
LOW, HIGH = DataModule.value_range
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def client(exported: Path) -> Iterator[TestClient]:
    with TestClient(create_app(exported)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def rows(datamodule: DataModule) -> list[list[float]]:
    """The first 64 raw test samples, as JSON rows."""
    assert datamodule.test_set is not None
    samples = datamodule.test_set.tensors[0][:64].reshape(64, -1)
    return [[float(v) for v in sample] for sample in samples.tolist()]


def post(client: TestClient, body: bytes | str) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )


def test_health_metadata_and_docs(client: TestClient, exported: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    metadata = client.get("/metadata").json()
    limits = metadata.pop("limits")
    assert metadata == json.loads((exported / "model.json").read_text("utf-8"))
    assert limits["max_rows"] == MAX_ROWS
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/predict" in schema["paths"]


def test_predict_answers_as_onnx_runtime_in_process(
    client: TestClient, exported: Path, rows: list[list[float]]
) -> None:
    answer = client.post("/predict", json={"inputs": rows})
    assert answer.status_code == 200
    body = answer.json()
    classes, probabilities = ServedModel.load(exported).predict(rows)
    assert body["predictions"] == classes
    np.testing.assert_allclose(body["probabilities"], probabilities, atol=1e-7)
    assert len(body["probabilities"][0]) == len(DataModule.class_names)


def row_of(value: str) -> str:
    return "[" + ",".join([value] * FEATURES) + "]"


GOOD_ROW = row_of("1")
BAD_BODIES = {
    "malformed JSON": ('{"inputs": [' + GOOD_ROW, "not valid JSON"),
    "not an object": ("[" + GOOD_ROW + "]", "must be a JSON object"),
    "missing field": ('{"rows": [' + GOOD_ROW + "]}", "missing field 'inputs'"),
    "extra field": ('{"inputs": [' + GOOD_ROW + '], "x": 1}', "unknown field 'x'"),
    "short row": (
        '{"inputs": [' + GOOD_ROW + ", [1, 2, 3]]}",
        f"row 1 has 3 values; expected {FEATURES} numbers",
    ),
    "long row": (
        '{"inputs": [' + row_of("1")[:-1] + ",1]]}",
        f"row 0 has {FEATURES + 1} values",
    ),
    "string": ('{"inputs": [' + row_of('"1"') + "]}", "row 0, value 0: "),
    "boolean": ('{"inputs": [' + row_of("true") + "]}", "row 0, value 0: "),
    "null": ('{"inputs": [' + row_of("null") + "]}", "row 0, value 0: "),
    "NaN": ('{"inputs": [' + row_of("NaN") + "]}", "finite number"),
    "infinity": ('{"inputs": [' + row_of("-Infinity") + "]}", "finite number"),
    "overflow": ('{"inputs": [' + row_of("1e999") + "]}", "finite number"),
    "out of range": ('{"inputs": [' + row_of(f"{HIGH + 1:g}") + "]}", "less than or"),
    "nested": ('{"inputs": [[' + GOOD_ROW + "]]}", "row 0, value 0: "),
    "too deep": ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deep"),
    "empty batch": ('{"inputs": []}', "inputs is empty"),
    "rows not a list": ('{"inputs": 3}', "inputs must be a list of rows"),
    "empty body": ("", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_input_is_422_naming_the_problem(client: TestClient, case: str) -> None:
    body, message = BAD_BODIES[case]
    answer = post(client, body)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert problems
    assert any(message in problem["msg"] for problem in problems), problems


def test_too_many_rows_is_413(client: TestClient) -> None:
    too_many = ",".join([row_of("0")] * (MAX_ROWS + 1))
    answer = post(client, '{"inputs": [' + too_many + "]}")
    assert answer.status_code == 413
    assert f"at most {MAX_ROWS} rows" in answer.json()["detail"][0]["msg"]


def test_a_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    limit = client.get("/metadata").json()["limits"]["max_body_bytes"]
    declared = post(client, b" " * (limit + 1))
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(1000):
            yield b"[" * 65536

    streamed = client.post("/predict", content=chunks())
    assert streamed.status_code == 413
    assert "body is over" in streamed.json()["detail"]


def test_the_server_still_answers_after_bad_input(
    client: TestClient, rows: list[list[float]]
) -> None:
    for body, _ in BAD_BODIES.values():
        post(client, body)
    assert client.post("/predict", json={"inputs": rows[:1]}).status_code == 200


@pytest.mark.parametrize("missing", ["model.onnx", "model.json", "folder"])
def test_serve_on_a_folder_without_a_model_is_one_line(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str
) -> None:
    folder = tmp_path / "model"
    if missing != "folder":
        folder.mkdir()
        kept = "model.json" if missing == "model.onnx" else "model.onnx"
        (folder / kept).write_bytes((exported / kept).read_bytes())
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(folder), "--port", "1"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(folder) in line
    assert missing in line


TORCH_FREE = """
import importlib, importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lightning"):
            raise ImportError(f"{name} is not allowed in the serving process")
        return None

sys.meta_path.insert(0, NoTorch())
from fastapi.testclient import TestClient

folder, package, features = sys.argv[1], sys.argv[2], int(sys.argv[3])
serve = importlib.import_module(package + ".serve")
client = TestClient(serve.create_app(folder))
answer = client.post("/predict", json=dict(inputs=[[0.0] * features]))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "lightning"))
print(json.dumps(dict(status=answer.status_code, loaded=loaded)))
"""


def test_serving_imports_and_answers_without_torch(exported: Path) -> None:
    """A fresh interpreter that cannot import torch serves; nothing torch-like loads."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(exported), PACKAGE, str(FEATURES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"status": 200, "loaded": []}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"content-type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        connection.close()


@pytest.mark.slow
def test_the_serve_command_answers_concurrent_clients(
    exported: Path, rows: list[list[float]]
) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    server = subprocess.Popen(
        [sys.executable, "-m", PACKAGE, "serve", str(exported), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group, stopped as a whole
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0].decode()[-3000:]
            try:
                if request(port, "GET", "/health") == (200, {"status": "ok"}):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /health"
            time.sleep(0.2)
        expected, _ = ServedModel.load(exported).predict(rows)

        def client(number: int) -> list[tuple[int, list[int], list[int]]]:
            answers = []
            for step in range(50):
                start = (number * 50 + step) % len(rows)
                batch = rows[start : start + 1 + step % 4]
                status, body = request(port, "POST", "/predict", {"inputs": batch})
                got = body["predictions"] if status == 200 else []
                answers.append((status, got, expected[start : start + len(batch)]))
            return answers

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [a for answers in pool.map(client, range(8)) for a in answers]
        assert len(results) == 400
        assert all(status == 200 for status, _, _ in results)
        assert all(got == want for _, got, want in results)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)  # the whole group is gone
