"""export: the ONNX model answers as the checkpoint does, from raw inputs; its card."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from {{ cookiecutter.package_name }}.cli import main
{%- if cookiecutter.dataset == "digits" %}
from {{ cookiecutter.package_name }}.data import DigitsDataModule as DataModule
from {{ cookiecutter.package_name }}.export import rounded
{%- else %}
from {{ cookiecutter.package_name }}.export import rounded
from {{ cookiecutter.package_name }}.mnist import MNISTDataModule as DataModule
{%- endif %}
from {{ cookiecutter.package_name }}.run import read_metrics
from {{ cookiecutter.package_name }}.summary import parse_summary
from {{ cookiecutter.package_name }}.system import Classifier


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card(folder: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((folder / "model.json").read_text("utf-8"))
    return loaded


def test_onnx_equals_the_checkpoint_on_the_whole_test_split(
    exported: Path, smoke_run: Path, datamodule: DataModule
) -> None:
    # Raw inputs, as the data gives them.
    raw = torch.cat([x for x, _ in datamodule.test_dataloader()])
    model = Classifier.load_from_checkpoint(
        smoke_run / "checkpoints" / "best.ckpt", map_location="cpu"
    ).eval()
    with torch.no_grad():
        expected = torch.softmax(model(raw), dim=1).numpy()
    session = onnxruntime.InferenceSession(
        str(exported / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    name = datamodule.input_spec["name"]
    got = np.asarray(session.run(["probabilities"], {name: raw.numpy()})[0])
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [1, 3])
def test_onnx_takes_any_batch_size(
    exported: Path, datamodule: DataModule, size: int
) -> None:
    session = onnxruntime.InferenceSession(
        str(exported / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    spec = datamodule.input_spec
    inputs = np.zeros((size, *spec["shape"]), dtype=np.float32)
    logits, probabilities = map(np.asarray, session.run(None, {spec["name"]: inputs}))
    assert logits.shape == probabilities.shape == (size, datamodule.num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_the_card_describes_the_exported_model(
    exported: Path, smoke_run: Path, datamodule: DataModule
) -> None:
    described = card(exported)
    checkpoint = smoke_run / "checkpoints" / "best.ckpt"
    assert described["format"] == 2
    assert described["classes"] == datamodule.class_names
    model_info = described["model"]
    assert isinstance(model_info, dict)
    assert model_info["sha256"] == sha256(exported / "model.onnx")
    opset_import = onnx.load(exported / "model.onnx").opset_import
    opsets = {o.domain: o.version for o in opset_import}
    assert model_info["opset"] == opsets[""]
    inputs = described["input"]
    assert isinstance(inputs, dict)
    spec = datamodule.input_spec
    assert inputs["name"] == spec["name"]
    assert inputs["shape"] == ["batch", *spec["shape"]]
    assert inputs["dtype"] == "float32"
    assert {key: inputs[key] for key in spec if key != "shape"} == {
        key: value for key, value in spec.items() if key != "shape"
    }
    session = onnxruntime.InferenceSession(
        str(exported / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (graph_input,) = session.get_inputs()
    assert graph_input.name == inputs["name"]
    assert graph_input.shape[1:] == list(spec["shape"])
    source = described["source"]
    assert isinstance(source, dict)
    assert source["checkpoint"].endswith("checkpoints/best.ckpt")
    assert source["checkpoint_sha256"] == sha256(checkpoint)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert source["epoch"] == saved["epoch"]
    assert source["hyperparameters"]["net"] == saved["hyper_parameters"]["net"]
    metrics_csv = read_metrics(smoke_run / "metrics.csv")
    rows = [r for r in metrics_csv if r["epoch"] == saved["epoch"]]
    metrics = described["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["best"] == rounded(rows[-1])
    assert metrics["last"] == rounded(metrics_csv[-1])
    parity = described["parity"]
    assert isinstance(parity, dict)
    assert parity["max_abs_diff"] <= 1e-5
    versions = described["versions"]
    assert isinstance(versions, dict)
    assert versions["torch"] == torch.__version__
    assert versions["onnx"] == onnx.__version__


def test_card_metrics_are_rounded_and_accuracy_never_above_one() -> None:
    row = {"epoch": 3, "train_acc": 1.0000001192092896, "val_loss": 0.123456789}
    assert rounded(row) == {"epoch": 3, "train_acc": 1.0, "val_loss": 0.123457}


def test_export_names_the_model(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "named"
    main(["export", str(smoke_run), "--output", str(output), "--name", "digits-v2"])
    assert card(output)["name"] == "digits-v2"
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["export", str(smoke_run), "--output", str(tmp_path / "x"), "--name", "a/b"]
        )
    assert exit_info.value.code == 2
    assert "--name 'a/b'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_writes_the_hub_card_and_with_triton_a_model_repository(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "exported"
    main(["export", str(smoke_run), "--output", str(output), "--name", "digits"])
    assert (output / "README.md").read_text("utf-8").startswith("---\n")
    assert not (output / "triton").exists()
    main(["export", str(smoke_run), "--output", str(output), "--triton"])
    facts = parse_summary(capsys.readouterr().out)
    name = card(output)["name"]
    model = output / "triton" / str(name)
    assert facts["triton"] == [model.as_posix()]
    assert "platform" in (model / "config.pbtxt").read_text("utf-8")
    assert sha256(model / "1" / "model.onnx") == sha256(output / "model.onnx")


def test_export_writes_into_the_run_and_says_what_next(
    export_run_dir: tuple[Path, str],
) -> None:
    run_dir, printed = export_run_dir
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == [
        "README.md",
        "model.json",
        "model.onnx",
    ]
    facts = parse_summary(printed)
    assert facts["folder"] == [(run_dir / "export").as_posix()]
    assert any(" serve " in step for step in facts["next"])


def test_export_of_a_folder_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path)])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(tmp_path) in line
    assert "not a run folder" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ckpt", ["missing.ckpt", "not-a-checkpoint"])
def test_export_of_a_missing_or_bad_checkpoint(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ckpt: str
) -> None:
    path = tmp_path / ckpt
    if ckpt == "not-a-checkpoint":
        path.write_text("not a checkpoint", encoding="utf-8")
    output = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(smoke_run), "--ckpt", str(path), "--output", str(output)])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(path) in line
    assert not output.exists()  # nothing left behind
    assert not (smoke_run / "export").exists()
