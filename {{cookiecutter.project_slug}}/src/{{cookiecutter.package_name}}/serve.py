"""``serve MODEL_DIR``: an exported model behind HTTP, on ONNX Runtime, without torch.

MODEL_DIR is what ``export`` wrote: ``model.onnx`` and its card
``model.json``. The service (FastAPI on uvicorn) answers:

- ``GET /health``: ``{"status": "ok"}`` once the model is loaded;
- ``GET /metadata``: the model card, plus the request limits;
- ``POST /predict``: ``{"inputs": [[...], ...]}``, one row of raw values per
  sample (the card's ``values_per_sample`` numbers, the input flattened row
  by row, inside its ``range``), answered with
  ``{"predictions": [class index, ...], "probabilities": [[...], ...]}``;
  ``classes`` in the card names each class index;
- ``GET /docs``: the OpenAPI page.

Bad input is never a server error: a body that is not JSON, a missing or
unknown field, a row of the wrong length, a value that is not a finite number
in range, nesting too deep or an empty batch are answered ``422`` with one
message per problem naming the row and the expected shape. More rows than
``--max-rows`` (default :data:`MAX_ROWS`), or a body over
:data:`BYTES_PER_VALUE` bytes per value of that many rows, is ``413``; the
body limit is enforced while the body arrives, before it is parsed.

Nothing here imports torch (only ONNX Runtime, numpy, FastAPI, pydantic and
uvicorn, the ``serve`` dependency group), so a serving install needs none of
the training stack.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from .errors import UsageError
from .names import PROGRAM
from .run import MODEL_CARD, ONNX_MODEL
from .summary import Summary

try:
    import numpy as np
    import onnxruntime
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
except ImportError as missing:  # a training install without the serve group
    raise UsageError(
        f"serve needs the serving dependencies ({missing.name} is missing):"
        " poetry install --with serve"
    ) from None

MAX_ROWS = 1024
"""Default limit of rows (samples) per ``/predict`` request; more is ``413``."""
BYTES_PER_VALUE = 32
"""Body limit per value of a full request (``max_rows`` rows); more is ``413``."""
MIN_BODY_BYTES = 64 * 1024
"""The body limit is never below this, whatever the model's input size."""
MAX_REPORTED_PROBLEMS = 20
"""A ``422`` answer lists at most this many problems (and says how many more)."""

_PACKAGE = (__package__ or "model").upper()
MODEL_DIR_VARIABLE = f"{_PACKAGE}_SERVE_MODEL_DIR"
"""Environment variable telling each worker process which model to load."""
MAX_ROWS_VARIABLE = f"{_PACKAGE}_SERVE_MAX_ROWS"
"""Environment variable telling each worker process the row limit."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class ServedModel:
    """An exported model loaded into ONNX Runtime, with its card."""

    folder: Path
    """The export folder."""
    card: dict[str, Any]
    """``model.json``, parsed."""
    session: onnxruntime.InferenceSession = field(repr=False)
    """The ONNX Runtime session."""

    @classmethod
    def load(cls, folder: Path | str, threads: int = 1) -> ServedModel:
        """Load ``folder/model.onnx`` and check it against ``folder/model.json``.

        Args:
            folder: An export folder.
            threads: ONNX Runtime threads per request (1 suits small models
                under concurrent requests).

        Raises:
            UsageError: A file is missing or unreadable, or they disagree.
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
        card = _read_card(folder / MODEL_CARD)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(folder / ONNX_MODEL), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime raises its own error types
            first_line = str(error).splitlines()[0][:200] if str(error) else ""
            raise UsageError(
                f"{folder / ONNX_MODEL}: ONNX Runtime cannot load it ({first_line})"
            ) from None
        names = [node.name for node in session.get_inputs()]
        if names != [card["input"]["name"]]:
            raise UsageError(
                f"{folder}: {ONNX_MODEL} takes {names}, but {MODEL_CARD} says"
                f" {card['input']['name']!r}"
            )
        return cls(folder, card, session)

    @property
    def shape(self) -> list[int]:
        """The shape of one raw sample (the input's shape without the batch)."""
        return [int(n) for n in self.card["input"]["shape"][1:]]

    @property
    def values_per_sample(self) -> int:
        """The numbers in one row of ``inputs``."""
        return math.prod(self.shape)

    @property
    def value_range(self) -> tuple[float, float]:
        """The lowest and highest raw value."""
        low, high = self.card["input"]["range"]
        return float(low), float(high)

    def predict(self, rows: list[list[float]]) -> tuple[list[int], list[list[float]]]:
        """The predicted class indices and class probabilities of raw rows."""
        batch = np.asarray(rows, dtype=np.float32).reshape(len(rows), *self.shape)
        (answer,) = self.session.run(
            ["probabilities"], {self.card["input"]["name"]: batch}
        )
        probabilities = np.asarray(answer)
        return probabilities.argmax(axis=1).tolist(), probabilities.tolist()


def _read_card(path: Path) -> dict[str, Any]:
    """The model card, checked for the entries serving needs."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{path}: unreadable ({error})") from None
    try:
        shape = card["input"]["shape"]
        low, high = card["input"]["range"]
        valid = (
            isinstance(card["input"]["name"], str)
            and len(shape) >= 2
            and all(isinstance(n, int) and n > 0 for n in shape[1:])
            and float(low) < float(high)
            and isinstance(card["classes"], list)
            and len(card["classes"]) > 0
        )
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise UsageError(
            f"{path}: not a model card (needs input.name, input.shape, input.range"
            " and classes)"
        )
    return dict(card)


def request_model(model: ServedModel, max_rows: int) -> type[BaseModel]:
    """The pydantic model of a ``/predict`` body for ``model``."""
    low, high = model.value_range
    number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=low, le=high)]
    length = model.values_per_sample
    row = Annotated[list[number], Field(min_length=length, max_length=length)]
    rows = Annotated[
        list[row],
        Field(
            min_length=1,
            max_length=max_rows,
            description=(
                f"1 to {max_rows} rows, each {length} raw values in {low:g}..{high:g}"
                f" (one {'x'.join(map(str, model.shape))} input, row by row)"
            ),
        ),
    ]
    fields: dict[str, Any] = {"inputs": (rows, ...)}
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


class PredictResponse(BaseModel):
    """What ``/predict`` answers."""

    predictions: list[int] = Field(description="The most probable class of each row.")
    probabilities: list[list[float]] = Field(
        description="Each row's probability of every class (the card's classes)."
    )


class _BodyTooLargeError(Exception):
    """Raised inside the app when the body grows past the limit."""


class BodyLimit:
    """ASGI middleware: ``413`` for a body over ``max_bytes``, without reading it all.

    A ``Content-Length`` over the limit is refused at once; a body without
    one (chunked) is counted as it arrives and refused once it passes it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap ``app``.

        Args:
            app: The application.
            max_bytes: The largest body accepted.
        """
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection event."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit() or int(text) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": f"the body is over {self.max_bytes} bytes"},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def create_app(
    model_dir: Path | str, max_rows: int = MAX_ROWS, threads: int = 1
) -> FastAPI:
    """The web application serving the exported model in ``model_dir``.

    Args:
        model_dir: An export folder (``model.onnx`` and ``model.json``).
        max_rows: The most rows one ``/predict`` request may hold.
        threads: ONNX Runtime threads per request.

    Raises:
        UsageError: The folder does not hold an exported model.
    """
    model = ServedModel.load(model_dir, threads=threads)
    body_model = request_model(model, max_rows)
    max_body = max(MIN_BODY_BYTES, max_rows * model.values_per_sample * BYTES_PER_VALUE)
    metadata = {
        **model.card,
        "limits": {"max_rows": max_rows, "max_body_bytes": max_body},
    }
    shape_text = (
        f"{model.values_per_sample} numbers in"
        f" {model.value_range[0]:g}..{model.value_range[1]:g}"
        f" (a {'x'.join(map(str, model.shape))} input, row by row)"
    )

    app = FastAPI(
        title=f"{PROGRAM} model",
        summary="Class probabilities of raw inputs, from an exported ONNX model.",
        version=str(model.card.get("format", "1")),
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """``ok`` while the service is up (the model loaded before it started)."""
        return {"status": "ok"}

    @app.get("/metadata")
    async def card() -> dict[str, Any]:
        """The model card (``model.json``), plus the request limits."""
        return metadata

    @app.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": body_model.model_json_schema()}
                },
            }
        },
        responses={
            413: {
                "description": f"More than {max_rows} rows, or over {max_body} bytes."
            },
            422: {"description": "Not a valid request: each problem names its row."},
        },
    )
    async def predict(request: Request) -> Response:
        """Predict the class of each row of raw inputs."""
        body = await request.body()
        try:
            parsed = body_model.model_validate_json(body)
        except ValidationError as error:
            status, problems = _problems(error, shape_text, max_rows)
            return JSONResponse(status_code=status, content={"detail": problems})
        rows: list[list[float]] = parsed.inputs  # type: ignore[attr-defined]
        # Inline, not in a thread: one run of a small model takes microseconds,
        # far less than a hand-off to the thread pool. A model whose runs take
        # milliseconds should move this into `run_in_threadpool` (and use
        # --workers to keep every core busy).
        predictions, probabilities = model.predict(rows)
        return JSONResponse(
            {"predictions": predictions, "probabilities": probabilities}
        )

    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app


def _problems(
    error: ValidationError, shape_text: str, max_rows: int
) -> tuple[int, list[dict[str, Any]]]:
    """The status (``413`` for too many rows, else ``422``) and each problem."""
    problems: list[dict[str, Any]] = []
    status = 422
    errors = error.errors(include_url=False, include_input=False)
    for entry in errors:
        kind, where = entry["type"], tuple(entry["loc"])
        context = entry.get("ctx") or {}
        if kind == "json_invalid" and "recursion limit" in str(context.get("error")):
            message = "the body is nested too deep; rows are flat lists of numbers"
        elif kind == "json_invalid":
            message = (
                f"the body is not valid JSON: {context.get('error', entry['msg'])}"
            )
        elif where == ():
            message = 'the body must be a JSON object: {"inputs": [[...], ...]}'
        elif kind == "extra_forbidden":
            message = f"unknown field {where[0]!r}; the only field is 'inputs'"
        elif where == ("inputs",) and kind == "missing":
            message = f"missing field 'inputs': a list of rows, each {shape_text}"
        elif where == ("inputs",) and kind == "too_long":
            status = 413
            message = (
                f"{context.get('actual_length')} rows; at most {max_rows} rows"
                " per request"
            )
        elif where == ("inputs",) and kind == "too_short":
            message = f"inputs is empty; send 1 to {max_rows} rows, each {shape_text}"
        elif where == ("inputs",):
            message = f"inputs must be a list of rows, each {shape_text}"
        elif len(where) == 2 and kind in ("too_short", "too_long"):
            message = (
                f"row {where[1]} has {context.get('actual_length')} values;"
                f" expected {shape_text}"
            )
        elif len(where) == 2:
            message = f"row {where[1]} must be a list of {shape_text}"
        elif len(where) == 3:
            message = (
                f"row {where[1]}, value {where[2]}: {entry['msg']};"
                f" each row holds {shape_text}"
            )
        else:
            message = f"{'.'.join(map(str, where))}: {entry['msg']}"
        problems.append({"loc": ["body", *where], "msg": message, "type": kind})
    if status == 413:
        problems = [p for p in problems if p["type"] == "too_long"]
    if len(problems) > MAX_REPORTED_PROBLEMS:
        more = len(problems) - MAX_REPORTED_PROBLEMS
        problems = problems[:MAX_REPORTED_PROBLEMS]
        problems.append(
            {"loc": ["body"], "msg": f"... and {more} more", "type": "more"}
        )
    return status, problems


def app_from_environment() -> FastAPI:
    """The application for a worker process, configured by environment variables.

    ``serve --workers N`` starts N processes; each builds its app with this
    factory from :data:`MODEL_DIR_VARIABLE` and :data:`MAX_ROWS_VARIABLE`.
    """
    return create_app(
        os.environ[MODEL_DIR_VARIABLE],
        max_rows=int(os.environ.get(MAX_ROWS_VARIABLE, MAX_ROWS)),
    )


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return number


def _port(text: str) -> int:
    number = _positive(text)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1..65535, got {text!r}")
    return number


def main(args: list[str]) -> None:
    """Run ``serve`` on the command's words (its name first); returns when stopped.

    Args:
        args: e.g. ``["serve", "runs/20260101-120000Z_fit/export", "--port", "8000"]``.
    """
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} {args[0]}",
        description=(
            "Serve an exported model (model.onnx + model.json, as `export` writes"
            " them) over HTTP with ONNX Runtime: GET /health, GET /metadata,"
            " POST /predict, GET /docs. Stop it with Ctrl+C."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="An export folder.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1)."
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="Port to listen on (default 8000)."
    )
    parser.add_argument(
        "--workers", type=_positive, default=1, help="Server processes (default 1)."
    )
    parser.add_argument(
        "--max-rows",
        type=_positive,
        default=MAX_ROWS,
        help=f"Most rows per /predict request (default {MAX_ROWS}; more is 413).",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="Log every request (off by default)."
    )
    options = parser.parse_args(args[1:])
    model = ServedModel.load(options.model_dir)  # a bad folder stops us here
    url = f"http://{options.host}:{options.port}"
    summary = Summary(f"serving {model.folder / ONNX_MODEL} on {url}")
    summary.add("classes", ", ".join(map(str, model.card["classes"])))
    summary.add("input", f"rows of {model.values_per_sample} raw values")
    summary.add("workers", options.workers)
    summary.add("docs", f"{url}/docs")
    summary.suggest("curl", f"{url}/health")
    summary.print()
    settings: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "access_log": options.access_log,
        "log_level": "info",
    }
    if options.workers == 1:
        uvicorn.run(create_app(model.folder, options.max_rows), **settings)
        return
    os.environ[MODEL_DIR_VARIABLE] = str(model.folder.resolve())
    os.environ[MAX_ROWS_VARIABLE] = str(options.max_rows)
    uvicorn.run(
        f"{__package__}.serve:app_from_environment",
        factory=True,
        workers=options.workers,
        **settings,
    )
