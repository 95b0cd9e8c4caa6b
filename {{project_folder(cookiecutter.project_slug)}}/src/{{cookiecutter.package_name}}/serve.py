"""``serve MODEL_DIR``: an exported model behind HTTP, on ONNX Runtime, without torch.

MODEL_DIR is what ``export`` wrote: ``model.onnx`` and its card ``model.json``
(format 2). The service (FastAPI on uvicorn) answers:

- ``POST /predict``: ``{"inputs": [...]}``, raw samples as the card describes
  them: for a table, one JSON object per row keyed by column name
  (categories as strings; the card's category lookup turns them into the
  graph's indices); for images, nested arrays of the card's shape
  (channels, height, width). The answer: ``predictions`` (class indices),
  ``labels`` (class names) and ``probabilities``;
- the Open Inference Protocol ("v2", as KServe and Triton speak it) over
  REST: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready`` and
  ``POST /v2/models/{name}/infer`` with JSON tensors (the graph's input:
  category indices for a table), the name being the card's ``name``;
- ``GET /health`` and ``/metadata`` (the card and the limits), ``/metrics``
  (Prometheus) and ``/docs`` (Swagger UI, served from the package
  ``fastapi-offline``, so it works without a network).

Bad input is never a server error. ``/predict`` answers ``422`` naming the
row and the column (validation stops at the first bad row, so a bad body
costs no more than a good one), ``413`` past ``--max-rows`` rows or the body
limit, ``415`` for a body that is not ``application/json``; the v2 endpoints
answer ``{"error": "..."}`` with ``400`` or ``404``. Nothing here imports
torch: only the ``serve`` dependency group.
"""

import argparse
import errno
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from .errors import UsageError
from .names import MODEL_CARD, ONNX_MODEL, PROGRAM
from .summary import Summary

try:
    import numpy as np
    import onnxruntime
    import prometheus_client as prometheus
    import uvicorn
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi_offline import FastAPIOffline
    from prometheus_client import multiprocess
    from pydantic import (
        AfterValidator,
        BaseModel,
        ConfigDict,
        Field,
        create_model,
    )
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as missing:  # a training install without the serve group
    raise UsageError(
        f"serve needs the serving dependencies ({missing.name} is missing):"
        " poetry install --with serve"
    ) from None

MAX_ROWS = 1024
"""Default limit of rows (samples) per request; more is ``413``."""
BYTES_PER_VALUE = 32
"""Body limit per value of a full request (``max_rows`` samples); more is ``413``."""
MIN_BODY_BYTES = 64 * 1024
"""The body limit is never below this, whatever the model's input size."""
MAX_REPORTED_PROBLEMS = 20
"""A ``422`` answer lists at most this many problems (and says how many more)."""
CARD_FORMAT = 2
"""The model card format this server reads."""
LABEL_OUTPUT = "label"
"""The v2 output holding each sample's class name (``BYTES``)."""

_PACKAGE = (__package__ or "model").upper()
MODEL_DIR_VARIABLE = f"{_PACKAGE}_SERVE_MODEL_DIR"
"""Environment variable telling each worker process which model to load."""
MAX_ROWS_VARIABLE = f"{_PACKAGE}_SERVE_MAX_ROWS"
"""Environment variable telling each worker process the row limit."""
METRICS_VARIABLE = f"{_PACKAGE}_SERVE_METRICS"
"""Environment variable telling each worker process whether to keep metrics."""
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's folder for the metrics of several worker processes."""

REQUESTS = prometheus.Counter(
    "serve_requests", "HTTP requests answered.", ["endpoint", "status"]
)
LATENCY = prometheus.Histogram(
    "serve_request_seconds", "Time to answer a request.", ["endpoint"]
)
INFERENCE = prometheus.Histogram(
    "serve_inference_seconds", "Time ONNX Runtime takes on one request's batch."
)
ROWS = prometheus.Histogram(
    "serve_rows_per_request",
    "Samples per inference request.",
    buckets=[2.0**n for n in range(11)],
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Card:
    """What serving needs from ``model.json`` (format 2), checked once."""

    folder: Path
    """The export folder."""
    card: dict[str, Any]
    """``model.json``, parsed."""
    classes: list[str] = field(init=False)
    """The class names, in index order."""
    sample_shape: list[int] = field(init=False)
    """The graph input's shape without the batch dimension."""

    def __post_init__(self) -> None:
        """Check the entries serving reads."""
        source = self.folder / MODEL_CARD
        try:
            spec = self.card["input"]
            self.classes = [str(name) for name in self.card["classes"]]
            self.sample_shape = [int(n) for n in spec["shape"][1:]]
            valid = (
                self.card.get("format") == CARD_FORMAT
                and isinstance(self.card["name"], str)
                and isinstance(spec["name"], str)
                and spec["kind"] in ("table", "image")
                and len(self.classes) > 0
                and all(n > 0 for n in self.sample_shape)
                and (spec["kind"] == "image" or len(spec["columns"]) > 0)
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            valid = False
        if not valid:
            raise UsageError(
                f"{source}: not a model card of format {CARD_FORMAT} (needs name,"
                f" input and classes); `{PROGRAM} export RUN` writes one"
            )

    @property
    def input(self) -> dict[str, Any]:
        """The card's ``input`` section."""
        spec: dict[str, Any] = self.card["input"]
        return spec

    @property
    def name(self) -> str:
        """The model's name, as the v2 endpoints address it."""
        return str(self.card["name"])


def read_card(folder: Path | str) -> Card:
    """The card of an export folder; both files must be there.

    Raises:
        UsageError: The folder, a file or a card entry is missing or unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such model folder")
    for name in (ONNX_MODEL, MODEL_CARD):
        if not (folder / name).is_file():
            raise UsageError(
                f"{folder}: not an exported model (no {name});"
                f" `{PROGRAM} export RUN` writes one"
            )
    try:
        card = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{folder / MODEL_CARD}: unreadable ({error})") from None
    return Card(folder, card if isinstance(card, dict) else {})


def load_session(card: Card, threads: int = 1) -> onnxruntime.InferenceSession:
    """The ONNX Runtime session of ``card``'s model, checked against the card.

    Raises:
        UsageError: ONNX Runtime cannot load it, or its input is not the card's.
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    path = card.folder / ONNX_MODEL
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # ONNX Runtime raises its own error types
        first_line = (str(error).splitlines() or [""])[0][:200]
        raise UsageError(
            f"{path}: ONNX Runtime cannot load it ({first_line})"
        ) from None
    names = [node.name for node in session.get_inputs()]
    if names != [card.input["name"]]:
        raise UsageError(
            f"{card.folder}: {ONNX_MODEL} takes {names}, but {MODEL_CARD} says"
            f" {card.input['name']!r}"
        )
    return session


def sample_type(card: Card) -> Any:
    """The pydantic type of one raw sample: a row object, or a nested array."""
    number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
    spec = card.input
    if spec["kind"] == "image":
        low, high = (float(v) for v in spec.get("range", (-1e30, 1e30)))
        value: Any = Annotated[number, Field(ge=low, le=high)]
        for size in reversed(card.sample_shape):
            value = Annotated[
                list[value], Field(min_length=size, max_length=size, fail_fast=True)
            ]
        return value
    fields: dict[str, Any] = {}
    for position, column in enumerate(spec["columns"]):
        kind: Any = number
        if column["kind"] == "categorical":
            index = {str(c): float(i) for i, c in enumerate(column["categories"])}
            # The graph takes a category as its index in the card's list.
            kind = Annotated[Literal[tuple(index)], AfterValidator(index.__getitem__)]
        fields[f"c{position}"] = (kind, Field(alias=str(column["name"])))
    return create_model(
        "Row", __config__=ConfigDict(extra="forbid", strict=True), **fields
    )


def request_model(card: Card, max_rows: int) -> type[BaseModel]:
    """The pydantic model of a ``/predict`` body for ``card``'s model."""
    sample: Any = sample_type(card)
    rows: Any = Annotated[
        list[sample],
        Field(min_length=1, max_length=max_rows, description=describe(card)),
        Field(fail_fast=True),
    ]
    model: type[BaseModel] = create_model(
        "PredictRequest", __config__=ConfigDict(extra="forbid"), inputs=(rows, ...)
    )
    return model


def describe(card: Card) -> str:
    """One sentence on what a sample of ``inputs`` is."""
    if card.input["kind"] == "table":
        names = ", ".join(repr(c["name"]) for c in card.input["columns"])
        return f"rows, each an object with the columns {names}"
    shape = "x".join(map(str, card.sample_shape))
    return f"samples, each a {shape} nested array of raw values"


class PredictResponse(BaseModel):
    """What ``/predict`` answers."""

    predictions: list[int] = Field(description="The most probable class's index.")
    labels: list[str] = Field(description="The most probable class's name.")
    probabilities: list[list[float]] = Field(description="Every class's probability.")


def infer_model(card: Card) -> type[BaseModel]:
    """The pydantic model of a v2 input tensor for ``card``'s model.

    ``data`` is flat, or nested as deep as the input's shape; every value a
    finite number (the shape is checked against the data afterwards).
    """
    number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
    flat: Any = Annotated[list[number], Field(fail_fast=True)]
    nested: Any = number
    for _ in range(len(card.sample_shape) + 1):
        nested = Annotated[list[nested], Field(fail_fast=True)]
    fields: dict[str, Any] = {
        "name": (str, ...),
        "shape": (
            Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=8)],
            ...,
        ),
        "datatype": (Literal["FP32"], ...),
        "parameters": (dict[str, Any] | None, None),
        "data": (flat | nested, ...),
    }
    tensor = create_model("V2Input", __config__=ConfigDict(extra="forbid"), **fields)
    one = Field(min_length=1, max_length=1)  # one input tensor per request
    model: type[BaseModel] = create_model(
        "V2Request",
        id=(str | None, None),
        parameters=(dict[str, Any] | None, None),
        inputs=(Annotated[list[tensor], one], ...),  # type: ignore[valid-type]
        outputs=(list[V2Output] | None, None),
    )
    return model


class V2Output(BaseModel):
    """A requested output (``parameters.classification: k``: the top k classes)."""

    name: str
    parameters: dict[str, Any] | None = None


class Instrumented:
    """ASGI middleware: request counts and latency for Prometheus, per route."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request, then count it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, started = 500, time.perf_counter()

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")
            endpoint = str(getattr(route, "path", "unmatched"))
            REQUESTS.labels(endpoint, str(status)).inc()
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)


def create_app(
    model_dir: Path | str,
    max_rows: int = MAX_ROWS,
    threads: int = 1,
    metrics: bool = True,
) -> FastAPI:
    """The web application serving the exported model in ``model_dir``.

    The card is read at once; ONNX Runtime loads the model when the
    application starts (readiness waits for it).

    Raises:
        UsageError: The folder does not hold an exported model.
    """
    card = read_card(model_dir)
    spec, classes, name = card.input, card.classes, card.name
    sessions: list[onnxruntime.InferenceSession] = []
    max_body = max(MIN_BODY_BYTES, max_rows * card_values(card) * BYTES_PER_VALUE)
    metadata = {
        **card.card,
        "limits": {"max_rows": max_rows, "max_body_bytes": max_body},
    }
    body_model = request_model(card, max_rows)
    if TYPE_CHECKING:
        predict_body = infer_body = BaseModel
    else:
        predict_body, infer_body = body_model, infer_model(card)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        sessions.append(await run_in_threadpool(load_session, card, threads))
        yield

    app = FastAPIOffline(
        title=f"{PROGRAM} model",
        summary="Class probabilities of raw inputs, from an exported ONNX model.",
        version=str(card.card.get("format")),
        lifespan=lifespan,
        strict_content_type=False,  # json_body decides, per endpoint
    )

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not sessions:
            raise HTTPException(503, "the model is still loading")
        started = time.perf_counter()
        logits, probabilities = sessions[0].run(
            ["logits", "probabilities"], {spec["name"]: batch}
        )
        INFERENCE.observe(time.perf_counter() - started)
        ROWS.observe(len(batch))
        return np.asarray(logits), np.asarray(probabilities)

    def json_body(request: Request) -> None:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        # A missing type passes on v2 only: Triton's clients send none.
        v2_default = not kind and request.url.path.startswith("/v2/")
        if kind != "application/json" and not v2_default:
            raise HTTPException(415, "send the body as Content-Type: application/json")

    def served(model_name: str) -> None:
        if model_name != name:
            raise HTTPException(
                404, f"unknown model {model_name!r}; this serves {name!r}"
            )

    @app.get("/health")
    async def health() -> JSONResponse:
        """``ok`` once the model is loaded (``503`` before)."""
        ready = bool(sessions)
        return JSONResponse(
            {"status": "ok" if ready else "loading"}, 200 if ready else 503
        )

    @app.get("/metadata")
    async def card_and_limits() -> dict[str, Any]:
        """The model card (``model.json``), plus the request limits."""
        return metadata

    @app.post(
        "/predict",
        response_model=PredictResponse,
        max_body_size=max_body,
        dependencies=[Depends(json_body)],
        responses={
            413: {"description": "Too many rows"},
            415: {"description": "Not JSON"},
        },
    )
    async def predict(body: predict_body) -> Response:  # type: ignore[valid-type]
        """Predict the class of each raw sample."""
        samples: list[Any] = body.inputs  # type: ignore[attr-defined]
        if spec["kind"] == "table":
            batch = np.array(
                [list(row.__dict__.values()) for row in samples], np.float32
            )
        else:
            batch = np.asarray(samples, dtype=np.float32)
        # Inline, not in a thread: a small model's run takes microseconds, less
        # than a hand-off to the thread pool (--workers keeps every core busy).
        _, probabilities = run(batch)
        best = probabilities.argmax(axis=1).tolist()
        return JSONResponse(
            {
                "predictions": best,
                "labels": [classes[i] for i in best],
                "probabilities": probabilities.tolist(),
            }
        )

    tensors = [
        {"name": spec["name"], "datatype": "FP32", "shape": [-1, *card.sample_shape]},
        *(
            {"name": n, "datatype": "FP32", "shape": [-1, len(classes)]}
            for n in OUTPUTS
        ),
        {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
    ]

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        """The Open Inference Protocol's server metadata."""
        return {"name": PROGRAM, "version": _version(), "extensions": []}

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        """Live while the process answers."""
        return {"live": True}

    @app.get("/v2/health/ready")
    @app.get("/v2/models/{model_name}/ready", dependencies=[Depends(served)])
    async def ready() -> JSONResponse:
        """Ready once ONNX Runtime has loaded the model (``503`` before)."""
        return JSONResponse({"ready": bool(sessions)}, 200 if sessions else 503)

    @app.get("/v2/models/{model_name}", dependencies=[Depends(served)])
    async def model_metadata() -> dict[str, Any]:
        """The model's name, version, platform, inputs and outputs."""
        inputs, outputs = tensors[:1], tensors[1:]
        return {
            "name": name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": inputs,
            "outputs": outputs,
        }

    @app.post(
        "/v2/models/{model_name}/infer",
        dependencies=[Depends(served), Depends(json_body)],
        max_body_size=max_body,
    )
    async def infer(
        body: infer_body,  # type: ignore[valid-type]
        request: Request,
    ) -> JSONResponse:
        """Run the model on one JSON tensor; every output unless some are asked."""
        if "inference-header-content-length" in request.headers:
            raise HTTPException(400, "binary tensor data is not supported; send JSON")
        (tensor,) = body.inputs  # type: ignore[attr-defined]
        batch = to_batch(tensor, spec["name"], card.sample_shape, max_rows)
        logits, probabilities = run(batch)
        best = probabilities.argmax(axis=1)
        values = {"logits": logits, "probabilities": probabilities}
        outputs = []
        asked: list[V2Output] | None = body.outputs  # type: ignore[attr-defined]
        for wanted in asked or [V2Output(name=n) for n in (*OUTPUTS, LABEL_OUTPUT)]:
            top = (wanted.parameters or {}).get("classification")
            if wanted.name == LABEL_OUTPUT:
                data, shape = [classes[i] for i in best], [len(batch)]
            elif wanted.name in values and isinstance(top, int) and top > 0:
                data, shape = classified(values[wanted.name], classes, top)
            elif wanted.name in values and top is None:
                data, shape = values[wanted.name].ravel().tolist(), [*logits.shape]
            else:
                raise HTTPException(
                    400, f"unknown output {wanted.name!r} or parameters"
                )
            kind = "FP32" if isinstance(data[0], float) else "BYTES"
            outputs.append(
                {"name": wanted.name, "datatype": kind, "shape": shape, "data": data}
            )
        answer = {"model_name": name, "model_version": "1", "outputs": outputs}
        if body.id is not None:  # type: ignore[attr-defined]
            answer["id"] = body.id  # type: ignore[attr-defined]
        return JSONResponse(answer)

    @app.get("/metrics", include_in_schema=metrics)
    async def scrape() -> Response:
        """Prometheus metrics (of every worker process with ``--workers``)."""
        if not metrics:
            raise HTTPException(404, "metrics are off (serve --no-metrics)")
        registry: prometheus.CollectorRegistry = prometheus.REGISTRY
        if MULTIPROCESS_VARIABLE in os.environ:
            registry = prometheus.CollectorRegistry()
            collect = multiprocess.MultiProcessCollector
            collect(registry)  # type: ignore[no-untyped-call]
        text = prometheus.generate_latest(registry)
        return Response(text, media_type=prometheus.CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        status, problems = shape_problems(error.errors(), max_rows)
        if request.url.path.startswith("/v2/"):
            return JSONResponse({"error": "; ".join(p["msg"] for p in problems)}, 400)
        return JSONResponse({"detail": problems}, status)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, error: StarletteHTTPException) -> JSONResponse:
        v2 = request.url.path.startswith("/v2/")
        content = {"error": error.detail} if v2 else {"detail": error.detail}
        return JSONResponse(content, error.status_code, headers=error.headers)

    if metrics:
        app.add_middleware(Instrumented)
    return app


OUTPUTS = ("logits", "probabilities")
"""The exported graph's outputs, each ``[batch, classes]``."""


def card_values(card: Card) -> int:
    """The numbers in one sample."""
    count = 1
    for size in card.sample_shape:
        count *= size
    return count


def to_batch(tensor: Any, name: str, shape: list[int], max_rows: int) -> np.ndarray:
    """A v2 input tensor as the graph's batch, checked against the model."""
    if tensor.name != name:
        raise HTTPException(
            400, f"unknown input {tensor.name!r}; the model takes {name!r}"
        )
    if tensor.shape[1:] != shape or len(tensor.shape) != len(shape) + 1:
        raise HTTPException(
            400,
            f"input {name!r} has shape {tensor.shape}; expected [-1, *{shape}]",
        )
    if not 0 < tensor.shape[0] <= max_rows:
        raise HTTPException(400, f"{tensor.shape[0]} samples; send 1 to {max_rows}")
    try:
        values = np.asarray(tensor.data, dtype=np.float32)
        if values.ndim > 1:  # nested data holds the shape itself
            values = (
                values.reshape(-1) if list(values.shape) == tensor.shape else values[:0]
            )
        if values.size != np.prod(tensor.shape) or not np.isfinite(values).all():
            raise ValueError
    except (ValueError, TypeError):
        raise HTTPException(
            400,
            f"input {name!r}: data must be {int(np.prod(tensor.shape))} finite numbers"
            f" (flat, or nested as the shape {tensor.shape})",
        ) from None
    return values.reshape(tensor.shape)


def classified(
    scores: np.ndarray, classes: list[str], top: int
) -> tuple[list[str], list[int]]:
    """Triton's classification extension: the top classes as "score:index:label"."""
    top = min(top, len(classes))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    data = [
        f"{scores[r, i]:g}:{i}:{classes[i]}" for r, row in enumerate(order) for i in row
    ]
    return data, [len(scores), top]


def shape_problems(errors: Any, max_rows: int) -> tuple[int, list[dict[str, Any]]]:
    """The status (``413`` for too many rows, else ``422``) and each problem, capped."""
    problems: list[dict[str, Any]] = []
    for entry in list(errors)[: MAX_REPORTED_PROBLEMS + 1]:
        kind, where = entry["type"], tuple(entry["loc"])[1:]
        shown = repr(entry.get("input"))[:40]
        if kind == "json_invalid":
            message = f"the body is not valid JSON: {entry.get('ctx', {}).get('error')}"
        elif where in ((), ("inputs",)) and kind == "missing":
            message = 'the body must be a JSON object: {"inputs": [...]}'
        elif where == ("inputs",) and kind == "too_long":
            return 413, [
                {
                    "loc": ["body", "inputs"],
                    "msg": f"at most {max_rows} rows per request",
                    "type": kind,
                }
            ]
        elif where == ("inputs",) and kind == "too_short":
            message = f"inputs is empty; send 1 to {max_rows} samples"
        elif len(where) == 1 and kind == "extra_forbidden":
            message = f"unknown field {where[0]!r}; the only field is 'inputs'"
        elif len(where) < 2 or where[0] != "inputs":
            message = f"{'.'.join(map(str, where)) or 'the body'}: {entry['msg']}"
        elif len(where) == 2:
            message = f"row {where[1]}: {entry['msg']}"
        elif kind == "missing":
            message = f"row {where[1]}, column {where[2]!r}: missing"
        elif kind == "extra_forbidden":
            message = f"row {where[1]}, column {where[2]!r}: no such column"
        elif kind == "literal_error":
            message = f"row {where[1]}, column {where[2]!r}: unknown category {shown}"
            message += f"; {entry['msg']}"[:200]
        elif isinstance(where[2], str):
            message = (
                f"row {where[1]}, column {where[2]!r}: {entry['msg']}, got {shown}"
            )
        else:
            at = "".join(f"[{i}]" for i in where[2:])
            message = f"row {where[1]}, value {at}: {entry['msg']}"
        problems.append({"loc": ["body", *where], "msg": message, "type": kind})
    if len(problems) > MAX_REPORTED_PROBLEMS:
        problems[MAX_REPORTED_PROBLEMS:] = [
            {"loc": ["body"], "msg": "... and more problems", "type": "more"}
        ]
    return 422, problems


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROGRAM)
    except PackageNotFoundError:
        return "unknown"


def app_from_environment() -> FastAPI:
    """The application of one worker process of ``serve --workers N``."""
    return create_app(
        os.environ[MODEL_DIR_VARIABLE],
        max_rows=int(os.environ.get(MAX_ROWS_VARIABLE, MAX_ROWS)),
        metrics=os.environ.get(METRICS_VARIABLE, "1") == "1",
    )


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once, as uvicorn will.

    Raises:
        UsageError: It is taken, or not an address of this machine.
    """
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        reason = (
            "is in use"
            if error.errno == errno.EADDRINUSE
            else f"cannot be used ({error.strerror})"
        )
        raise UsageError(
            f"--port {port}: {host}:{port} {reason}; choose another port"
        ) from None


def _count(text: str, low: int = 1, high: int = 2**31) -> int:
    number = int(text) if text.isdigit() else 0
    if not low <= number <= high:
        raise argparse.ArgumentTypeError(
            f"expected a whole number {low}..{high}, got {text!r}"
        )
    return number


def main(args: list[str]) -> None:
    """Run ``serve`` on the command's words (its name first); returns when stopped."""
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} {args[0]}",
        description=(
            "Serve an exported model (model.onnx + model.json) over HTTP with ONNX"
            " Runtime: POST /predict, the Open Inference Protocol under /v2,"
            " GET /health, /metadata, /metrics, /docs. Stop it with Ctrl+C."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="An export folder.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address (default 127.0.0.1)."
    )
    parser.add_argument(
        "--port",
        type=lambda t: _count(t, 1, 65535),
        default=8000,
        help="Port (default 8000).",
    )
    parser.add_argument(
        "--workers", type=_count, default=1, help="Server processes (default 1)."
    )
    parser.add_argument(
        "--max-rows",
        type=_count,
        default=MAX_ROWS,
        help=f"Most samples per request (default {MAX_ROWS}).",
    )
    parser.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Serve /metrics (default on).",
    )
    parser.add_argument("--access-log", action="store_true", help="Log every request.")
    options = parser.parse_args(args[1:])
    card = read_card(options.model_dir)  # a bad folder stops us here
    load_session(card)
    check_port(options.host, options.port)
    url = f"http://{options.host}:{options.port}"
    summary = Summary(f"serving {card.folder / ONNX_MODEL} on {url}")
    summary.add("model", f"{card.name} ({', '.join(card.classes)})")
    summary.add("input", describe(card))
    summary.add("workers", options.workers)
    summary.add("docs", f"{url}/docs")
    summary.suggest("curl", f"{url}/v2/models/{card.name}")
    summary.print()
    settings: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "access_log": options.access_log,
        "log_level": "info",
    }
    if options.workers == 1:
        app = create_app(card.folder, options.max_rows, metrics=options.metrics)
        uvicorn.run(app, **settings)
        return
    os.environ[MODEL_DIR_VARIABLE] = str(card.folder.resolve())
    os.environ[MAX_ROWS_VARIABLE] = str(options.max_rows)
    os.environ[METRICS_VARIABLE] = "1" if options.metrics else "0"
    own = MULTIPROCESS_VARIABLE not in os.environ
    if own:  # each worker writes its metrics here; /metrics adds them up
        os.environ[MULTIPROCESS_VARIABLE] = tempfile.mkdtemp(prefix="serve-metrics-")
    try:
        uvicorn.run(
            f"{__package__}.serve:app_from_environment",
            factory=True,
            workers=options.workers,
            **settings,
        )
    finally:
        if own:
            shutil.rmtree(os.environ.pop(MULTIPROCESS_VARIABLE), ignore_errors=True)
