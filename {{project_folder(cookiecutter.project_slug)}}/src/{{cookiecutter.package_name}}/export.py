"""``export RUN``: a run's checkpoint as an ONNX model and its model card.

The export folder (``RUN/export`` unless ``--output`` says otherwise) holds:

- ``model.onnx``: the model with its preprocessing inside the graph. It takes
  raw inputs exactly as the data gives them (``float32``, any batch size;
  the input is named for the data: ``features`` for a table, ``pixels`` for
  images) and answers ``logits`` and ``probabilities``. PyTorch's ONNX
  exporter (``torch.onnx.export(..., dynamo=True)``, which needs
  ``onnxscript``) writes it, and ONNX Runtime checks it against the
  checkpoint on sample inputs (``parity`` in the card).
- ``model.json``: the model card: the input described completely (for a
  table every column in order with its kind, statistics or categories; for
  images the size, channels and value range), the class names, the run's
  metrics at the best and the last epoch, the checkpoint and its SHA-256,
  library versions and the opset.

The model is rebuilt from the checkpoint alone: its hyperparameters hold the
network's class and options and the data's statistics, as the run's config
and data made them.

``serve`` serves such a folder with ONNX Runtime alone, without torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
{%- if cookiecutter.python_version in ["3.10", "3.11"] %}
from typing import Any
{%- else %}
from typing import Any, override
{%- endif %}

import torch
from torch import Tensor, nn
{%- if cookiecutter.python_version in ["3.10", "3.11"] %}
from typing_extensions import override
{%- endif %}

from .cards import write_hub_card, write_triton_repository
from .errors import UsageError
from .names import EXPORT, MODEL_CARD, ONNX_MODEL, PROGRAM
from .run import Row, file_sha256, open_run
from .summary import Summary
from .system import Classifier
{%- if cookiecutter.logger == "mlflow" %}
from .tracking import log_export, mlflow_settings
{%- endif %}

OUTPUT_NAMES = ("logits", "probabilities")
"""The exported graph's outputs, each of shape ``(batch, classes)``."""
CARD_FORMAT = 2
"""The model card's format version (``model.json``'s ``format``)."""
PARITY_ROWS = 64
"""Sample inputs on which ONNX Runtime's answers are compared with torch's."""
PARITY_TOLERANCE = 1e-5
"""The largest difference of a probability that the parity check accepts."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A model name: what serving URLs and Triton's model repository allow."""

# Distributions whose versions the card records.
_VERSIONED = ("torch", "lightning", "onnx", "onnxscript", "numpy")


class Exported(nn.Module):
    """The trained system as exported: raw inputs in, logits and probabilities out."""

    def __init__(self, classifier: Classifier) -> None:
        """Wrap ``classifier``, which standardises raw inputs itself.

        Args:
            classifier: The trained model, in eval mode.
        """
        super().__init__()
        self.classifier = classifier

    @override
    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and class probabilities of a batch of raw inputs."""
        logits: Tensor = self.classifier(inputs)
        return logits, torch.softmax(logits, dim=1)


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote."""

    folder: Path
    """The export folder."""
    card: dict[str, Any]
    """The model card, as written to ``model.json``."""
    seconds: float
    """Wall time of the export."""

    @property
    def model(self) -> Path:
        """``model.onnx``."""
        return self.folder / ONNX_MODEL


HUB_CARD = "README.md"
"""The Hugging Face model card in the export folder."""

TRITON = "triton"
"""The Triton model repository's folder in the export folder (``--triton``)."""


def export_run(
    run_dir: Path | str,
    ckpt: str = "best",
    output: Path | str | None = None,
    name: str = PROGRAM,
    triton: bool = False,
) -> ExportResult:
    """Export a run's checkpoint to ``model.onnx``, ``model.json`` and ``README.md``.

    ``README.md`` is the Hugging Face model card of the same facts; with
    ``triton``, ``triton/<name>/`` is also a Triton model repository.

    Args:
        run_dir: The run folder.
        ckpt: ``best``, ``last`` or the path of a checkpoint.
        output: The export folder (``RUN/export`` by default).
        name: The model's name, as servers address it.
        triton: Also write the Triton model repository ``triton/<name>``.

    Returns:
        Where the files are and the card.

    Raises:
        UsageError: ``run_dir`` is not a run, the checkpoint is missing or
            not one of this project's model. Nothing is left behind then.
    """
    started = time.monotonic()
    if not NAME.fullmatch(name):
        raise UsageError(
            f"--name {name!r}: letters, digits, '_', '.' and '-', starting with a"
            " letter or digit (at most 128)"
        )
    run = open_run(run_dir)
    checkpoint = run.checkpoint(ckpt)
    folder = Path(output) if output is not None else run.path / EXPORT
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output {folder}: exists and is not a folder")
    classifier, saved = _load(checkpoint)
    created = not folder.exists()
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        opset = _write_onnx(classifier, folder / ONNX_MODEL)
        written.append(folder / ONNX_MODEL)
        parity = check_parity(classifier, folder / ONNX_MODEL)
        card = _card(run.path, run.metrics(), checkpoint, saved, classifier, opset)
        card.update(name=name, parity=parity)
        card["model"]["sha256"] = file_sha256(folder / ONNX_MODEL)
        card_path = folder / MODEL_CARD
        written.append(card_path)
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        written.append(folder / HUB_CARD)
        write_hub_card(card, folder)
        if triton:
            repository = folder / TRITON
            written.append(repository)
            write_triton_repository(card, folder / ONNX_MODEL, repository)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for path in written:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise
    return ExportResult(folder, card, time.monotonic() - started)


def _load(checkpoint: Path) -> tuple[Classifier, dict[str, Any]]:
    """The model in eval mode, and the checkpoint's own entries (epoch, step)."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        classifier = Classifier.load_from_checkpoint(checkpoint, map_location="cpu")
    except Exception as error:  # unpickling, missing keys, a truncated file
        raise UsageError(
            f"{checkpoint}: not a checkpoint of this project's model"
            f" ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    return classifier.eval(), saved


def sample_inputs(spec: dict[str, Any], rows: int, seed: int = 0) -> Tensor:
    """Raw inputs of the kind ``spec`` describes: values a real sample may hold."""
    generator = torch.Generator().manual_seed(seed)
    if spec["kind"] == "table":
        columns = []
        for column in spec["columns"]:
            if column["kind"] == "numeric":
                noise = torch.randn(rows, generator=generator)
                columns.append(column["mean"] + column["std"] * noise)
            else:
                count = len(column["categories"])
                columns.append(
                    torch.randint(0, count, (rows,), generator=generator).float()
                )
        return torch.stack(columns, dim=1)
    low, high = (float(value) for value in spec.get("range", (0.0, 1.0)))
    return low + (high - low) * torch.rand(rows, *spec["shape"], generator=generator)


def check_parity(classifier: Classifier, path: Path) -> dict[str, Any]:
    """Compare ONNX Runtime's probabilities with torch's on sample inputs.

    Raises:
        UsageError: They differ by more than :data:`PARITY_TOLERANCE`.
    """
    import onnxruntime

    spec = classifier.input_spec
    inputs = sample_inputs(spec, PARITY_ROWS)
    with torch.no_grad():
        expected = torch.softmax(classifier(inputs), dim=1).numpy()
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    (got,) = session.run(["probabilities"], {spec["name"]: inputs.numpy()})
    difference = float(abs(got - expected).max())
    if not difference <= PARITY_TOLERANCE:
        raise UsageError(
            f"{path}: ONNX Runtime's probabilities differ from the checkpoint's by"
            f" {difference:.2g} (more than {PARITY_TOLERANCE:g}); nothing is kept"
        )
    return {
        "rows": PARITY_ROWS,
        "max_abs_diff": difference,
        "tolerance": PARITY_TOLERANCE,
    }


def _write_onnx(classifier: Classifier, path: Path) -> int:
    """Export with a dynamic batch dimension; returns the default domain's opset."""
    spec = classifier.input_spec
    example = sample_inputs(spec, 2)
    batch = torch.export.Dim("batch")
    # The exporter reports its progress (and torchvision's absence) through
    # logging and warnings; neither concerns the user here.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                Exported(classifier),
                (example,),
                dynamo=True,
                input_names=[spec["name"]],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"inputs": {0: batch}},
                verbose=False,
            )
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    if program is None:  # only without dynamo; kept for the type checker
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))
    opsets = {entry.domain: entry.version for entry in program.model_proto.opset_import}
    return int(opsets.get("", 0))


def _card(
    run_dir: Path,
    metrics: list[Row],
    checkpoint: Path,
    saved: dict[str, Any],
    classifier: Classifier,
    opset: int,
) -> dict[str, Any]:
    """The model card: everything a user of ``model.onnx`` needs to know."""
    spec = dict(classifier.input_spec)
    classes = list(classifier.class_names)
    epoch = saved.get("epoch")
    at_epoch = [row for row in metrics if row.get("epoch") == epoch]
    chosen = at_epoch[-1] if at_epoch else (metrics[-1] if metrics else {})
    hyperparameters = {
        key: value
        for key, value in saved.get("hyper_parameters", {}).items()
        if key not in ("preprocessing", "class_names", "_instantiator")
    }
    preprocessing = (
        "inside the graph: each numeric column standardised with the training"
        " split's mean and std, each categorical column one-hot encoded"
        if spec["kind"] == "table"
        else "inside the graph: (x - mean) / std per channel, with the training"
        " split's statistics"
    )
    return {
        "format": CARD_FORMAT,
        "name": PROGRAM,
        "project": PROGRAM,
        "exported": datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": {"file": ONNX_MODEL, "sha256": None, "opset": opset},
        "input": {
            **spec,
            "dtype": "float32",
            "shape": ["batch", *spec["shape"]],
            "preprocessing": preprocessing,
        },
        "outputs": [
            {"name": name, "shape": ["batch", len(classes)], "dtype": "float32"}
            for name in OUTPUT_NAMES
        ],
        "classes": classes,
        "metrics": {
            "best": rounded(chosen),
            "last": rounded(metrics[-1] if metrics else {}),
        },
        "source": {
            "run": run_dir.as_posix(),
            "checkpoint": checkpoint.as_posix(),
            "checkpoint_sha256": file_sha256(checkpoint),
            "epoch": epoch,
            "global_step": saved.get("global_step"),
            "hyperparameters": hyperparameters,
        },
        "versions": {
            "python": platform.python_version(),
            **{name: _version(name) for name in _VERSIONED},
        },
    }


def rounded(row: Row) -> dict[str, float | int]:
    """A metrics row for people: 6 decimals, accuracies never above 1."""
    values: dict[str, float | int] = {}
    for key, value in row.items():
        if isinstance(value, float):
            value = round(min(value, 1.0) if key.endswith("acc") else value, 6)
        values[key] = value
    return values


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def main(args: list[str]) -> None:
    """Run ``export`` on the command's words (its name first).

    Args:
        args: e.g. ``["export", "runs/20260101-120000Z_fit", "--ckpt", "last"]``.
    """
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} {args[0]}",
        description=(
            "Export a run's checkpoint as model.onnx (raw inputs in, class"
            " probabilities out; the preprocessing is inside) and model.json"
            " (its model card), ready for `serve`."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="The run folder of a fit.")
    parser.add_argument(
        "--ckpt",
        default="best",
        help="best (default), last, or the path of a checkpoint.",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        default=None,
        help=f"The export folder (default: RUN/{EXPORT}).",
    )
    parser.add_argument(
        "--name",
        default=PROGRAM,
        help=f"The model's name, as servers address it (default: {PROGRAM}).",
    )
    parser.add_argument(
        "--triton",
        action="store_true",
        help=f"Also write a Triton model repository, FOLDER/{TRITON}/NAME.",
    )
{%- if cookiecutter.logger == "mlflow" %}
    parser.add_argument(
        "--mlflow",
        action="store_true",
        help="Also log the export folder as an artifact of the run's MLflow run.",
    )
{%- endif %}
    options = parser.parse_args(args[1:])
{%- if cookiecutter.logger == "mlflow" %}
    if options.mlflow and mlflow_settings(open_run(options.run).path) is None:
        raise UsageError(f"--mlflow: {options.run} did not log to MLflow")
{%- endif %}
    result = export_run(
        options.run, options.ckpt, options.output, options.name, options.triton
    )
    card = result.card
    size_kib = result.model.stat().st_size / 1024
    summary = Summary(
        f"export complete: {ONNX_MODEL} ({size_kib:.0f} KiB, opset"
        f" {card['model']['opset']}) in {result.seconds:.1f} s"
    )
    summary.add("folder", result.folder)
    summary.add("name", card["name"])
    summary.add("model card", result.folder / HUB_CARD)
    if options.triton:
        summary.add("triton", result.folder / TRITON / card["name"])
    summary.add("checkpoint", card["source"]["checkpoint"])
    metrics, epoch = card["metrics"]["best"], card["source"]["epoch"]
    for key in ("val_acc", "val_loss"):
        if key in metrics:
            summary.add(f"{key} (epoch {epoch})", f"{metrics[key]:.4f}")
    shape = ", ".join(map(str, card["input"]["shape"]))
    summary.add("input", f"{card['input']['name']} ({shape}) float32, raw values")
    summary.add(
        "parity", f"max difference {card['parity']['max_abs_diff']:.1g} (ONNX Runtime)"
    )
{%- if cookiecutter.logger == "mlflow" %}
    if options.mlflow:
        summary.add("mlflow run", log_export(Path(options.run), result.folder))
{%- endif %}
    summary.suggest(PROGRAM, "serve", result.folder)
    summary.print()
