"""serve: /predict on tables and images, v2, metrics, bad input, no torch."""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
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
import onnxruntime
import pytest
import starlette.testclient
from fastapi.testclient import TestClient

from conftest import SMOKE, run_main
from {{ cookiecutter.package_name }}.cli import main
{%- if cookiecutter.dataset == "digits" %}
from {{ cookiecutter.package_name }}.data import DigitsDataModule as DataModule
{%- else %}
from {{ cookiecutter.package_name }}.mnist import MNISTDataModule as DataModule
{%- endif %}
from {{ cookiecutter.package_name }}.serve import MAX_ROWS, create_app

PACKAGE = "{{ cookiecutter.package_name }}"
SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}


def card_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "model.json").read_text("utf-8"))
    return loaded


def probabilities_of(folder: Path, batch: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(
        str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    name = card_of(folder)["input"]["name"]
    return np.asarray(session.run(["probabilities"], {name: batch})[0])


@pytest.fixture(scope="module")
def client(exported: Path) -> Iterator[TestClient]:
    with TestClient(create_app(exported)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def samples(datamodule: DataModule) -> list[Any]:
    """The first 16 raw test samples, as nested JSON arrays of the card's shape."""
    test = datamodule.datasets["test"]
    return [test[i][0].tolist() for i in range(16)]


# A table the tests make: a numeric column, a categorical one, and a numeric
# column whose name has a space and a slash; the class follows the features.
COLUMNS = ["age", "colour", "size cm/2"]
COLOURS = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def table_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fit on a generated CSV (TableDataModule), then export: the export folder."""
    root = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    path = root / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow([*COLUMNS, "kind"])
        for _ in range(300):
            age, colour, size = rng.uniform(20, 60), rng.integers(3), rng.normal(5, 2)
            kind = "old" if age > 45 else ("blue-ish" if colour == 0 else "other")
            writer.writerow([f"{age:.2f}", COLOURS[colour], f"{size:.3f}", kind])
    run = run_main(
        root,
        "fit",
        "--config",
        SMOKE,
        "--data",
        "TableDataModule",
        f"--data.path={path}",
        "--data.target=kind",
    )
    assert run is not None
    with contextlib.redirect_stdout(io.StringIO()):
        main(["export", str(run)])
    return run / "export"


@pytest.fixture(scope="module")
def table_client(table_export: Path) -> Iterator[TestClient]:
    with TestClient(create_app(table_export)) as test_client:
        yield test_client


def post(client: TestClient, body: str | bytes, path: str = "/predict") -> Any:
    headers = {"content-type": "application/json"}
    return client.post(path, content=body, headers=headers)


def test_health_metadata_and_offline_docs(client: TestClient, exported: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    metadata = client.get("/metadata").json()
    limits = metadata.pop("limits")
    assert metadata == card_of(exported)
    assert limits["max_rows"] == MAX_ROWS
    page = client.get("/docs").text
    assert "//" not in page.split("<script")[1].split(">")[0]  # no CDN: a local file
    script = page.split('<script src="')[1].split('"')[0]
    asset = client.get(script)
    assert asset.status_code == 200
    assert "SwaggerUIBundle" in asset.text[:2000]
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_the_test_client_runs_on_httpx2() -> None:
    """Starlette deprecates its httpx path; the project brings httpx2."""
    assert vars(starlette.testclient)["httpx"].__name__ == "httpx2"


def test_predict_images_answers_as_onnx_runtime(
    client: TestClient, exported: Path, samples: list[Any]
) -> None:
    answer = client.post("/predict", json={"inputs": samples})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = probabilities_of(exported, np.asarray(samples, dtype=np.float32))
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    assert body["predictions"] == expected.argmax(axis=1).tolist()
    classes = card_of(exported)["classes"]
    assert body["labels"] == [classes[i] for i in body["predictions"]]


def test_predict_table_rows_by_column_name(
    table_client: TestClient, table_export: Path
) -> None:
    card = card_of(table_export)
    assert [c["name"] for c in card["input"]["columns"]] == COLUMNS
    rows = [
        {"age": 50.5, "colour": "red", "size cm/2": 4.0},
        {"colour": "blue", "age": 25, "size cm/2": -1.5},  # any order, integers too
    ]
    answer = table_client.post("/predict", json={"inputs": rows})
    assert answer.status_code == 200, answer.text
    categories = card["input"]["columns"][1]["categories"]
    graph_rows = [
        [50.5, categories.index("red"), 4.0],
        [25, categories.index("blue"), -1.5],
    ]
    expected = probabilities_of(table_export, np.asarray(graph_rows, dtype=np.float32))
    body = answer.json()
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    assert body["labels"] == [card["classes"][i] for i in expected.argmax(axis=1)]


GOOD_ROW = {"age": 30.0, "colour": "red", "size cm/2": 1.0}
BAD_ROWS = {
    "missing column": (
        {"age": 30.0, "colour": "red"},
        "row 1, column 'size cm/2': missing",
    ),
    "unknown column": (
        {**GOOD_ROW, "height": 2},
        "row 1, column 'height': no such column",
    ),
    "unknown category": (
        {**GOOD_ROW, "colour": "mauve"},
        "row 1, column 'colour': unknown category 'mauve'",
    ),
    "string in a numeric column": ({**GOOD_ROW, "age": "30"}, "row 1, column 'age': "),
    "null": ({**GOOD_ROW, "age": None}, "row 1, column 'age': "),
    "boolean": ({**GOOD_ROW, "size cm/2": True}, "row 1, column 'size cm/2': "),
    "category as a number": ({**GOOD_ROW, "colour": 1}, "row 1, column 'colour': "),
    "not an object": ([30.0, "red", 1.0], "row 1: "),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_table_row_is_422_naming_row_and_column(
    table_client: TestClient, case: str
) -> None:
    row, message = BAD_ROWS[case]
    answer = table_client.post("/predict", json={"inputs": [GOOD_ROW, row]})
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert any(message in problem["msg"] for problem in problems), problems


def nested(value: str, shape: list[int]) -> str:
    """A JSON array of ``shape`` whose every value is ``value``."""
    text = value
    for size in reversed(shape):
        text = "[" + ",".join([text] * size) + "]"
    return text


@pytest.fixture(scope="module")
def shape(exported: Path) -> list[int]:
    return [int(n) for n in card_of(exported)["input"]["shape"][1:]]


def bad_image_bodies(shape: list[int], high: float) -> dict[str, tuple[str, str]]:
    good = nested("1", shape)
    short = nested("1", [*shape[:-1], shape[-1] - 1])
    return {
        "malformed JSON": ('{"inputs": [' + good, "not valid JSON"),
        "not an object": ("[" + good + "]", "body"),
        "missing field": ('{"rows": [' + good + "]}", "'inputs'"),
        "extra field": ('{"inputs": [' + good + '], "x": 1}', "unknown field 'x'"),
        "short array": ('{"inputs": [' + good + "," + short + "]}", "row 1, value"),
        "string": ('{"inputs": [' + nested('"1"', shape) + "]}", "row 0, value"),
        "boolean": ('{"inputs": [' + nested("true", shape) + "]}", "row 0, value"),
        "NaN": ('{"inputs": [' + nested("NaN", shape) + "]}", "finite number"),
        "infinity": ('{"inputs": [' + nested("-Infinity", shape) + "]}", "finite"),
        "overflow": ('{"inputs": [' + nested("1e999", shape) + "]}", "finite number"),
        "out of range": (
            '{"inputs": [' + nested(f"{high + 1:g}", shape) + "]}",
            "less",
        ),
        "flat row": (
            '{"inputs": [[' + ",".join(["1"] * np.prod(shape)) + "]]}",
            "row 0",
        ),
        "empty batch": ('{"inputs": []}', "inputs is empty"),
        "rows not a list": ('{"inputs": 3}', "inputs"),
    }


def test_bad_image_input_is_422_naming_the_problem(
    client: TestClient, exported: Path, shape: list[int]
) -> None:
    high = card_of(exported)["input"]["range"][1]
    for case, (body, message) in bad_image_bodies(shape, high).items():
        answer = post(client, body)
        assert answer.status_code == 422, (case, answer.text)
        problems = answer.json()["detail"]
        assert any(message in problem["msg"] for problem in problems), (case, problems)
    too_deep = post(client, '{"inputs": ' + "[" * 5000 + "]" * 5000 + "}")
    assert 400 <= too_deep.status_code < 500
    still = client.post("/predict", json={"inputs": [json.loads(nested("0", shape))]})
    assert still.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
    ],
)
def test_predict_takes_only_application_json(
    client: TestClient, shape: list[int], headers: dict[str, str]
) -> None:
    body = '{"inputs": [' + nested("1", shape) + "]}"
    answer = client.post("/predict", content=body, headers=headers)
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"]


def test_too_many_rows_is_413(client: TestClient, shape: list[int]) -> None:
    rows = ",".join([nested("0", shape)] * (MAX_ROWS + 1))
    answer = post(client, '{"inputs": [' + rows + "]}")
    assert answer.status_code == 413
    assert f"at most {MAX_ROWS} rows" in answer.json()["detail"][0]["msg"]


def test_a_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    limit = client.get("/metadata").json()["limits"]["max_body_bytes"]
    assert post(client, b" " * (limit + 1)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(1000):
            yield b"[" * 65536

    headers = {"content-type": "application/json"}
    assert client.post("/predict", content=chunks(), headers=headers).status_code == 413


def test_validation_stops_at_the_first_bad_row(
    client: TestClient, shape: list[int]
) -> None:
    """A body of bad rows builds the first row's problem, not every row's."""
    rows = ",".join([nested('"x"', shape)] * 512)
    problems = post(client, '{"inputs": [' + rows + "]}").json()["detail"]
    assert len(problems) == 1
    assert problems[0]["msg"].startswith("row 0, value ")


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


def test_serve_on_a_card_of_another_format_is_one_line(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.onnx").write_bytes((exported / "model.onnx").read_bytes())
    (folder / "model.json").write_text(json.dumps({**card_of(exported), "format": 1}))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(folder)])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "model.json" in line
    assert "format 2" in line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_on_a_port_in_use_is_one_line_before_any_announcement(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", str(exported), "--port", str(port)])
    assert exit_info.value.code == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    (line,) = printed.err.strip().splitlines()
    assert f"--port {port}" in line
    assert "in use" in line


TORCH_FREE = """
import importlib, importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lightning"):
            raise ImportError(f"{name} is not allowed in the serving process")
        return None

sys.meta_path.insert(0, NoTorch())
from fastapi.testclient import TestClient

folder, package = sys.argv[1], sys.argv[2]
serve = importlib.import_module(package + ".serve")
rows = [{"age": 40.0, "colour": "red", "size cm/2": 2.0}]
with TestClient(serve.create_app(folder)) as client:
    answer = client.post("/predict", json=dict(inputs=rows))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "lightning"))
print(json.dumps(dict(status=answer.status_code, loaded=loaded)))
"""


def test_serving_a_table_imports_and_answers_without_torch(table_export: Path) -> None:
    """A fresh interpreter that cannot import torch serves; nothing torch-like loads."""
    result = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(table_export), PACKAGE],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"status": 200, "loaded": []}


# --- the Open Inference Protocol (v2) ---


def v2_body(name: str, shape: list[int], data: Any, datatype: str = "FP32") -> str:
    tensor = {"name": name, "shape": shape, "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor]})


def test_v2_metadata_readiness_and_infer(
    client: TestClient, exported: Path, samples: list[Any]
) -> None:
    card = card_of(exported)
    name, input_name = card["name"], card["input"]["name"]
    assert client.get("/v2").json()["name"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get(f"/v2/models/{name}/ready").json() == {"ready": True}
    metadata = client.get(f"/v2/models/{name}").json()
    assert metadata["inputs"] == [
        {
            "name": input_name,
            "datatype": "FP32",
            "shape": [-1, *card["input"]["shape"][1:]],
        }
    ]
    batch = np.asarray(samples, dtype=np.float32)
    flat = v2_body(input_name, list(batch.shape), batch.ravel().tolist())
    answer = post(client, flat, f"/v2/models/{name}/infer")
    assert answer.status_code == 200, answer.text
    outputs = {output["name"]: output for output in answer.json()["outputs"]}
    expected = probabilities_of(exported, batch)
    got = np.asarray(outputs["probabilities"]["data"]).reshape(
        outputs["probabilities"]["shape"]
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)
    labels = [card["classes"][i] for i in expected.argmax(axis=1)]
    assert outputs["label"] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [len(batch)],
        "data": labels,
    }
    nested_body = v2_body(input_name, list(batch.shape), batch.tolist())
    again = post(client, nested_body, f"/v2/models/{name}/infer").json()
    assert again["outputs"] == answer.json()["outputs"]


def test_v2_is_not_ready_before_the_model_is_loaded(exported: Path) -> None:
    app = TestClient(create_app(exported))  # no `with`: the app has not started
    assert app.get("/v2/health/live").status_code == 200
    assert app.get("/v2/health/ready").status_code == 503
    assert app.get("/health").status_code == 503


def test_hostile_v2_requests_are_4xx_with_an_error(
    client: TestClient, exported: Path, shape: list[int]
) -> None:
    card = card_of(exported)
    name, input_name = card["name"], card["input"]["name"]
    values = int(np.prod(shape))
    infer = f"/v2/models/{name}/infer"
    cases = {
        "unknown model": (
            "/v2/models/nope/infer",
            v2_body(input_name, [1, *shape], [0.0] * values),
            404,
        ),
        "wrong datatype": (
            infer,
            v2_body(input_name, [1, *shape], [0] * values, "INT64"),
            400,
        ),
        "bytes": (
            infer,
            v2_body(input_name, [1, *shape], ["a"] * values, "BYTES"),
            400,
        ),
        "unknown input": (infer, v2_body("nope", [1, *shape], [0.0] * values), 400),
        "shape and data disagree": (
            infer,
            v2_body(input_name, [2, *shape], [0.0] * values),
            400,
        ),
        "wrong sample shape": (
            infer,
            v2_body(input_name, [values], [0.0] * values),
            400,
        ),
        "huge shape": (
            infer,
            v2_body(input_name, [10**12, *shape], [0.0] * values),
            400,
        ),
        "ragged": (infer, v2_body(input_name, [1, *shape], [[0.0], [0.0, 1.0]]), 400),
        "string": (infer, v2_body(input_name, [1, *shape], ["1"] * values), 400),
        "NaN": (
            infer,
            v2_body(input_name, [1, *shape], [0.0] * values).replace("0.0", "NaN", 1),
            400,
        ),
        "no inputs": (infer, '{"inputs": []}', 400),
        "not JSON": (infer, "{", 400),
        "unknown output": (
            infer,
            json.dumps(
                {
                    **json.loads(v2_body(input_name, [1, *shape], [0.0] * values)),
                    "outputs": [{"name": "x"}],
                }
            ),
            400,
        ),
    }
    for case, (path, body, status) in cases.items():
        answer = post(client, body, path)
        assert answer.status_code == status, (case, answer.text)
        assert isinstance(answer.json()["error"], str), (case, answer.text)
    assert client.get("/v2/models/nope").status_code == 404
    plain = client.post(infer, content="{}", headers={"content-type": "text/plain"})
    assert plain.status_code == 415


def test_metrics_count_requests_by_endpoint_and_status(
    exported: Path, shape: list[int]
) -> None:
    with TestClient(create_app(exported)) as client:

        def count(text: str, status: str) -> float:
            line = 'serve_requests_total{endpoint="/predict",status="' + status + '"}'
            found = [
                row.split()[-1] for row in text.splitlines() if row.startswith(line)
            ]
            return float(found[0]) if found else 0.0

        before = client.get("/metrics").text
        for _ in range(3):
            client.post("/predict", json={"inputs": [json.loads(nested("1", shape))]})
        client.post("/predict", json={"inputs": []})
        after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    assert count(after.text, "200") - count(before, "200") == 3
    assert count(after.text, "422") - count(before, "422") == 1
    assert "serve_inference_seconds_bucket" in after.text
    assert "serve_rows_per_request_sum" in after.text
    with TestClient(create_app(exported, metrics=False)) as quiet:
        assert quiet.get("/metrics").status_code == 404


# --- the serve command, on real sockets ---


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"content-type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        is_json = answer.getheader("content-type", "").startswith("application/json")
        return answer.status, json.loads(data) if is_json else data.decode()
    finally:
        connection.close()


@contextlib.contextmanager
def serving(folder: Path, *options: str) -> Iterator[int]:
    """``serve folder`` in its own process group on a free port; stopped after."""
    port = free_port()
    command = [sys.executable, "-m", PACKAGE, "serve", str(folder), "--port", str(port)]
    server = subprocess.Popen(
        [*command, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0].decode()[-3000:]
            with contextlib.suppress(OSError):
                if request(port, "GET", "/v2/health/ready")[0] == 200:
                    break
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
        # Workers and multiprocessing's helper leave just after the supervisor.
        deadline = time.monotonic() + 30
        while group_alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    left = group_alive(server.pid)
    if left:
        os.killpg(server.pid, signal.SIGKILL)
    assert not left, "serve left a process behind"


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.slow
def test_the_serve_command_answers_concurrent_clients_and_tritonclient(
    exported: Path, samples: list[Any]
) -> None:
    import tritonclient.http as triton  # type: ignore[import-untyped]

    card = card_of(exported)
    expected = probabilities_of(exported, np.asarray(samples, dtype=np.float32))
    with serving(exported) as port:

        def client(number: int) -> list[bool]:
            answers = []
            for step in range(25):
                start = (number * 25 + step) % len(samples)
                batch = samples[start : start + 1 + step % 4]
                status, body = request(port, "POST", "/predict", {"inputs": batch})
                want = expected[start : start + len(batch)].argmax(axis=1).tolist()
                answers.append(status == 200 and body["predictions"] == want)
            return answers

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [a for answers in pool.map(client, range(8)) for a in answers]
        assert len(results) == 200
        assert all(results)

        server = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert server.is_server_live()
        assert server.is_server_ready()
        assert server.is_model_ready(card["name"])
        metadata = server.get_model_metadata(card["name"])
        assert metadata["inputs"][0]["name"] == card["input"]["name"]
        batch = np.asarray(samples, dtype=np.float32)
        tensor = triton.InferInput(card["input"]["name"], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=False)
        outputs = [
            triton.InferRequestedOutput("probabilities", binary_data=False),
            triton.InferRequestedOutput("label", binary_data=False),
            triton.InferRequestedOutput("logits", binary_data=False, class_count=2),
        ]
        result = server.infer(card["name"], [tensor], outputs=outputs)
        probabilities = result.as_numpy("probabilities")
        label = result.as_numpy("label")
        top = result.as_numpy("logits")
        assert probabilities is not None
        assert label is not None
        assert top is not None
        np.testing.assert_allclose(probabilities, expected, atol=1e-6)
        labels = [card["classes"][i] for i in expected.argmax(axis=1)]
        assert [text(v) for v in label.tolist()] == labels
        assert top.shape == (len(batch), 2)
        assert [text(row[0]).split(":", 2)[2] for row in top] == labels
        with pytest.raises(triton.InferenceServerException, match="unknown model"):
            server.get_model_metadata("nope")
        server.close()


@pytest.mark.slow
def test_metrics_add_up_across_two_workers(exported: Path, samples: list[Any]) -> None:
    with serving(exported, "--workers", "2") as port:
        for _ in range(40):
            assert request(port, "POST", "/predict", {"inputs": samples[:2]})[0] == 200
        scrapes = [request(port, "GET", "/metrics")[1] for _ in range(6)]
    line = 'serve_requests_total{endpoint="/predict",status="200"}'
    totals = {
        float(row.split()[-1])
        for text in scrapes
        for row in text.splitlines()
        if row.startswith(line)
    }
    assert totals == {40.0}  # every scrape, from either worker, counts both


def test_the_wheel_has_a_serve_extra_equal_to_the_serve_group() -> None:
    """``pip install "PKG[serve]"`` gets what ``poetry install --only serve`` does."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    extra = project["project"]["optional-dependencies"]["serve"]
    group = project["dependency-groups"]["serve"]
    assert sorted(extra) == sorted(group)
