"""cards: the Hugging Face model card and the Triton model repository of an export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxruntime
import pytest
import tritonclient.grpc.model_config_pb2 as generated  # type: ignore[import-untyped]
import yaml
from google.protobuf import text_format  # type: ignore[import-untyped]

from {{ cookiecutter.package_name }}.cards import write_hub_card, write_triton_repository

# protoc's generated module makes its classes at import: typed loosely.
model_config_pb2: Any = generated

# ONNX Runtime's type names and Triton's, for the types an export may hold.
ORT_TO_TRITON = {"tensor(float)": "TYPE_FP32", "tensor(int64)": "TYPE_INT64"}


def card_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "model.json").read_text("utf-8"))
    return loaded


def front_matter(text: str) -> dict[str, Any]:
    assert text.startswith("---\n")
    header, _, _ = text[4:].partition("\n---\n")
    loaded: dict[str, Any] = yaml.safe_load(header)
    return loaded


def test_the_hub_card_has_the_front_matter_and_the_run_results(
    exported: Path, tmp_path: Path
) -> None:
    card = card_of(exported)
    path = write_hub_card(card, tmp_path)
    assert path == tmp_path / "README.md"
    text = path.read_text("utf-8")
    front = front_matter(text)
    assert front["library_name"] == "onnx"
    assert front["license"] in ("mit", "bsd-3-clause", "apache-2.0", "gpl-3.0", "other")
    assert "onnx" in front["tags"]
    assert front["datasets"]
    assert "accuracy" in front["metrics"]
    (index,) = front["model-index"]
    assert index["name"] == card["name"]
    (result,) = index["results"]
    best = card["metrics"]["best"]
    values = {entry["name"].split()[0]: entry["value"] for entry in result["metrics"]}
    assert values["val_acc"] == best["val_acc"]
    assert values["val_loss"] == best["val_loss"]
    assert card["source"]["checkpoint_sha256"] in text
    assert str(card["parity"]["max_abs_diff"]) in text
    assert all(name in text for name in card["classes"])


def test_the_hub_card_keeps_column_names_from_breaking_its_table(
    tmp_path: Path,
) -> None:
    columns = [
        {"name": "a|b", "kind": "numeric", "mean": 1.0, "std": 2.0},
        {"name": "colour\nname", "kind": "categorical", "categories": ["x|y", "z"]},
    ]
    card = {
        "format": 2,
        "name": "table-model",
        "input": {
            "name": "features",
            "kind": "table",
            "shape": ["batch", 2],
            "columns": columns,
        },
        "classes": ["yes: 1", "no"],
        "metrics": {"best": {"val_acc": 0.5}, "last": {}},
    }
    text = write_hub_card(card, tmp_path).read_text("utf-8")
    front = front_matter(text)  # a class name with ': ' stays valid YAML
    assert front["pipeline_tag"] == "tabular-classification"
    rows = [line for line in text.splitlines() if line.startswith("| a")]
    assert rows == ["| a\\|b | numeric | mean 1, std 2 |"]
    assert "| colour name | categorical | x\\|y, z |" in text


def test_the_triton_repository_matches_the_onnx_model(
    exported: Path, tmp_path: Path
) -> None:
    card = card_of(exported)
    folder = write_triton_repository(card, exported / "model.onnx", tmp_path / "triton")
    assert folder == tmp_path / "triton" / card["name"]
    assert (folder / "1" / "model.onnx").read_bytes() == (
        exported / "model.onnx"
    ).read_bytes()
    config = text_format.Parse(
        (folder / "config.pbtxt").read_text("utf-8"), model_config_pb2.ModelConfig()
    )
    assert config.name == card["name"]
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 0
    assert config.HasField("dynamic_batching")
    session = onnxruntime.InferenceSession(
        str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    for declared, actual in [
        (config.input, session.get_inputs()),
        (config.output, session.get_outputs()),
    ]:
        assert [t.name for t in declared] == [t.name for t in actual]
        for tensor, node in zip(declared, actual, strict=True):
            assert list(tensor.dims) == list(node.shape[1:])  # the batch is implicit
            assert isinstance(node.shape[0], str)  # and dynamic in the graph
            type_name = model_config_pb2.DataType.Name(tensor.data_type)
            assert type_name == ORT_TO_TRITON[node.type]
    labels = [o.label_filename for o in config.output if o.label_filename]
    assert labels == ["labels.txt"]
    assert (folder / "labels.txt").read_text("utf-8").splitlines() == card["classes"]


def test_a_model_without_a_dynamic_batch_is_refused(
    exported: Path, tmp_path: Path
) -> None:
    import onnx

    model = onnx.load(str(exported / "model.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    with pytest.raises(ValueError, match="dynamic batch"):
        write_triton_repository(card_of(exported), fixed, tmp_path / "triton")
