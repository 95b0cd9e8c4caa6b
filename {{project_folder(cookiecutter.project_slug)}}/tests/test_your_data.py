"""The user's own data, through every command: a CSV table and an image folder.

The tests make their data (no downloads): a table whose columns differ a
thousandfold in scale, with a category and names with spaces, slashes and
non-ASCII letters; folders of PNG, JPEG, BMP and WebP images of several sizes.
They go through fit, predict on new files, export (ONNX parity with the
checkpoint) and every bad-data case, each of which must be one line, exit
status 2 and no run folder. A DataModule written against the documented
contract alone (``docs/your-data.md``) goes through fit and export too.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from conftest import PROJECT_ROOT
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.system import Classifier
from {{ cookiecutter.package_name }}.tables import encode_rows

QUIET = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
TABLE_COLUMNS = ["age (years)", "income/month", "colour", "größe"]


def cli(root: Path, *words: str) -> Path | None:
    """Run the CLI in ``root``; the new run folder, if any."""
    runs = root / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(sys, "argv", [sys.argv[0]])
        main([words[0], *QUIET, *words[1:]])
    new = (set(runs.iterdir()) if runs.exists() else set()) - before
    assert len(new) <= 1
    return new.pop() if new else None


def refused(root: Path, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """Run a command that must be refused; its one line (exit 2, no run folder)."""
    with pytest.raises(SystemExit) as stopped:
        cli(root, *words)
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())
    return lines[0]


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """Three classes that depend on a large-scale number and a category."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, rows)
    income = rng.normal(5000, 1500, rows)  # a thousand times the scale of size
    colour = rng.choice(["red", "green", "blue"], rows)
    size = rng.normal(1.7, 0.1, rows)
    score = (income - 5000) / 1500 + np.where(colour == "red", 1.5, 0.0)
    label = np.where(score > 0.8, "high", np.where(score > -0.5, "mid", "low"))
    values = [age, income, colour, size, label]
    return pd.DataFrame(dict(zip([*TABLE_COLUMNS, "class"], values, strict=True)))


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("table") / "customers.csv"
    make_table(600).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory, table: Path) -> Path:
    root = tmp_path_factory.mktemp("table-run")
    run = cli(
        root,
        "fit",
        "--data",
        "TableDataModule",
        "--data.path",
        str(table),
        "--data.target",
        "class",
        "--trainer.max_epochs",
        "15",
    )
    assert run is not None
    return run


def best(run: Path, key: str) -> float:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return max(float(row[key]) for row in csv.DictReader(file) if row.get(key))


def test_a_table_trains_to_a_stated_accuracy(table_run: Path) -> None:
    # A single scalar standardisation reached about 0.68 on such columns.
    assert best(table_run, "val_acc") >= 0.9


def test_a_table_run_keeps_its_data_in_the_config(table_run: Path, table: Path) -> None:
    import yaml

    config = yaml.safe_load((table_run / "config.yaml").read_text(encoding="utf-8"))
    assert config["data"]["class_path"].endswith("TableDataModule")
    assert config["data"]["init_args"]["path"] == str(table)
    assert config["model"]["net"]["class_path"].endswith("MLP")


def test_the_checkpoint_holds_the_columns_statistics_and_categories(
    table_run: Path,
) -> None:
    model = Classifier.load_from_checkpoint(table_run / "checkpoints" / "best.ckpt")
    spec = model.input_spec
    assert [column["name"] for column in spec["columns"]] == TABLE_COLUMNS
    kinds = {column["name"]: column["kind"] for column in spec["columns"]}
    assert kinds == {
        "age (years)": "numeric",
        "income/month": "numeric",
        "colour": "categorical",
        "größe": "numeric",
    }
    colour = next(c for c in spec["columns"] if c["name"] == "colour")
    assert colour["categories"] == ["blue", "green", "red"]
    income = next(c for c in spec["columns"] if c["name"] == "income/month")
    assert 4500 < income["mean"] < 5500
    assert 1000 < income["std"] < 2000
    assert model.class_names == ["high", "low", "mid"]


def test_predict_reads_new_rows_and_ignores_a_target_column(
    table_run: Path, tmp_path: Path
) -> None:
    rows = make_table(40, seed=1)
    path = tmp_path / "new rows.csv"
    rows.to_csv(path, index=False)  # with the "class" column: ignored
    run = cli(
        tmp_path, "predict", "--run", str(table_run), "--data.predict_path", str(path)
    )
    assert run is not None
    predicted = pd.read_csv(run / "predictions.csv")
    assert len(predicted) == 40
    probabilities = predicted[[f"probability_{c}" for c in ("high", "low", "mid")]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (predicted["prediction"] == rows["class"]).mean() >= 0.85


def test_the_exported_table_model_equals_the_checkpoint(
    table_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "export"
    main(["export", str(table_run), "--output", str(output)])
    card = json.loads((output / "model.json").read_text(encoding="utf-8"))
    assert card["input"]["name"] == "features"
    assert card["input"]["kind"] == "table"
    assert [c["name"] for c in card["input"]["columns"]] == TABLE_COLUMNS
    assert card["classes"] == ["high", "low", "mid"]
    assert card["parity"]["max_abs_diff"] <= 1e-5
    # Rows encoded with the card alone, as a server does, give the checkpoint's answers.
    rows = make_table(50, seed=2)
    encoded = encode_rows(rows, card["input"]["columns"], "rows")
    model = Classifier.load_from_checkpoint(
        table_run / "checkpoints" / "best.ckpt"
    ).eval()
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(encoded)), dim=1).numpy()
    session = onnxruntime.InferenceSession(str(output / "model.onnx"))
    (got,) = session.run(["probabilities"], {"features": encoded})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-5)


def test_search_over_networks_is_a_config_choice(
    table_run: Path, tmp_path: Path
) -> None:
    run = cli(
        tmp_path,
        "fit",
        "--config",
        str(table_run / "config.yaml"),
        "--model.net.init_args.hidden_size",
        "8",
        "--trainer.max_epochs",
        "1",
    )
    assert run is not None
    model = Classifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    linear = next(m for m in model.net.modules() if isinstance(m, torch.nn.Linear))
    assert isinstance(linear, torch.nn.Linear)
    assert linear.out_features == 8


# --- image folders -------------------------------------------------------------------


def draw(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A bright disc or square on a dark, noisy background."""
    height, width = size
    pixels = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    cy, cx, r = height / 2, width / 2, min(height, width) / 3
    if kind == "disc":
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    else:
        inside = (abs(yy - cy) < r) & (abs(xx - cx) < r * 0.4)  # a bar
    pixels[inside] = (230, 200, 40)
    return Image.fromarray(pixels)


def make_folder(root: Path, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    suffixes = [".png", ".jpg", ".bmp", ".webp"]
    for kind in ("disc", "bar"):
        (root / kind).mkdir(parents=True)
        for number in range(per_class):
            size = (int(rng.integers(16, 40)), int(rng.integers(16, 40)))
            suffix = suffixes[number % len(suffixes)]
            draw(kind, size, rng).save(
                root / kind / f"{number}{suffix.upper() if number % 5 == 0 else suffix}"
            )
    return root


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_folder(tmp_path_factory.mktemp("images") / "shapes", per_class=40)
    run = cli(
        tmp_path_factory.mktemp("image-run"),
        "fit",
        "--data",
        "ImageFolderDataModule",
        "--data.root",
        str(root),
        "--data.image_size",
        "16",
        "--model.net",
        "CNN",
        "--model.net.init_args.channels",
        "8",
        "--model.lr",
        "0.01",
        "--trainer.max_epochs",
        "8",
    )
    assert run is not None
    return run


def test_an_image_folder_trains_to_a_stated_accuracy(image_run: Path) -> None:
    assert best(image_run, "val_acc") >= 0.9


def test_predict_reads_images_of_any_size_and_one_file(
    image_run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "new"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for number, kind in enumerate(["disc", "bar", "disc", "bar"]):
        draw(kind, (24 + 9 * number, 50), rng).save(folder / f"{number}-{kind}.png")
    run = cli(
        tmp_path, "predict", "--run", str(image_run), "--data.predict_path", str(folder)
    )
    assert run is not None
    predicted = pd.read_csv(run / "predictions.csv")
    assert predicted["input"].tolist() == [
        "0-disc.png",
        "1-bar.png",
        "2-disc.png",
        "3-bar.png",
    ]
    assert (predicted["prediction"] == ["disc", "bar", "disc", "bar"]).mean() >= 0.75
    one = cli(
        tmp_path,
        "predict",
        "--run",
        str(image_run),
        "--data.predict_path",
        str(folder / "0-disc.png"),
    )
    assert one is not None
    assert len(pd.read_csv(one / "predictions.csv")) == 1


def test_the_exported_image_model_equals_the_checkpoint(
    image_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "export"
    main(["export", str(image_run), "--output", str(output)])
    card = json.loads((output / "model.json").read_text(encoding="utf-8"))
    spec = card["input"]
    assert (spec["name"], spec["kind"], spec["channels"]) == ("pixels", "image", 3)
    assert spec["size"] == [16, 16]
    assert spec["range"] == [0.0, 255.0]
    assert spec["shape"] == ["batch", 3, 16, 16]
    assert len(spec["mean"]) == len(spec["std"]) == 3
    assert card["classes"] == ["bar", "disc"]
    images = torch.rand(20, 3, 16, 16) * 255
    model = Classifier.load_from_checkpoint(
        image_run / "checkpoints" / "best.ckpt"
    ).eval()
    with torch.no_grad():
        expected = torch.softmax(model(images), dim=1).numpy()
    session = onnxruntime.InferenceSession(str(output / "model.onnx"))
    (got,) = session.run(["probabilities"], {"pixels": images.numpy()})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-5)


# --- bad data: one line naming the culprit, exit 2, nothing left behind -------------


def table_command(path: Path, target: str = "class") -> list[str]:
    return [
        "fit",
        "--data",
        "TableDataModule",
        "--data.path",
        str(path),
        "--data.target",
        target,
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t, "data.target 'label': no such column"),
        (
            lambda t: t.assign(colour=t["colour"].where(t.index != 7)),
            "line 9: column 'colour' has no value",
        ),
        (
            lambda t: t.astype({"größe": object}).assign(
                **{"größe": t["größe"].astype(object).where(t.index != 3, "about 1.8")}
            ),
            "line 5: column 'größe' holds 'about 1.8', not a number",
        ),
        (lambda t: t.assign(**{"class": "only"}), "1 class (only)"),
        (
            lambda t: t.assign(**{"class": t["class"].where(t.index > 1, "rare")}),
            "class 'rare' has 2 sample(s)",
        ),
    ],
    ids=["missing-target", "missing-value", "stray-string", "one-class", "rare-class"],
)
def test_bad_tables_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    change(make_table(100)).to_csv(path, index=False)
    target = "label" if "target" in expected else "class"
    line = refused(tmp_path, capsys, *table_command(path, target))
    assert expected in line
    assert str(path) in line or "class" in line
    if "target" in expected:
        assert "'age (years)'" in line  # the columns there are


def test_a_missing_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(tmp_path, capsys, *table_command(tmp_path / "nowhere.csv"))
    assert line.endswith("nowhere.csv: no such file")


def test_predict_refuses_an_unknown_category(
    table_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.csv"
    make_table(5).assign(colour="purple").to_csv(path, index=False)
    line = refused(
        tmp_path,
        capsys,
        "predict",
        "--run",
        str(table_run),
        "--data.predict_path",
        str(path),
    )
    assert "column 'colour' holds 'purple', a category training never saw" in line


@pytest.mark.parametrize("case", ["empty", "empty-class", "corrupt", "missing"])
def test_bad_image_folders_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    root = tmp_path / "folder"
    if case != "missing":
        root.mkdir()
    if case in ("empty-class", "corrupt"):
        make_folder(root, per_class=10)
    if case == "empty-class":
        (root / "nothing").mkdir()
    if case == "corrupt":
        (root / "disc" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    command = ["fit", "--data", "ImageFolderDataModule", "--data.root", str(root)]
    line = refused(tmp_path, capsys, *command)
    expected = {
        "empty": "no class folders",
        "empty-class": f"{root / 'nothing'}: no images",
        "corrupt": f"cannot read image {root / 'disc' / 'broken.png'}",
        "missing": f"data.root {root}: no such folder",
    }[case]
    assert expected in line


# --- a DataModule of the user's own, written against the contract alone --------------


class ContractData(pl.LightningDataModule):
    """Two noisy clusters in three columns: only what docs/your-data.md asks for."""

    def __init__(self, rows: int = 200) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        labels = torch.arange(rows) % 2
        self.x = torch.randn(rows, 3, generator=generator) + labels[:, None] * 3
        self.y = labels
        self.input_spec = {
            "kind": "table",
            "name": "features",
            "shape": [3],
            "columns": [
                {"name": f"x{i}", "kind": "numeric", "mean": 1.5, "std": 2.0}
                for i in range(3)
            ],
        }
        self.net_input_shape = [3]
        self.num_classes = 2
        self.class_names = ["left", "right"]

    @override
    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=32, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=64)


def test_a_datamodule_of_the_contract_alone_fits_and_exports(tmp_path: Path) -> None:
    run = cli(
        tmp_path,
        "fit",
        "--data",
        f"{__name__}.ContractData",
        "--trainer.max_epochs",
        "3",
    )
    assert run is not None
    assert best(run, "val_acc") >= 0.9
    main(["export", str(run)])
    card = json.loads((run / "export" / "model.json").read_text(encoding="utf-8"))
    assert card["classes"] == ["left", "right"]
    assert card["input"]["columns"][0]["name"] == "x0"
    assert card["parity"]["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize("kind", ["table", "images"])
def test_the_example_data_configs_train_as_documented(
    kind: str, table: Path, tmp_path: Path
) -> None:
    """``fit --config configs/data/<kind>.yaml`` plus the one required option."""
    import yaml

    config = PROJECT_ROOT / "configs" / "data" / f"{kind}.yaml"
    if kind == "table":
        source = ["--data.path", str(table), "--data.target", "class"]
    else:
        folder = make_folder(tmp_path / "shapes", per_class=12)
        source = ["--data.root", str(folder), "--data.image_size", "16"]
        source += ["--data.num_workers", "0"]
    run = cli(
        tmp_path, "fit", "--config", str(config), *source, "--trainer.max_epochs", "1"
    )
    assert run is not None
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    expected = {"table": "TableDataModule", "images": "ImageFolderDataModule"}[kind]
    assert saved["data"]["class_path"].endswith(expected)
    network = "CNN" if kind == "images" else "MLP"
    assert saved["model"]["net"]["class_path"].endswith(network)
