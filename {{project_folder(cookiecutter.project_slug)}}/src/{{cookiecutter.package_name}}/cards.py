"""The exported model for hubs and servers: a Hugging Face card, a Triton repository.

Both are written from the model card ``export`` makes (``model.json``, format
2), so they say what it says:

- :func:`write_hub_card` writes ``README.md`` in the Hugging Face model card
  format: YAML front matter (license, ``library_name: onnx``, tags, datasets,
  metrics and ``model-index`` with the run's results), then the input, the
  classes, the metrics, the parity check and where the model came from;
- :func:`write_triton_repository` writes a Triton Inference Server model
  repository, ``<root>/<name>/config.pbtxt`` and ``<root>/<name>/1/model.onnx``
  (platform ``onnxruntime_onnx``, dynamic batching, the inputs' and outputs'
  names, dims and data types read from the ONNX graph itself) and
  ``labels.txt``, so Triton's classification extension names the classes.

Nothing here imports torch; ONNX is read with ``onnx`` (the export install).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from .names import MODEL_CARD, ONNX_MODEL, PROGRAM

LICENSE = "{{ cookiecutter.license }}"
"""The project's license, as the template was answered."""
HUB_LICENSES = {
    "MIT": "mit",
    "BSD-3-Clause": "bsd-3-clause",
    "Apache-2.0": "apache-2.0",
    "GPL-3.0-only": "gpl-3.0",
}
"""The Hugging Face license identifier of each license answer (else ``other``)."""
TRITON_MAX_BATCH = 1024
"""``max_batch_size`` of the Triton configuration (as ``serve --max-rows``)."""
TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
}
"""Triton's data type of each ONNX tensor element type."""
TASKS = {"table": "tabular-classification", "image": "image-classification"}
"""The Hugging Face task of each kind of input."""


def write_hub_card(card: dict[str, Any], folder: Path | str) -> Path:
    """Write ``folder/README.md``, the Hugging Face model card of ``card``.

    Args:
        card: The format-2 model card (``model.json``), as ``export`` made it.
        folder: The export folder.

    Returns:
        The path of ``README.md``.
    """
    spec, name = card["input"], str(card["name"])
    task = TASKS[spec["kind"]]
    dataset = str(card.get("dataset") or spec.get("dataset") or f"{PROGRAM}-data")
    best, last = card["metrics"].get("best", {}), card["metrics"].get("last", {})
    epoch = card.get("source", {}).get("epoch")
    results = [
        {"type": "accuracy", "value": best[key], "name": f"{key} (best, epoch {epoch})"}
        for key in ("val_acc", "test_acc")
        if key in best
    ] + [
        {"type": "loss", "value": best[key], "name": f"{key} (best, epoch {epoch})"}
        for key in ("val_loss",)
        if key in best
    ]
    front = {
        "license": HUB_LICENSES.get(LICENSE, "other"),
        "library_name": "onnx",
        "pipeline_tag": task,
        "tags": ["onnx", "pytorch-lightning", task, PROGRAM],
        "datasets": [dataset],
        "metrics": sorted({entry["type"] for entry in results}),
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": task, "name": task.replace("-", " ")},
                        "dataset": {
                            "name": dataset,
                            "type": dataset,
                            "split": "validation",
                        },
                        "metrics": results,
                    }
                ],
            }
        ],
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {_cell(name)}",
        "",
        f"A {task.replace('-', ' ')} model exported to ONNX by `{PROGRAM} export`:",
        f"`{ONNX_MODEL}` takes raw inputs and answers `logits` and `probabilities`;",
        f"`{MODEL_CARD}` describes it for programs.",
        "",
        "## Input",
        "",
        f"`{spec['name']}`, float32, shape {spec['shape']}:"
        f" {_cell(spec.get('description', ''))}.",
        f"Preprocessing: {_cell(spec.get('preprocessing', ''))}.",
        "",
    ]
    if spec["kind"] == "table":
        lines += ["| column | kind | values |", "|---|---|---|"]
        for column in spec["columns"]:
            values = (
                ", ".join(map(str, column["categories"]))
                if column["kind"] == "categorical"
                else f"mean {column['mean']:.4g}, std {column['std']:.4g}"
            )
            lines.append(
                f"| {_cell(column['name'])} | {column['kind']} | {_cell(values)} |"
            )
    else:
        lines.append(
            f"{spec.get('channels')} channel(s) of {spec.get('size')} pixels, raw"
            " values"
            f" in {spec.get('range')}."
        )
    lines += ["", "## Classes", "", ", ".join(_cell(c) for c in card["classes"]), ""]
    lines += ["## Results", "", "| metric | best | last |", "|---|---|---|"]
    lines += [
        f"| {key} | {best.get(key, '')} | {last.get(key, '')} |"
        for key in sorted({*best, *last})
    ]
    parity, source = card.get("parity", {}), card.get("source", {})
    lines += [
        "",
        "## Provenance",
        "",
        f"- ONNX Runtime against the checkpoint: largest difference of a probability"
        f" {parity.get('max_abs_diff')} on {parity.get('rows')} sample inputs",
        f"- run: `{source.get('run')}`, checkpoint `{source.get('checkpoint')}`"
        f" (SHA-256 `{source.get('checkpoint_sha256')}`), epoch {epoch}",
        f"- model SHA-256 `{card.get('model', {}).get('sha256')}`, opset"
        f" {card.get('model', {}).get('opset')}",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in card.get("versions", {}).items()),
        "",
        "## Use",
        "",
        "```sh",
        f"{PROGRAM} serve EXPORT_FOLDER   # /predict, and /v2/models/{name}/infer",
        "```",
        "",
    ]
    path = Path(folder) / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _cell(text: object) -> str:
    """Text from the data, safe inside a Markdown table cell or line."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("`", "'")


def write_triton_repository(
    card: dict[str, Any], model: Path | str, root: Path | str
) -> Path:
    """Write the Triton model repository of the exported ``model`` under ``root``.

    Args:
        card: The format-2 model card; its ``name`` names the model folder.
        model: ``model.onnx``.
        root: The repository (``triton`` in the export folder).

    Returns:
        The model's folder, ``root/<name>``.

    Raises:
        ValueError: The graph's first dimension is not a dynamic batch, or a
            tensor's type has no Triton equivalent.
    """
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initialised = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialised]
    described = [_tensor(value) for value in inputs]  # checked before writing
    outputs = [
        _tensor(value, "labels.txt" if value.name == "probabilities" else None)
        for value in graph.output
    ]
    text = [
        f"name: {_quote(card['name'])}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {TRITON_MAX_BATCH}",
        "input [",
        ",\n".join(described),
        "]",
        "output [",
        ",\n".join(outputs),
        "]",
        "dynamic_batching { }",
        "",
    ]
    folder = Path(root) / str(card["name"])
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "1" / ONNX_MODEL)
    labels = "\n".join(" ".join(str(c).split()) for c in card["classes"]) + "\n"
    (folder / "labels.txt").write_text(labels, encoding="utf-8")
    (folder / "config.pbtxt").write_text("\n".join(text), encoding="utf-8")
    return folder


def _tensor(value: Any, label_file: str | None = None) -> str:
    """One ``input`` or ``output`` entry: name, data type, dims without the batch."""
    kind = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim]
    if not dims or dims[0] != -1 or kind.elem_type not in TRITON_TYPES:
        raise ValueError(f"{value.name}: needs a dynamic batch and a Triton type")
    entry = [
        "  {\n    name: " + _quote(value.name),
        f"    data_type: {TRITON_TYPES[kind.elem_type]}",
        f"    dims: [ {', '.join(map(str, dims[1:]))} ]",
    ]
    if label_file:
        entry.append(f"    label_filename: {_quote(label_file)}")
    return "\n".join(entry) + "\n  }"


def _quote(text: object) -> str:
    """A protobuf text-format string: printable ASCII as is, other bytes escaped."""
    out = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        safe = 32 <= byte < 127 and char not in "\"\\'"
        out.append(char if safe else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
