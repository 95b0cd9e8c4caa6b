"""predict on the user's own files: .npy, .csv, a folder of PNG images; bad files."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from PIL import Image

from conftest import run_main
{%- if cookiecutter.dataset == "digits" %}
from {{ cookiecutter.package_name }}.data import SHAPE, VALUE_RANGE
from {{ cookiecutter.package_name }}.data import DigitsDataModule as DataModule
{%- endif %}
from {{ cookiecutter.package_name }}.errors import UsageError
from {{ cookiecutter.package_name }}.inputs import read_inputs
{%- if cookiecutter.dataset == "mnist" %}
from {{ cookiecutter.package_name }}.mnist import MNISTDataModule as DataModule
{%- endif %}

SAMPLES = 60
"""Test samples written to each file (the first ones of the test split)."""
{%- if cookiecutter.dataset == "mnist" %}
SHAPE = DataModule.input_shape
VALUE_RANGE = DataModule.value_range
{%- endif %}
FEATURES = math.prod(SHAPE)
LOW, HIGH = VALUE_RANGE

RunCLI = Callable[..., Path]
CallCLI = Callable[..., "Path | None"]


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "predictions.csv").open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def predict_options(smoke_run: Path) -> list[str]:
    return [
        "--config",
        str(smoke_run / "config.yaml"),
        "--ckpt_path",
        str(smoke_run / "checkpoints" / "best.ckpt"),
    ]


@pytest.fixture(scope="module")
def test_split_rows(
    tmp_path_factory: pytest.TempPathFactory, smoke_run: Path
) -> list[dict[str, str]]:
    """predictions.csv of ``predict`` without a file: the test split."""
    folder = tmp_path_factory.mktemp("predict")
    run_dir = run_main(folder, "predict", *predict_options(smoke_run))
    assert run_dir is not None
    return read_rows(run_dir)


@pytest.fixture(scope="module")
def raw_samples(datamodule: DataModule) -> npt.NDArray[np.float32]:
    """The first test samples, raw, shaped ``(SAMPLES, *SHAPE)``."""
    raw = torch.cat([x for x, _ in datamodule.test_dataloader()])
    samples: npt.NDArray[np.float32] = raw[:SAMPLES].numpy()
    return samples


def write_pngs(folder: Path, samples: npt.NDArray[np.float32]) -> None:
    """One grayscale PNG per sample, raw values scaled to 0..255."""
    folder.mkdir()
    for number, sample in enumerate(samples):
        pixels = np.rint(sample.reshape(SHAPE[-2:]) * 255 / HIGH).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{number:04d}.png")


def test_predictions_csv_names_inputs_and_gives_every_probability(
    test_split_rows: list[dict[str, str]],
) -> None:
    first = test_split_rows[0]
    classes = list(DataModule().class_names)
    probability_columns = [f"probability_{c}" for c in classes]
    columns = ["input", "prediction", "prediction_index", *probability_columns]
    assert list(first) == columns
    assert [row["input"] for row in test_split_rows[:3]] == ["0", "1", "2"]
    for row in test_split_rows[:20]:
        probabilities = [float(row[f"probability_{c}"]) for c in classes]
        assert sum(probabilities) == pytest.approx(1, abs=1e-5)
        assert int(row["prediction_index"]) == int(np.argmax(probabilities))
        assert row["prediction"] == classes[int(row["prediction_index"])]


@pytest.mark.parametrize("kind", ["npy", "csv", "png"])
def test_predict_from_a_file_equals_the_test_split(
    run_cli: RunCLI,
    tmp_path: Path,
    smoke_run: Path,
    test_split_rows: list[dict[str, str]],
    raw_samples: npt.NDArray[np.float32],
    kind: str,
) -> None:
    if kind == "npy":
        path = tmp_path / "inputs.npy"
        np.save(path, raw_samples.reshape(SAMPLES, -1))
        names = [str(n) for n in range(SAMPLES)]
    elif kind == "csv":
        path = tmp_path / "inputs.csv"
        header = ",".join(f"pixel{n}" for n in range(FEATURES))
        lines = [",".join(f"{v:g}" for v in s.reshape(-1)) for s in raw_samples]
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        names = [str(n) for n in range(SAMPLES)]
    else:
        path = tmp_path / "images"
        write_pngs(path, raw_samples)
        names = [f"{n:04d}.png" for n in range(SAMPLES)]
    run_dir = run_cli(
        "predict", *predict_options(smoke_run), f"--data.predict_path={path}"
    )
    rows = read_rows(run_dir)
    assert [row["input"] for row in rows] == names
    expected = [row["prediction"] for row in test_split_rows[:SAMPLES]]
    assert [row["prediction"] for row in rows] == expected


@pytest.mark.parametrize(
    ("name", "contents", "message"),
    [
        ("missing.npy", None, "no such file or folder"),
        ("wrong-shape.npy", "shape", f"expected one sample per row, (N, {FEATURES})"),
        ("letters.csv", "letters", "line 2, column 3: 'abc' is not a number"),
    ],
)
def test_predict_on_a_bad_file_is_one_line_and_leaves_no_run(
    call_cli: CallCLI,
    tmp_path: Path,
    smoke_run: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    contents: str | None,
    message: str,
) -> None:
    path = tmp_path / name
    if contents == "shape":
        np.save(path, np.zeros((4, FEATURES - 1)))
    elif contents == "letters":
        path.write_text(("1," * (FEATURES - 1) + "1\n") + "1,2,abc\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        call_cli("predict", *predict_options(smoke_run), f"--data.predict_path={path}")
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(path) in line
    assert message in line
    assert not (tmp_path / "runs").exists()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def bad_inputs(folder: Path) -> list[tuple[Path, str]]:
    """Files ``read_inputs`` must refuse, with the words its message must say."""
    row = ",".join(["1"] * FEATURES)
    (folder / "small").mkdir()
    Image.new("L", (3, 5)).save(folder / "small" / "a.png")
    (folder / "empty").mkdir()
    np.save(folder / "strings.npy", np.array([["a"] * FEATURES]))
    np.save(folder / "flat.npy", np.zeros(FEATURES))
    np.save(folder / "none.npy", np.zeros((0, FEATURES)))
    np.save(folder / "nan.npy", np.full((2, FEATURES), np.nan))
    np.save(folder / "high.npy", np.full((2, FEATURES), HIGH + 1))
    return [
        (write(folder / "short.csv", "1,2,3\n"), f"has 3 values; expected {FEATURES}"),
        (write(folder / "blank.csv", "\n\n"), "no samples"),
        (write(folder / "inputs.txt", row), "give a .npy file, a .csv file"),
        (write(folder / "broken.npy", "not numpy"), "not a readable .npy array"),
        (folder / "strings.npy", "expected numbers"),
        (folder / "flat.npy", "expected one sample per row"),
        (folder / "none.npy", "N >= 1"),
        (folder / "nan.npy", "not finite"),
        (folder / "high.npy", f"outside {LOW:g}..{HIGH:g}"),
        (folder / "small", f"3x5 pixels; expected {SHAPE[-1]}x{SHAPE[-2]}"),
        (folder / "empty", "no .png images"),
    ]


def test_read_inputs_refuses_bad_files_naming_the_path(tmp_path: Path) -> None:
    for path, message in bad_inputs(tmp_path):
        with pytest.raises(UsageError) as error:
            read_inputs(path, SHAPE, (LOW, HIGH), image_scale=HIGH / 255)
        text = str(error.value)
        assert message in text, (path, text)
        assert str(path) in text.split(":")[0] or str(path) in text
        assert "\n" not in text


def test_read_inputs_accepts_both_array_shapes(tmp_path: Path) -> None:
    samples = np.arange(2 * FEATURES, dtype=np.float32).reshape(2, *SHAPE) % HIGH
    np.save(tmp_path / "shaped.npy", samples)
    np.save(tmp_path / "flat.npy", samples.reshape(2, -1))
    for name in ("shaped.npy", "flat.npy"):
        values, names = read_inputs(tmp_path / name, SHAPE, (LOW, HIGH), 1.0)
        np.testing.assert_array_equal(values, samples)
        assert names == ["0", "1"]
